//! The state machine of a shard group. Records stay where Raft wrote them (the shard log); the
//! state machine only moves the visibility watermark: readers see entries up to the last
//! applied index, which is committed and therefore durable on a quorum.
//!
//! A seal entry closes the shard (split or merge): every later entry is answered
//! [`ShardReply::Closed`] on every replica alike, and the watermark never passes the seal, so
//! no reader ever sees records appended after it.

use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use futures::Stream;
use futures::TryStreamExt;
use openraft::StoredMembership;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::storage::SnapshotMeta;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::StoredMembershipOf;
use tokio::sync::watch;

use super::catch_up::CatchUp;
use super::snapshot_file::FileSnapshotBuilder;
use super::snapshot_file::SnapshotFile;
use super::types::ShardCommand;
use super::types::ShardRaft;
use super::types::ShardReply;
use super::vote_file;

type C = ShardRaft;

const APPLIED_FILE: &str = "applied.json";
/// How often the applied position is written down (it only shortens replay after a restart).
const PERSIST_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Applied {
    last: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    /// Log index of the first seal entry, once applied.
    #[serde(default)]
    sealed_at: Option<u64>,
}

impl Applied {
    /// The highest index readers may see.
    fn readable(&self) -> u64 {
        let last = self.last.as_ref().map_or(0, |l| l.index);
        self.sealed_at.map_or(last, |s| s.min(last))
    }
}

/// Running totals of the record batches this replica applied since it started (replay
/// included): what the ON_DEMAND split policy samples on the shard's leader.
#[derive(Debug, Default)]
pub struct AppliedWrites {
    bytes: AtomicU64,
    records: AtomicU64,
}

impl AppliedWrites {
    /// (batch bytes, records) applied so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.records.load(Ordering::Relaxed),
        )
    }

    fn count(&self, batch: &[u8]) {
        // The record count follows the version byte (see `model::batch`).
        let records = batch
            .get(1..5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_be_bytes);
        self.bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.records.fetch_add(u64::from(records), Ordering::Relaxed);
    }
}

pub struct ShardStateMachine {
    dir: PathBuf,
    catch_up: Arc<CatchUp>,
    writes: Arc<AppliedWrites>,
    applied: Applied,
    snapshot: SnapshotFile,
    /// Highest applied log index (0 before the first entry).
    watermark: watch::Sender<u64>,
    persisted_at: Instant,
}

impl ShardStateMachine {
    /// Opens the state machine; `last_log_index` bounds the persisted position (entries that were
    /// not durable under a relaxed fsync policy are replayed, never assumed).
    pub fn open(
        dir: &Path,
        last_log_index: Option<u64>,
        catch_up: Arc<CatchUp>,
    ) -> io::Result<ShardStateMachine> {
        let mut applied: Applied = vote_file::read_json(&dir.join(APPLIED_FILE))?.unwrap_or_default();
        if applied.last.as_ref().map(|l| l.index) > last_log_index {
            applied = Applied::default();
        }
        if applied.sealed_at > applied.last.as_ref().map(|l| l.index) {
            applied.sealed_at = None;
        }
        let (watermark, _) = watch::channel(applied.readable());
        Ok(ShardStateMachine {
            dir: dir.to_owned(),
            catch_up,
            writes: Arc::default(),
            applied,
            snapshot: SnapshotFile::new(dir),
            watermark,
            persisted_at: Instant::now(),
        })
    }

    /// The totals of the record batches applied.
    pub fn writes(&self) -> Arc<AppliedWrites> {
        self.writes.clone()
    }

    /// Follows the highest applied (readable) log index.
    pub fn watermark(&self) -> watch::Receiver<u64> {
        self.watermark.subscribe()
    }

    fn persist(&mut self, force: bool) -> io::Result<()> {
        if force || self.persisted_at.elapsed() >= PERSIST_EVERY {
            vote_file::write_json(&self.dir.join(APPLIED_FILE), &self.applied, false)?;
            self.persisted_at = Instant::now();
        }
        Ok(())
    }

    fn meta(&self) -> SnapshotMetaOf<C> {
        SnapshotMeta {
            last_log_id: self.applied.last,
            last_membership: self.applied.membership.clone(),
        }
    }
}

impl RaftStateMachine<C> for ShardStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = FileSnapshotBuilder<C>;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        Ok((self.applied.last, self.applied.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + openraft::OptionalSend,
    {
        let mut last = None;
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            match &entry.payload {
                openraft::EntryPayload::Membership(m) => {
                    self.applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
                openraft::EntryPayload::Normal(ShardCommand::Seal) if self.applied.sealed_at.is_none() => {
                    self.applied.sealed_at = Some(entry.log_id.index);
                }
                openraft::EntryPayload::Normal(ShardCommand::Records { batch, .. })
                    if self.applied.sealed_at.is_none() =>
                {
                    self.writes.count(batch);
                }
                _ => {}
            }
            let reply = match self.applied.sealed_at {
                Some(at) => ShardReply::Closed { at },
                None => ShardReply::Appended,
            };
            last = Some(entry.log_id);
            responders.extend(responder.map(|r| (r, reply)));
        }
        if let Some(last) = last {
            self.applied.last = Some(last);
            // Visible to readers before anyone is told it is written: read-your-writes.
            self.watermark.send_replace(self.applied.readable());
            self.persist(false)?;
        }
        for (r, reply) in responders {
            r.send(reply);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let meta = self.meta();
        let data = serde_json::to_vec(&self.applied).unwrap_or_default();
        FileSnapshotBuilder {
            meta,
            data,
            file: SnapshotFile::new(&self.dir),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        // A shard snapshot's data is the applied position and the seal; its records are the
        // sender's log up to the snapshot, staged beside this replica's log by the transport.
        // Order matters for a crash in between: the snapshot is recorded first, so a restart
        // restores it (openraft installs a snapshot newer than the applied position), which
        // installs the staged log if it is not in place yet (it survives restarts) or keeps
        // the log that already is.
        self.snapshot.save::<C>(meta, &snapshot)?;
        if let Some(last) = &meta.last_log_id {
            self.catch_up.install(last)?;
        }
        let sealed_at = serde_json::from_slice::<Applied>(&snapshot)
            .ok()
            .and_then(|a| a.sealed_at);
        self.applied = Applied {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
            sealed_at,
        };
        self.watermark.send_replace(self.applied.readable());
        self.persist(true)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        self.snapshot.load::<C>()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::AppliedWrites;
    use crate::model::Record;
    use crate::model::RecordBatch;

    #[test]
    fn applied_writes_count_batch_bytes_and_records() {
        let batch = RecordBatch {
            records: (0..3)
                .map(|i| Record {
                    partition_key: format!("k{i}"),
                    explicit_hash_key: None,
                    data: Bytes::from(vec![7u8; 10]),
                })
                .collect(),
        }
        .encode();
        let w = AppliedWrites::default();
        w.count(&batch);
        w.count(&batch);
        assert_eq!(w.totals(), (2 * batch.len() as u64, 6));
        // A malformed entry adds its bytes and no records, never panics.
        w.count(&[1]);
        assert_eq!(w.totals(), (2 * batch.len() as u64 + 1, 6));
    }
}
