//! Catch-up past retention, with real processes: a 3-node cluster writes enough to a shard that
//! its first segments expire and are deleted on every replica (retention's clock runs 25 hours
//! ahead here), then a fourth node joins and a replica moves to it. The group's log no longer
//! starts at its first entry, so the new replica is caught up by a snapshot that carries the
//! sender's log (`raft::catch_up`), not by replaying entries. Afterwards the new replica's log
//! is, entry for entry, the same as an old replica's, and reads through it return a suffix of
//! what was written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::path::PathBuf;

use runnel_log::Log;
use runnel_log::LogConfig;
use runnel_node::raft::codec::KIND_RECORDS;
use runnel_proto::v1 as pb;
use runnel_proto::v1::streams_client::StreamsClient;
use support::cluster::Cluster;
use support::joiner::Joiner;
use support::membership::move_replica;
use support::wait::applied;
use support::wait::eventually;
use tonic::transport::Channel;

const STREAM: &str = "expiring";
/// 1 MiB segments, retention checked every second with its clock 25 hours ahead: every sealed
/// segment of a 24-hour stream expires as soon as it is sealed.
const ARGS: &[&str] = &[
    "--throttling",
    "off",
    "--segment-mib",
    "1",
    "--retention-check-secs",
    "1",
    "--retention-clock-offset-secs",
    "90000",
];

/// Writes records `ids` (1 KiB each, 100 per call) and returns nothing until all are acknowledged.
async fn write(client: &mut StreamsClient<Channel>, ids: std::ops::Range<u64>) {
    let ids: Vec<u64> = ids.collect();
    for batch in ids.chunks(100) {
        let records = batch
            .iter()
            .map(|i| support::entry("k", format!("{i:08}:{}", "x".repeat(1015))))
            .collect();
        let resp = client
            .put_records(pb::PutRecordsRequest {
                stream_name: STREAM.into(),
                records,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.failed_record_count, 0, "{resp:?}");
    }
}

/// The directory of the only shard replica under a node's data directory.
fn group_dir(data: &Path) -> Option<PathBuf> {
    let mut groups: Vec<PathBuf> = std::fs::read_dir(data.join("shards"))
        .ok()?
        .map(|d| d.unwrap().path())
        .collect();
    groups.sort();
    groups.pop()
}

/// The base index of the oldest segment of the only shard replica on a node.
fn first_segment(data: &Path) -> Option<u64> {
    std::fs::read_dir(group_dir(data)?)
        .ok()?
        .filter_map(|d| {
            let name = d.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<u64>().ok()
        })
        .min()
}

fn entries(dir: &Path) -> Vec<runnel_log::Entry> {
    let log = Log::open(dir, LogConfig::default()).unwrap();
    let reader = log.reader();
    match reader.first_index() {
        Some(first) => reader.read(first, usize::MAX, usize::MAX).unwrap(),
        None => Vec::new(),
    }
}

/// Waits until every node in `dirs` has deleted its shard log below `first` (retention ran).
async fn wait_deleted_below(what: &str, logs: impl Fn() -> String, dirs: &[PathBuf], first: u64) {
    eventually(what, logs, || async move {
        dirs.iter().all(|d| first_segment(d).is_some_and(|b| b >= first))
    })
    .await;
}

/// Waits until the node with metrics port `follower` has applied every shard group as far as
/// the node with `leader` (both up).
async fn wait_applied_alike(what: &str, logs: impl Fn() -> String, follower: u16, leader: u16) {
    eventually(what, logs, || async move {
        let mine = applied(follower).await;
        !mine.is_empty() && mine == applied(leader).await
    })
    .await;
}

/// Restarts node 3 and waits until it has applied as far as node 1; answers whether it was
/// caught up from a snapshot.
async fn restart_node_3_and_catch_up(cluster: &mut Cluster) -> bool {
    cluster.restart(2);
    let (node3, node1) = (cluster.members[2].metrics, cluster.members[0].metrics);
    wait_applied_alike(
        "node 3 to apply as far as node 1",
        || cluster.logs(),
        node3,
        node1,
    )
    .await;
    std::fs::read_to_string(&cluster.members[2].log)
        .unwrap()
        .contains("caught up from a snapshot")
}

/// Two replicas' logs end at the same entry and agree, Raft entry for Raft entry, wherever both
/// still hold it (blank and membership entries carry each replica's own append time; records
/// carry the leader's). Returns the first index compared.
fn assert_same_log(a: (&str, &[runnel_log::Entry]), b: (&str, &[runnel_log::Entry])) -> u64 {
    let range = |l: &[runnel_log::Entry]| (l[0].index, l[l.len() - 1].index);
    let (ra, rb) = (range(a.1), range(b.1));
    assert_eq!(ra.1, rb.1, "{} holds {ra:?}, {} holds {rb:?}", a.0, b.0);
    let from = ra.0.max(rb.0);
    let overlap = |log: &[runnel_log::Entry]| -> Vec<(u64, u64, u8, bytes::Bytes, Option<i64>)> {
        log.iter()
            .filter(|e| e.index >= from)
            .map(|e| {
                let ts = (e.kind == KIND_RECORDS).then_some(e.timestamp_ms);
                (e.index, e.term, e.kind, e.payload.clone(), ts)
            })
            .collect()
    };
    assert!(
        overlap(a.1).len() > 1,
        "{} and {} share too little: {ra:?} {rb:?}",
        a.0,
        b.0
    );
    assert!(
        overlap(a.1) == overlap(b.1),
        "{}'s log differs from {}'s from index {from}",
        a.0,
        b.0
    );
    from
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_replica_catches_up_from_a_snapshot_once_retention_deleted_the_log_start() {
    let mut cluster = Cluster::start_with(3, ARGS);
    let mut admin = cluster.create_stream(0, STREAM, 1).await;
    let shards = support::wait_active(&mut admin, STREAM).await;
    let mut client = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();

    // About 3 MiB: several segments, sealed and then expired on every replica.
    write(&mut client, 0..3000).await;
    let dirs: Vec<PathBuf> = cluster.members.iter().map(|m| m.dir.clone()).collect();
    wait_deleted_below(
        "retention to delete the first segments on every replica",
        || cluster.logs(),
        &dirs,
        2,
    )
    .await;

    // Node 4 joins (its own retention left alone, so it keeps what it receives), and shard 0's
    // replica moves there from node 1.
    let mut before_move = 0;
    while before_move == 0 {
        before_move = applied(cluster.members[1].metrics)
            .await
            .values()
            .next()
            .copied()
            .unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut joiner = Joiner::start_with(4, cluster.members[1].grpc, &ARGS[2..4]);
    let logs = || format!("{}\n--- node 4\n{}", cluster.logs(), joiner.log());
    support::cluster::wait_ready(&joiner.endpoint(), STREAM).await;
    move_replica(&mut admin, STREAM, (0, &shards[0]), (1, 4), vec![2, 3, 4], &logs).await;
    // Writes after the move reach the new replica through ordinary replication.
    write(&mut client, 3000..3200).await;
    wait_applied_alike(
        "node 4 to apply as far as node 2",
        &logs,
        joiner.metrics,
        cluster.members[1].metrics,
    )
    .await;
    assert!(
        joiner.log().contains("caught up from a snapshot"),
        "node 4 did not catch up from a snapshot:\n{}",
        joiner.log()
    );

    // Reads (served by the leader, wherever it is) return a suffix of what was written, in order.
    let mut client4 = support::streams_client(&joiner.endpoint()).await.unwrap();
    let records = support::read_shard(&mut client4, STREAM, &shards[0]).await;
    let ids: Vec<u64> = records
        .iter()
        .map(|r| std::str::from_utf8(&r.data).unwrap()[..8].parse().unwrap())
        .collect();
    assert!(
        !ids.is_empty() && ids[0] > 0,
        "retention removed the oldest records"
    );
    assert_eq!(ids, (ids[0]..3200).collect::<Vec<_>>());

    // Entry for entry, node 4's log is node 2's log where both still hold it, to the same end.
    joiner.kill9();
    for m in &mut cluster.members {
        m.kill9();
    }
    let mine = entries(&group_dir(&joiner.dir.path().join("data")).unwrap());
    let theirs = entries(&group_dir(&cluster.members[1].dir).unwrap());
    let from = assert_same_log(("node 4", &mine), ("node 2", &theirs));
    println!("cluster_catch_up: node 4 and node 2 agree from index {from}");
    // Node 4 holds entries from before it joined, but not the group's first ones: they came
    // with the snapshot, not by replaying the log from the start.
    assert!(mine[0].index > 1, "node 4's log starts at {}", mine[0].index);
    assert!(
        mine[0].index <= before_move,
        "node 4 holds nothing from before the move (first {}, applied before the move {before_move})",
        mine[0].index
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_down_past_retention_catches_up_from_a_snapshot_on_restart() {
    let mut cluster = Cluster::start_with(3, ARGS);
    let mut admin = cluster.create_stream(0, STREAM, 1).await;
    support::wait_active(&mut admin, STREAM).await;
    let mut client = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();
    write(&mut client, 0..300).await;

    // Node 3 goes down; the others write on until retention has deleted, on both, entries
    // node 3 never received.
    cluster.members[2].kill9();
    let stale = entries(&group_dir(&cluster.members[2].dir).unwrap());
    let stale_end = stale.last().map_or(0, |e| e.index);
    let mut client = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();
    write(&mut client, 300..3300).await;
    let dirs: Vec<PathBuf> = cluster.members[..2].iter().map(|m| m.dir.clone()).collect();
    wait_deleted_below(
        "retention to delete entries node 3 lacks on nodes 1 and 2",
        || cluster.logs(),
        &dirs,
        stale_end + 2,
    )
    .await;

    cluster.restart(2);
    write(&mut client, 3300..3400).await;
    wait_applied_alike(
        "node 3 to apply as far as node 1",
        || cluster.logs(),
        cluster.members[2].metrics,
        cluster.members[0].metrics,
    )
    .await;
    let log3 = std::fs::read_to_string(&cluster.members[2].log).unwrap();
    assert!(
        log3.contains("caught up from a snapshot"),
        "node 3 did not catch up from a snapshot:\n{log3}"
    );

    for m in &mut cluster.members {
        m.kill9();
    }
    let mine = entries(&group_dir(&cluster.members[2].dir).unwrap());
    let theirs = entries(&group_dir(&cluster.members[0].dir).unwrap());
    let from = assert_same_log(("node 3", &mine), ("node 1", &theirs));
    println!(
        "cluster_catch_up: node 3 held ..={stale_end} when it went down; it and node 1 agree from index {from}"
    );
    // Its stale log was replaced: it no longer starts where the group did.
    assert!(
        mine[0].index > stale_end,
        "node 3's log starts at {}",
        mine[0].index
    );
}

/// Records expire 20 s after they arrive: segments sealed before a follower goes down expire
/// while it is down, without it lacking any of their entries.
const EXPIRE_SOON: &[&str] = &[
    "--throttling",
    "off",
    "--segment-mib",
    "1",
    "--retention-check-secs",
    "1",
    "--retention-clock-offset-secs",
    "86380",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_merely_behind_gets_entries_not_a_snapshot() {
    let mut cluster = Cluster::start_with(3, EXPIRE_SOON);
    let mut admin = cluster.create_stream(0, STREAM, 1).await;
    support::wait_active(&mut admin, STREAM).await;
    let mut client = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();
    // Several sealed segments, on every replica, not expired yet.
    write(&mut client, 0..3000).await;
    let metrics: Vec<u16> = cluster.members.iter().map(|m| m.metrics).collect();
    wait_applied_alike(
        "node 3 to apply everything",
        || cluster.logs(),
        metrics[2],
        metrics[0],
    )
    .await;
    let behind = *applied(metrics[2]).await.values().next().unwrap();

    // Node 3 goes down; the group moves on; the old segments expire on the others, which
    // snapshot and purge Raft's log through them.
    cluster.members[2].kill9();
    let mut client = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();
    write(&mut client, 3000..3030).await;
    let dirs: Vec<PathBuf> = cluster.members[..2].iter().map(|m| m.dir.clone()).collect();
    wait_deleted_below(
        "retention to delete the old segments on nodes 1 and 2",
        || cluster.logs(),
        &dirs,
        2,
    )
    .await;
    let purged_on_others = dirs.iter().filter_map(|d| first_segment(d)).max().unwrap();

    let snapshot = restart_node_3_and_catch_up(&mut cluster).await;
    println!("cluster_catch_up: node 3 was down at {behind}; the others deleted below {purged_on_others}");
    if purged_on_others <= behind + 1 {
        assert!(
            !snapshot,
            "node 3 lacked nothing that expired, yet was sent a snapshot"
        );
    } else {
        println!("cluster_catch_up: a segment sealed while node 3 was down expired; a snapshot was due");
    }
}

/// A follower that missed more record bytes than one peer message holds (64 MiB) still catches
/// up: replication reads at most 16 MiB of entries per AppendEntries, whatever openraft's entry
/// count allows (300 entries of records up to 10 MiB each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_by_more_than_one_message_catches_up() {
    let mut cluster = Cluster::start_with(3, &["--throttling", "off"]);
    let mut admin = cluster.create_stream(0, STREAM, 1).await;
    let shard = support::wait_active(&mut admin, STREAM).await.remove(0);
    admin
        .update_max_record_size(pb::UpdateMaxRecordSizeRequest {
            stream_name: STREAM.into(),
            max_record_size_kib: 10 * 1024,
        })
        .await
        .unwrap();
    support::wait_active(&mut admin, STREAM).await;

    cluster.members[2].kill9();
    // 14 records of 6 MiB (84 MiB), one per call, while node 3 is down.
    let mut client = support::streams_client(&cluster.members[0].endpoint())
        .await
        .unwrap();
    let marks: Vec<u8> = (0..14u8).map(|i| b'a' + i).collect();
    for mark in &marks {
        let resp = client
            .put_records(pb::PutRecordsRequest {
                stream_name: STREAM.into(),
                records: vec![support::entry("k", vec![*mark; 6 << 20])],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.failed_record_count, 0, "{resp:?}");
    }

    assert!(
        !restart_node_3_and_catch_up(&mut cluster).await,
        "node 3 was sent a snapshot; nothing was purged"
    );
    let mut client = support::streams_client(&cluster.members[2].endpoint())
        .await
        .unwrap();
    let records = support::read_shard(&mut client, STREAM, &shard).await;
    let read: Vec<(u8, usize)> = records.iter().map(|r| (r.data[0], r.data.len())).collect();
    assert_eq!(read, marks.iter().map(|m| (*m, 6 << 20)).collect::<Vec<_>>());

    // Node 3's log is node 1's, entry for entry, to the same end.
    for m in &mut cluster.members {
        m.kill9();
    }
    let mine = entries(&group_dir(&cluster.members[2].dir).unwrap());
    let theirs = entries(&group_dir(&cluster.members[0].dir).unwrap());
    assert_same_log(("node 3", &mine), ("node 1", &theirs));
}
