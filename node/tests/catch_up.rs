//! A shard replica catching up from a snapshot: the sender's log arrives in chunks, is staged
//! beside the replica's own log, and the state machine's install swaps it in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use openraft::StoredMembership;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::storage::SnapshotMeta;
use runnel_log::Entry;
use runnel_log::Log;
use runnel_log::LogConfig;
use runnel_node::metrics::Metrics;
use runnel_node::raft::FsyncPolicy;
use runnel_node::raft::GroupCommit;
use runnel_node::raft::catch_up::CatchUp;
use runnel_node::raft::catch_up::CatchUpError;
use runnel_node::raft::catch_up::Chunk;
use runnel_node::raft::codec::KIND_RECORDS;
use runnel_node::raft::codec::log_id;
use runnel_node::raft::log_store::LogStore;
use runnel_node::raft::log_store::PurgePolicy;
use runnel_node::raft::shard_sm::ShardStateMachine;
use runnel_node::raft::types::ShardRaft;
use tempfile::TempDir;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        timestamp_ms: 1_700_000_000_000 + index as i64,
        kind: KIND_RECORDS,
        payload: Bytes::from(format!("batch {index} of term {term} {}", "x".repeat(200))),
    }
}

struct Replica {
    dir: TempDir,
    store: LogStore<ShardRaft>,
    catch_up: Arc<CatchUp>,
    sm: ShardStateMachine,
}

/// A replica whose log holds `entries`.
fn replica(entries: &[Entry]) -> Replica {
    let dir = TempDir::new().unwrap();
    let mut log = Log::open(dir.path(), config()).unwrap();
    log.append(entries).unwrap();
    log.sync().unwrap();
    let metrics = Metrics::new().unwrap();
    let commit = GroupCommit::start(FsyncPolicy::Always, metrics.storage).unwrap();
    let last = log.last_entry_id().map(|(i, _)| i);
    let store = LogStore::open(1, dir.path(), log, commit, PurgePolicy::Keep).unwrap();
    let catch_up = Arc::new(CatchUp::new(dir.path(), config(), store.log(), store.purged_marker()).unwrap());
    let sm = ShardStateMachine::open(dir.path(), last, catch_up.clone()).unwrap();
    Replica {
        dir,
        store,
        catch_up,
        sm,
    }
}

fn chunk(transfer: u64, first: bool, entries: impl IntoIterator<Item = Entry>) -> Chunk {
    Chunk {
        transfer,
        first,
        entries: entries.into_iter().map(Into::into).collect(),
    }
}

fn meta(term: u64, index: u64) -> openraft::type_config::alias::SnapshotMetaOf<ShardRaft> {
    SnapshotMeta {
        last_log_id: Some(log_id(term, index)),
        last_membership: StoredMembership::default(),
    }
}

async fn indexes(r: &mut Replica) -> Vec<(u64, u64)> {
    let log = r.store.log();
    let log = log.lock().unwrap();
    let reader = log.reader();
    match reader.first_index() {
        Some(first) => reader
            .read(first, usize::MAX, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|e| (e.index, e.term))
            .collect(),
        None => Vec::new(),
    }
}

#[tokio::test]
async fn a_staged_log_replaces_a_stale_log_on_install() {
    // The replica has a stale tail from term 1; the snapshot's log is 20..=60 of term 2.
    let mut r = replica(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
    r.catch_up
        .receive(chunk(7, true, (20..40).map(|i| entry(i, 2))))
        .unwrap();
    r.catch_up
        .receive(chunk(7, false, (40..=60).map(|i| entry(i, 2))))
        .unwrap();
    r.catch_up.complete(7, &log_id(2, 60), true).unwrap();
    r.sm.install_snapshot(&meta(2, 60), b"{}".to_vec()).await.unwrap();

    assert_eq!(
        indexes(&mut r).await,
        (20..=60).map(|i| (i, 2)).collect::<Vec<_>>()
    );
    let state = r.store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 60)));
    assert_eq!(state.last_log_id, Some(log_id(2, 60)));
    // Timestamps and payloads arrived as the sender stored them.
    let log = r.store.log();
    let got = log.lock().unwrap().reader().read_range(20..61).unwrap();
    assert_eq!(got, (20..=60).map(|i| entry(i, 2)).collect::<Vec<_>>());
    assert_eq!(r.sm.applied_state().await.unwrap().0, Some(log_id(2, 60)));
}

#[tokio::test]
async fn an_empty_transfer_leaves_a_log_that_continues_after_the_snapshot() {
    let mut r = replica(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
    r.catch_up.receive(chunk(3, true, [])).unwrap();
    r.catch_up.complete(3, &log_id(4, 90), false).unwrap();
    r.sm.install_snapshot(&meta(4, 90), b"{}".to_vec()).await.unwrap();
    assert_eq!(indexes(&mut r).await, Vec::<(u64, u64)>::new());
    let log = r.store.log();
    assert_eq!(log.lock().unwrap().next_index(), 91);
    let state = r.store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(4, 90)));
}

#[tokio::test]
async fn a_replica_holding_the_snapshot_entry_keeps_its_log() {
    let mut r = replica(&(1..=30).map(|i| entry(i, 3)).collect::<Vec<_>>());
    r.sm.install_snapshot(&meta(3, 25), b"{}".to_vec()).await.unwrap();
    assert_eq!(
        indexes(&mut r).await,
        (1..=30).map(|i| (i, 3)).collect::<Vec<_>>()
    );
    assert_eq!(
        r.store.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(3, 25))
    );
}

#[tokio::test]
async fn incomplete_or_foreign_transfers_are_refused() {
    let mut r = replica(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
    // A chunk of a transfer that was never started.
    assert!(matches!(
        r.catch_up.receive(chunk(9, false, [entry(10, 2)])),
        Err(CatchUpError::OtherTransfer(9))
    ));
    r.catch_up
        .receive(chunk(1, true, (10..20).map(|i| entry(i, 2))))
        .unwrap();
    // Another transfer's chunk does not mix in.
    assert!(r.catch_up.receive(chunk(2, false, [entry(20, 2)])).is_err());
    // The staged log ends at 19, not 30: not installable.
    assert!(matches!(
        r.catch_up.complete(1, &log_id(2, 30), true),
        Err(CatchUpError::Incomplete { .. })
    ));
    // Without a staged log the install fails and the replica's log is untouched.
    assert!(r.sm.install_snapshot(&meta(2, 30), b"{}".to_vec()).await.is_err());
    assert_eq!(indexes(&mut r).await, (1..=5).map(|i| (i, 1)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_complete_staged_log_survives_a_restart() {
    let mut r = replica(&(1..=5).map(|i| entry(i, 1)).collect::<Vec<_>>());
    r.catch_up
        .receive(chunk(5, true, (10..=20).map(|i| entry(i, 2))))
        .unwrap();
    r.catch_up.complete(5, &log_id(2, 20), true).unwrap();
    // The node restarts before the install: the replica's catch-up state is rebuilt from disk.
    let again = CatchUp::new(r.dir.path(), config(), r.store.log(), r.store.purged_marker()).unwrap();
    again.install(&log_id(2, 20)).unwrap();
    assert_eq!(
        indexes(&mut r).await,
        (10..=20).map(|i| (i, 2)).collect::<Vec<_>>()
    );
}
