//! openraft's log storage over a [`runnel_log::Log`]: the shard log is the Raft log.

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::Bound;
use std::ops::RangeBounds;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use openraft::LogState;
use openraft::OptionalSend;
use openraft::RaftLogReader;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::VoteOf;
use runnel_log::Log;
use runnel_log::LogReader;

use super::codec::EntryOf;
use super::codec::FramedConfig;
use super::flusher::GroupCommit;
use super::vote_file;

const VOTE_FILE: &str = "vote.json";
const PURGED_FILE: &str = "purged.json";

fn lock_err<T>(_: T) -> io::Error {
    io::Error::other("log lock poisoned")
}

/// State shared by the store and its readers.
struct Shared<C: FramedConfig> {
    dir: PathBuf,
    vote: Mutex<Option<VoteOf<C>>>,
    purged: Mutex<Option<LogIdOf<C>>>,
}

/// What purging the Raft log removes from disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgePolicy {
    /// The log is only a Raft log (the catalog, which keeps its state in snapshots): purged
    /// entries are deleted.
    Delete,
    /// The log is also the record store (a shard): a purge only tells Raft that peers needing
    /// those entries get a snapshot instead; retention deletes entries, once Raft has purged
    /// them (`crate::retention`).
    Keep,
}

/// Records a purge point for Raft without deleting anything: a replica that installed a
/// snapshot holds the entries up to it but must never be asked to replicate from below it.
pub struct PurgedMarker<C: FramedConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: FramedConfig> PurgedMarker<C> {
    pub fn set(&self, log_id: LogIdOf<C>) -> io::Result<()> {
        let mut purged = self.shared.purged.lock().map_err(lock_err)?;
        if purged.as_ref().is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        vote_file::write_json(&self.shared.dir.join(PURGED_FILE), &log_id, true)?;
        *purged = Some(log_id);
        Ok(())
    }
}

/// The writer side, owned by openraft.
pub struct LogStore<C: FramedConfig> {
    group: u64,
    policy: PurgePolicy,
    log: Arc<Mutex<Log>>,
    reader: LogReader,
    shared: Arc<Shared<C>>,
    commit: GroupCommit,
}

/// A reader that openraft uses to replicate and apply entries.
pub struct LogStoreReader<C: FramedConfig> {
    reader: LogReader,
    shared: Arc<Shared<C>>,
    _p: PhantomData<C>,
}

impl<C: FramedConfig> Clone for LogStoreReader<C> {
    fn clone(&self) -> Self {
        LogStoreReader {
            reader: self.reader.clone(),
            shared: self.shared.clone(),
            _p: PhantomData,
        }
    }
}

impl<C: FramedConfig> LogStore<C> {
    /// Opens (and recovers) the log of one group in `dir`.
    pub fn open(
        group: u64,
        dir: &Path,
        log: Log,
        commit: GroupCommit,
        policy: PurgePolicy,
    ) -> io::Result<LogStore<C>> {
        let vote = vote_file::read_json::<VoteOf<C>>(&dir.join(VOTE_FILE))?;
        let purged = vote_file::read_json::<LogIdOf<C>>(&dir.join(PURGED_FILE))?;
        let reader = log.reader();
        Ok(LogStore {
            group,
            policy,
            log: Arc::new(Mutex::new(log)),
            reader,
            shared: Arc::new(Shared {
                dir: dir.to_owned(),
                vote: Mutex::new(vote),
                purged: Mutex::new(purged),
            }),
            commit,
        })
    }

    /// The log itself, for retention and statistics.
    pub fn log(&self) -> Arc<Mutex<Log>> {
        self.log.clone()
    }

    pub fn log_reader(&self) -> LogReader {
        self.reader.clone()
    }

    fn read_half(&self) -> LogStoreReader<C> {
        LogStoreReader {
            reader: self.reader.clone(),
            shared: self.shared.clone(),
            _p: PhantomData,
        }
    }

    /// Sets the Raft purge point without deleting (a snapshot install).
    pub fn purged_marker(&self) -> PurgedMarker<C> {
        PurgedMarker {
            shared: self.shared.clone(),
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>, next: u64) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => next,
    };
    (start, end.min(next))
}

/// Bytes of entries replication reads for one AppendEntries (more only when a single entry is
/// larger). openraft bounds a request by entry count (`max_payload_entries`), and entries of
/// records up to 10 MiB would take a few hundred past the peer transport's 64 MiB message
/// limit; this bound, plus the 8 MiB of other groups' messages a peer batch may carry, stays
/// well under it.
const REPLICATION_READ_BYTES: usize = 16 << 20;

/// Reads log entries in `range`: all of them, or (with `limit`) those up to `limit` bytes.
async fn read_entries<C: FramedConfig>(
    reader: &LogReader,
    shared: &Shared<C>,
    range: impl RangeBounds<u64>,
    limit: Option<usize>,
) -> io::Result<Vec<EntryOf<C>>> {
    let (mut start, end) = bounds(&range, reader.next_index());
    match reader.first_index() {
        Some(first) => start = start.max(first),
        None => return Ok(Vec::new()),
    }
    // Entries Raft has purged may still be on disk (a shard keeps them for readers).
    if let Some(purged) = shared.purged.lock().map_err(lock_err)?.as_ref() {
        start = start.max(purged.index.saturating_add(1));
    }
    let mut out = Vec::new();
    while start < end {
        let frames = reader
            .read(start, (end - start) as usize, limit.unwrap_or(8 << 20))
            .map_err(io::Error::from)?;
        if frames.is_empty() {
            break;
        }
        for f in frames {
            if f.index >= end {
                break;
            }
            start = f.index + 1;
            out.push(C::from_frame(f)?);
        }
        if limit.is_some() {
            break;
        }
    }
    Ok(out)
}

impl<C: FramedConfig> RaftLogReader<C> for LogStoreReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        read_entries::<C>(&self.reader, &self.shared, range, None).await
    }

    /// What replication sends in one AppendEntries: at most [`REPLICATION_READ_BYTES`].
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<C::Entry>, io::Error> {
        read_entries::<C>(
            &self.reader,
            &self.shared,
            start..end,
            Some(REPLICATION_READ_BYTES),
        )
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.shared.vote.lock().map_err(lock_err)?.clone())
    }
}

impl<C: FramedConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        self.read_half().try_get_log_entries(range).await
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<C::Entry>, io::Error> {
        self.read_half().limited_get_log_entries(start, end).await
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.read_half().read_vote().await
    }
}

impl<C: FramedConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogStoreReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let purged = self.shared.purged.lock().map_err(lock_err)?.clone();
        let last = self.log.lock().map_err(lock_err)?.last_entry_id();
        // A shard keeps purged entries; Raft's purge point may also be past them (a snapshot
        // installed before its log was): the later of the two is the last log id.
        let last_log_id = last
            .map(|(index, term)| C::log_id(term, index))
            .max(purged.clone());
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.read_half()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        vote_file::write_json(&self.shared.dir.join(VOTE_FILE), vote, true)?;
        *self.shared.vote.lock().map_err(lock_err)? = Some(vote.clone());
        Ok(())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let now = crate::clock::now_ms();
        let frames = entries
            .into_iter()
            .map(|e| C::to_frame(&e, now))
            .collect::<io::Result<Vec<_>>>()?;
        let handle = {
            let mut log = self.log.lock().map_err(lock_err)?;
            log.append(&frames).map_err(io::Error::from)?;
            log.sync_handle()
        };
        self.commit
            .flush(self.group, handle, move |r| callback.io_completed(r));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let mut log = self.log.lock().map_err(lock_err)?;
        log.truncate_after(last_log_id.map(|l| l.index))
            .map_err(io::Error::from)
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let index = log_id.index;
        self.purged_marker().set(log_id)?;
        if self.policy == PurgePolicy::Keep {
            return Ok(());
        }
        let mut log = self.log.lock().map_err(lock_err)?;
        log.purge_through(index).map_err(io::Error::from)
    }
}
