//! Catching a shard replica up from a peer's snapshot.
//!
//! A shard's records live in its Raft log, so a shard snapshot is the log itself: everything
//! the sender still keeps up to the snapshot's last log id. The sender streams those entries
//! (whole segments' worth per message, not one Raft entry at a time) into a staged log beside
//! the replica's own; when the stream is complete the staged log is sealed ready, and the state
//! machine's `install_snapshot` swaps it in ([`runnel_log::Log::install`]) unless the replica's
//! own log already holds the snapshot's last entry.
//!
//! The staged log lives in `snapshot.staging/` and, once complete, `snapshot.ready/` inside
//! the replica's directory. One transfer at a time: a transfer that starts replaces any other.

use std::fs;
use std::io;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use openraft::type_config::alias::LogIdOf;
use runnel_log::Entry;
use runnel_log::Log;
use runnel_log::LogConfig;

use super::log_store::PurgedMarker;
use super::types::ShardRaft;
use super::vote_file;

const STAGING: &str = "snapshot.staging";
const READY: &str = "snapshot.ready";
/// In a complete staged log: the snapshot's last log id.
const READY_ID: &str = "last.json";

type LogId = LogIdOf<ShardRaft>;

/// One message of a snapshot transfer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Chunk {
    /// Chosen by the sender for one transfer.
    pub transfer: u64,
    /// The first message of the transfer: staging starts over.
    pub first: bool,
    pub entries: Vec<WireEntry>,
}

/// A log entry as stored, with the leader-assigned arrival time.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct WireEntry {
    pub index: u64,
    pub term: u64,
    pub timestamp_ms: i64,
    pub kind: u8,
    pub payload: bytes::Bytes,
}

impl From<Entry> for WireEntry {
    fn from(e: Entry) -> WireEntry {
        WireEntry {
            index: e.index,
            term: e.term,
            timestamp_ms: e.timestamp_ms,
            kind: e.kind,
            payload: e.payload,
        }
    }
}

impl From<WireEntry> for Entry {
    fn from(e: WireEntry) -> Entry {
        Entry {
            index: e.index,
            term: e.term,
            timestamp_ms: e.timestamp_ms,
            kind: e.kind,
            payload: e.payload,
        }
    }
}

/// Why a transfer step was refused (the sender retries the whole transfer later).
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("snapshot transfer {0} is not the one being staged")]
    OtherTransfer(u64),
    #[error("staged log ends at {got:?}, the snapshot at {want}")]
    Incomplete { got: Option<(u64, u64)>, want: String },
    #[error("staged log: {0}")]
    Log(#[from] runnel_log::LogError),
    #[error("staged log: {0}")]
    Io(#[from] io::Error),
}

struct Staging {
    transfer: u64,
    log: Option<Log>,
}

/// The catch-up state of one shard replica, shared by its Raft transport (receiving) and its
/// state machine (installing).
pub struct CatchUp {
    dir: PathBuf,
    config: LogConfig,
    log: Arc<Mutex<Log>>,
    purged: PurgedMarker<ShardRaft>,
    staging: Mutex<Option<Staging>>,
    ready: Mutex<Option<LogId>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remove_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl CatchUp {
    /// Catch-up for the replica in `dir`; leftovers of an interrupted transfer are removed
    /// (an install that had started is finished by opening the log).
    pub fn new(
        dir: &Path,
        config: LogConfig,
        log: Arc<Mutex<Log>>,
        purged: PurgedMarker<ShardRaft>,
    ) -> io::Result<CatchUp> {
        remove_dir(&dir.join(STAGING))?;
        // A complete staged log survives a restart: the snapshot it belongs to may have been
        // recorded before the crash, and restoring that snapshot installs it.
        let ready = vote_file::read_json::<LogId>(&dir.join(READY).join(READY_ID))
            .ok()
            .flatten();
        if ready.is_none() {
            remove_dir(&dir.join(READY))?;
        }
        Ok(CatchUp {
            dir: dir.to_owned(),
            config,
            log,
            purged,
            staging: Mutex::new(None),
            ready: Mutex::new(ready),
        })
    }

    /// Stages one message of a transfer.
    pub fn receive(&self, chunk: Chunk) -> Result<(), CatchUpError> {
        let mut staging = lock(&self.staging);
        if chunk.first {
            *staging = None;
            remove_dir(&self.dir.join(STAGING))?;
            *staging = Some(Staging {
                transfer: chunk.transfer,
                log: Some(Log::open(&self.dir.join(STAGING), self.config.clone())?),
            });
        }
        let Some(Staging {
            transfer,
            log: Some(log),
        }) = staging.as_mut()
        else {
            return Err(CatchUpError::OtherTransfer(chunk.transfer));
        };
        if *transfer != chunk.transfer {
            return Err(CatchUpError::OtherTransfer(chunk.transfer));
        }
        let entries: Vec<Entry> = chunk.entries.into_iter().map(Entry::from).collect();
        log.append(&entries)?;
        Ok(())
    }

    /// Ends a transfer: the staged log must end exactly at `last` (or be empty when the sender
    /// kept nothing up to it). It becomes the log the next install of `last` puts in place.
    pub fn complete(&self, transfer: u64, last: &LogId, sent_any: bool) -> Result<(), CatchUpError> {
        let mut staging = lock(&self.staging);
        match staging.as_ref() {
            Some(s) if s.transfer == transfer => {}
            _ => return Err(CatchUpError::OtherTransfer(transfer)),
        }
        let Some(mut log) = staging.take().and_then(|s| s.log) else {
            return Err(CatchUpError::OtherTransfer(transfer));
        };
        let want = (last.index, last.leader_id.term);
        if sent_any {
            if log.last_entry_id() != Some(want) {
                return Err(CatchUpError::Incomplete {
                    got: log.last_entry_id(),
                    want: last.to_string(),
                });
            }
        } else {
            if log.last_entry_id().is_some() {
                return Err(CatchUpError::Incomplete {
                    got: log.last_entry_id(),
                    want: last.to_string(),
                });
            }
            // Nothing kept up to `last`: the installed log continues after it.
            log.purge_through(last.index)?;
        }
        log.sync()?;
        drop(log);
        vote_file::write_json(&self.dir.join(STAGING).join(READY_ID), last, true)?;
        remove_dir(&self.dir.join(READY))?;
        fs::rename(self.dir.join(STAGING), self.dir.join(READY))?;
        *lock(&self.ready) = Some(*last);
        Ok(())
    }

    /// The state machine's install of a snapshot ending at `last`: the replica's own log stays
    /// when it holds `last` already; otherwise the staged log completed for `last` replaces it.
    /// Either way entries up to `last` are purged for Raft (they stay readable).
    pub fn install(&self, last: &LogId) -> io::Result<()> {
        let ready = lock(&self.ready).take();
        {
            let mut log = lock(&self.log);
            let reader = log.reader();
            let local_term = reader
                .read_range(last.index..last.index + 1)
                .ok()
                .and_then(|e| e.first().map(|e| e.term));
            if local_term == Some(last.leader_id.term) {
                remove_dir(&self.dir.join(READY))?;
            } else if ready.as_ref() == Some(last) {
                log.install(READY).map_err(io::Error::from)?;
                tracing::info!(dir = %self.dir.display(), %last, first = ?log.first_index(), "caught up from a snapshot: installed the sender's log");
            } else {
                return Err(io::Error::other(format!(
                    "no staged log for the snapshot at {last} (staged: {ready:?})"
                )));
            }
        }
        self.purged.set(*last)
    }
}
