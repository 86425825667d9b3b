//! One shard replica on this node: its Raft group and the shard-log reader.

use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use openraft::LinearizerOption;
use openraft::async_runtime::WatchReceiver;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use tokio::sync::watch;

use super::cursor::Cursor;
use super::cursor::ReadStart;
use crate::catalog::ShardRecord;
use crate::clock;
use crate::cluster::quiesce::GroupSwitch;
use crate::model::ShardId;
use crate::raft::group::ShardGroup;
use crate::raft::types::ShardCommand;
use crate::raft::types::ShardRaft;
use crate::raft::types::ShardReply;

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// This replica does not lead its group; `leader` is the leader's node id when known.
    #[error("shard {shard} is not led by this node")]
    NotLeader { shard: ShardId, leader: Option<u64> },
    #[error("shard {0} is shutting down")]
    ShuttingDown(ShardId),
    #[error("shard {shard} is unavailable: {message}")]
    Unavailable { shard: ShardId, message: String },
    #[error("storage error on shard {shard}: {message}")]
    Storage { shard: ShardId, message: String },
    /// The shard is sealed (split or merged) at log index `at`: nothing was appended to it; the
    /// records belong in its children.
    #[error("shard {shard} is closed")]
    Closed { shard: ShardId, at: u64 },
    /// The batch could not be read for admission (never expected: nodes encode batches).
    #[error("malformed batch for shard {shard}: {message}")]
    Malformed { shard: ShardId, message: String },
    /// The stream is encrypted and its key is not in the leader's keyring: nothing appended.
    #[error("{message}")]
    KeyNotFound { shard: ShardId, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("shard {shard} is not led by this node")]
    NotLeader { shard: ShardId, leader: Option<u64> },
    #[error("cannot read shard {shard}: {message}")]
    Failed { shard: ShardId, message: String },
    /// The shard's leader refused the read: over the shard's read or call limits.
    #[error("shard {shard} is over its read limits")]
    Throttled { shard: ShardId },
}

/// Where an appended batch landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub log_index: u64,
    pub arrival_ms: i64,
    /// Whether the batch was stored sealed (the stream's server-side encryption).
    pub encrypted: bool,
}

/// Frames read from the log, from a resolved start, all at or below `watermark`.
#[derive(Debug)]
pub struct FrameRead {
    pub start: Cursor,
    pub frames: Vec<runnel_log::Entry>,
    pub watermark: u64,
}

pub struct ShardReplica {
    pub shard: ShardRecord,
    pub stream: String,
    group: ShardGroup,
    node_id: u64,
    last_ts: AtomicI64,
    /// Whether the group is quiesced here (cluster mode), and what wakes it.
    quiesce: GroupSwitch,
}

impl ShardReplica {
    pub fn new(stream: String, shard: ShardRecord, group: ShardGroup, node_id: u64) -> ShardReplica {
        ShardReplica {
            shard,
            stream,
            group,
            node_id,
            last_ts: AtomicI64::new(0),
            quiesce: GroupSwitch::default(),
        }
    }

    pub fn id(&self) -> ShardId {
        ShardId(self.shard.index)
    }

    pub fn group(&self) -> &ShardGroup {
        &self.group
    }

    pub fn quiesce(&self) -> &GroupSwitch {
        &self.quiesce
    }

    /// A Raft message of the group arrived from another node: a quiesced group ticks again.
    pub fn on_raft_message(&self) {
        self.quiesce.on_message(&self.group.raft);
    }

    /// The term this replica leads its group quietly in, if it does.
    pub fn quiesced_leader_term(&self) -> Option<u64> {
        self.quiesce.quiet_term()
    }

    /// Arrival timestamps never go backwards within a shard, even if the clock does.
    fn arrival_ms(&self) -> i64 {
        let now = clock::now_ms();
        let prev = self.last_ts.fetch_max(now, Ordering::AcqRel);
        prev.max(now)
    }

    /// Whether this replica currently leads its group, and otherwise the leader's node id.
    pub fn leadership(&self) -> Result<(), Option<u64>> {
        let leader = self.group.raft.metrics().borrow_watched().current_leader;
        match leader {
            Some(l) if l == self.node_id => Ok(()),
            other => Err(other),
        }
    }

    /// Confirms that this replica leads its group, as a read does (a lease read while a quorum
    /// acknowledged it within its lease, else a heartbeat round to a quorum: a deposed leader
    /// gets no quorum), and returns the term it leads in. What it decides next was decided
    /// before any later leader was elected. Otherwise the leader it knows of, if any.
    pub async fn confirm_leadership(&self) -> Result<u64, Option<u64>> {
        self.leadership()?;
        self.quiesce.on_request(&self.group.raft);
        match self
            .group
            .raft
            .ensure_linearizable(LinearizerOption::new(None, true))
            .await
        {
            Ok(read) => Ok(read.committed_leader_id().term),
            Err(_) => Err(self.leadership().err().flatten()),
        }
    }

    /// Wakes a quiesced group before a write or a membership change. A quiet leader sent no
    /// heartbeats, so its leader lease has run out and openraft would refuse the write: a
    /// heartbeat round to a quorum renews it first (if that fails, the write fails as it would
    /// have).
    pub async fn wake_for_write(&self) {
        if self.quiesce.on_request(&self.group.raft) {
            let renewed = self
                .group
                .raft
                .ensure_linearizable(LinearizerOption::new(None, true))
                .await;
            if let Err(e) = renewed {
                tracing::debug!(shard = %self.id(), error = %e, "woken leader could not renew its lease");
            }
        }
    }

    /// Appends one encoded batch (`encrypted`: sealed) as one Raft entry; returns when it is
    /// committed and applied.
    pub async fn append(&self, batch: Bytes, encrypted: bool) -> Result<Appended, AppendError> {
        self.wake_for_write().await;
        let arrival_ms = self.arrival_ms();
        let cmd = ShardCommand::Records {
            timestamp_ms: arrival_ms,
            batch,
        };
        match self.group.raft.client_write(cmd).await {
            Ok(resp) => match resp.data {
                ShardReply::Appended => Ok(Appended {
                    log_index: resp.log_id.index,
                    arrival_ms,
                    encrypted,
                }),
                ShardReply::Closed { at } => Err(AppendError::Closed { shard: self.id(), at }),
            },
            Err(e) => Err(self.append_error(e)),
        }
    }

    /// Seals the shard (idempotent): returns the log index of the first seal, after which the
    /// group accepts no records.
    pub async fn seal(&self) -> Result<u64, AppendError> {
        self.wake_for_write().await;
        match self.group.raft.client_write(ShardCommand::Seal).await {
            Ok(resp) => match resp.data {
                ShardReply::Closed { at } => Ok(at),
                ShardReply::Appended => Err(AppendError::Storage {
                    shard: self.id(),
                    message: "seal entry applied without sealing".into(),
                }),
            },
            Err(e) => Err(self.append_error(e)),
        }
    }

    fn append_error(&self, e: RaftError<ShardRaft, ClientWriteError<ShardRaft>>) -> AppendError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => AppendError::NotLeader {
                shard: self.id(),
                leader: f.leader_id,
            },
            RaftError::Fatal(f) => {
                tracing::error!(shard = %self.id(), error = %f, "raft group stopped");
                AppendError::ShuttingDown(self.id())
            }
            other => AppendError::Unavailable {
                shard: self.id(),
                message: other.to_string(),
            },
        }
    }

    /// Highest readable log index.
    pub fn watermark(&self) -> watch::Receiver<u64> {
        self.group.watermark.clone()
    }

    fn read_failed(&self, e: impl std::fmt::Display) -> ReadError {
        ReadError::Failed {
            shard: self.id(),
            message: e.to_string(),
        }
    }

    /// Resolves a start against this replica's log.
    pub fn resolve(&self, start: ReadStart) -> Result<Cursor, ReadError> {
        let first = Cursor::entry_start(self.group.reader.first_index().unwrap_or(1).max(1));
        let latest = Cursor::entry_start(*self.group.watermark.borrow() + 1);
        Ok(match start {
            ReadStart::Cursor(c) => c.max(first),
            ReadStart::TrimHorizon => first,
            ReadStart::Latest => latest,
            ReadStart::AtTimestamp(ts) => {
                let found = self
                    .group
                    .reader
                    .find_by_timestamp(ts)
                    .map_err(|e| self.read_failed(e))?;
                found.map_or(latest, |i| Cursor::entry_start(i).max(first).min(latest))
            }
        })
    }

    /// Reads frames from `start` as the leader: after confirming leadership, so a deposed leader
    /// never presents its prefix as the latest data. A lease read while a quorum acknowledged
    /// the leader within its lease; otherwise (a quiesced leader sends no heartbeats, so its
    /// lease runs out) a heartbeat round to a quorum first, as a read-index read does.
    pub async fn read_frames(
        &self,
        start: ReadStart,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<FrameRead, ReadError> {
        if let Err(leader) = self.confirm_leadership().await {
            return Err(ReadError::NotLeader {
                shard: self.id(),
                leader,
            });
        }
        self.read_frames_local(start, max_entries, max_bytes)
    }

    /// Reads frames of this replica's applied prefix without asking the group.
    pub fn read_frames_local(
        &self,
        start: ReadStart,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<FrameRead, ReadError> {
        let start = self.resolve(start)?;
        let watermark = *self.group.watermark.borrow();
        if start.log_index > watermark || max_entries == 0 {
            return Ok(FrameRead {
                start,
                frames: Vec::new(),
                watermark,
            });
        }
        let n = ((watermark - start.log_index + 1) as usize).min(max_entries);
        let mut frames = self
            .group
            .reader
            .read(start.log_index, n, max_bytes.max(1))
            .map_err(|e| self.read_failed(e))?;
        frames.retain(|f| f.index <= watermark);
        Ok(FrameRead {
            start,
            frames,
            watermark,
        })
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.group.raft.shutdown().await {
            tracing::warn!(shard = %self.id(), error = %e, "raft shutdown");
        }
    }
}
