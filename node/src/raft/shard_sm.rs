//! The state machine of a shard group. Records stay where Raft wrote them (the shard log); the
//! state machine only moves the visibility watermark: readers see entries up to the last
//! applied index, which is committed and therefore durable on a quorum.

use std::io;
use std::path::Path;
use std::path::PathBuf;
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

use super::snapshot_file::FileSnapshotBuilder;
use super::snapshot_file::SnapshotFile;
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
}

pub struct ShardStateMachine {
    dir: PathBuf,
    applied: Applied,
    snapshot: SnapshotFile,
    /// Highest applied log index (0 before the first entry).
    watermark: watch::Sender<u64>,
    persisted_at: Instant,
}

impl ShardStateMachine {
    /// Opens the state machine; `last_log_index` bounds the persisted position (entries that were
    /// not durable under a relaxed fsync policy are replayed, never assumed).
    pub fn open(dir: &Path, last_log_index: Option<u64>) -> io::Result<ShardStateMachine> {
        let mut applied: Applied = vote_file::read_json(&dir.join(APPLIED_FILE))?.unwrap_or_default();
        if applied.last.as_ref().map(|l| l.index) > last_log_index {
            applied = Applied::default();
        }
        let (watermark, _) = watch::channel(applied.last.as_ref().map_or(0, |l| l.index));
        Ok(ShardStateMachine {
            dir: dir.to_owned(),
            applied,
            snapshot: SnapshotFile::new(dir),
            watermark,
            persisted_at: Instant::now(),
        })
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
            if let openraft::EntryPayload::Membership(m) = &entry.payload {
                self.applied.membership = StoredMembership::new(Some(entry.log_id), m.clone());
            }
            last = Some(entry.log_id);
            responders.extend(responder);
        }
        if let Some(last) = last {
            let index = last.index;
            self.applied.last = Some(last);
            // Visible to readers before anyone is told it is written: read-your-writes.
            self.watermark.send_replace(index);
            self.persist(false)?;
        }
        for r in responders {
            r.send(ShardReply);
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
        // A shard snapshot carries only the applied position; the records come with the log.
        self.applied = Applied {
            last: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.snapshot.save::<C>(meta, &snapshot)?;
        self.watermark
            .send_replace(self.applied.last.as_ref().map_or(0, |l| l.index));
        self.persist(true)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        self.snapshot.load::<C>()
    }
}
