//! One shard replica: its Raft group and the shard-log reader.

use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use tokio::sync::watch;

use super::cursor::Cursor;
use crate::catalog::ShardRecord;
use crate::clock;
use crate::model::RecordBatch;
use crate::model::SequenceNumber;
use crate::model::ShardId;
use crate::raft::codec::KIND_RECORDS;
use crate::raft::group::ShardGroup;
use crate::raft::types::ShardCommand;
use crate::raft::types::ShardRaft;

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("shard {0} is not led by this node")]
    NotLeader(ShardId),
    #[error("shard {0} is shutting down")]
    ShuttingDown(ShardId),
    #[error("storage error on shard {shard}: {message}")]
    Storage { shard: ShardId, message: String },
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read shard {shard}: {message}")]
pub struct ReadError {
    pub shard: ShardId,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct ReadRecord {
    pub sequence_number: SequenceNumber,
    pub arrival_ms: i64,
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Bytes,
}

#[derive(Debug)]
pub struct ReadResult {
    pub records: Vec<ReadRecord>,
    /// Where the next read continues.
    pub next: Cursor,
    pub millis_behind_latest: i64,
}

pub struct ShardReplica {
    pub shard: ShardRecord,
    group: ShardGroup,
    last_ts: AtomicI64,
}

impl ShardReplica {
    pub fn new(shard: ShardRecord, group: ShardGroup) -> ShardReplica {
        ShardReplica {
            shard,
            group,
            last_ts: AtomicI64::new(0),
        }
    }

    pub fn id(&self) -> ShardId {
        ShardId(self.shard.index)
    }

    pub fn group(&self) -> &ShardGroup {
        &self.group
    }

    /// Arrival timestamps never go backwards within a shard, even if the clock does.
    fn arrival_ms(&self) -> i64 {
        let now = clock::now_ms();
        let prev = self.last_ts.fetch_max(now, Ordering::AcqRel);
        prev.max(now)
    }

    fn sequence(&self, log_index: u64, position: u16, arrival_ms: i64) -> SequenceNumber {
        SequenceNumber {
            shard_created_secs: self.shard.created_secs(),
            shard_index: self.shard.index,
            log_index,
            position,
            arrival_secs: (arrival_ms / 1000).max(0) as u64,
        }
    }

    /// The sequence number that precedes every record of the shard.
    pub fn starting_sequence_number(&self) -> SequenceNumber {
        self.sequence(0, 0, self.shard.created_ms)
    }

    /// Appends one batch as one Raft entry; returns when it is durable and applied.
    /// The sequence numbers are those of the batch's records, in order.
    pub async fn append(&self, batch: &RecordBatch) -> Result<Vec<SequenceNumber>, AppendError> {
        let arrival_ms = self.arrival_ms();
        let cmd = ShardCommand::Records {
            timestamp_ms: arrival_ms,
            batch: batch.encode(),
        };
        let resp = self
            .group
            .raft
            .client_write(cmd)
            .await
            .map_err(|e| self.append_error(e))?;
        let index = resp.log_id.index;
        Ok((0..batch.records.len())
            .map(|p| self.sequence(index, p as u16, arrival_ms))
            .collect())
    }

    fn append_error(&self, e: RaftError<ShardRaft, ClientWriteError<ShardRaft>>) -> AppendError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => AppendError::NotLeader(self.id()),
            RaftError::Fatal(f) => AppendError::ShuttingDown(self.id()).with_log(&f),
            other => AppendError::Storage {
                shard: self.id(),
                message: other.to_string(),
            },
        }
    }

    /// Highest readable log index.
    pub fn watermark(&self) -> watch::Receiver<u64> {
        self.group.watermark.clone()
    }

    /// First readable position: the oldest entry retention kept.
    pub fn trim_horizon(&self) -> Cursor {
        Cursor::entry_start(self.group.reader.first_index().unwrap_or(1).max(1))
    }

    /// The position after the last readable record.
    pub fn latest(&self) -> Cursor {
        Cursor::entry_start(*self.group.watermark.borrow() + 1)
    }

    /// Position of the first record that arrived at or after `ts_ms`.
    pub fn at_timestamp(&self, ts_ms: i64) -> Result<Cursor, ReadError> {
        let found = self
            .group
            .reader
            .find_by_timestamp(ts_ms)
            .map_err(|e| self.read_error(e))?;
        let latest = self.latest();
        Ok(found.map_or(latest, |i| Cursor::entry_start(i).min(latest)))
    }

    fn read_error(&self, e: impl std::fmt::Display) -> ReadError {
        ReadError {
            shard: self.id(),
            message: e.to_string(),
        }
    }

    /// Reads up to `limit` records (and about `max_bytes` of data) from `from`.
    pub fn read(&self, from: Cursor, limit: usize, max_bytes: usize) -> Result<ReadResult, ReadError> {
        let watermark = *self.group.watermark.borrow();
        let mut cursor = from.max(self.trim_horizon());
        let mut records = Vec::new();
        let mut bytes = 0usize;
        'entries: while cursor.log_index <= watermark && records.len() < limit && bytes < max_bytes {
            let max_entries = (watermark - cursor.log_index + 1).min(1024) as usize;
            let frames = self
                .group
                .reader
                .read(
                    cursor.log_index,
                    max_entries,
                    max_bytes.saturating_sub(bytes).max(1),
                )
                .map_err(|e| self.read_error(e))?;
            if frames.is_empty() {
                break;
            }
            for frame in frames {
                if frame.index > watermark {
                    break 'entries;
                }
                if frame.index < cursor.log_index {
                    continue;
                }
                if frame.kind != KIND_RECORDS {
                    cursor = Cursor::entry_start(frame.index + 1);
                    continue;
                }
                let batch = RecordBatch::decode(frame.payload).map_err(|e| self.read_error(e))?;
                let skip = if frame.index == cursor.log_index {
                    usize::from(cursor.position)
                } else {
                    0
                };
                for (pos, r) in batch.records.into_iter().enumerate().skip(skip) {
                    if records.len() >= limit || (bytes >= max_bytes && !records.is_empty()) {
                        cursor = Cursor {
                            log_index: frame.index,
                            position: pos as u16,
                        };
                        break 'entries;
                    }
                    bytes += r.data.len() + r.partition_key.len();
                    records.push(ReadRecord {
                        sequence_number: self.sequence(frame.index, pos as u16, frame.timestamp_ms),
                        arrival_ms: frame.timestamp_ms,
                        partition_key: r.partition_key,
                        explicit_hash_key: r.explicit_hash_key,
                        data: r.data,
                    });
                }
                cursor = Cursor::entry_start(frame.index + 1);
            }
        }
        let millis_behind_latest = if cursor.log_index > watermark {
            0
        } else {
            let ts = self.group.reader.entry_timestamp(cursor.log_index).ok().flatten();
            ts.map_or(0, |t| (clock::now_ms() - t).max(0))
        };
        Ok(ReadResult {
            records,
            next: cursor,
            millis_behind_latest,
        })
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.group.raft.shutdown().await {
            tracing::warn!(shard = %self.id(), error = %e, "raft shutdown");
        }
    }
}

impl AppendError {
    fn with_log(self, cause: &dyn std::fmt::Display) -> AppendError {
        tracing::error!(error = %cause, "raft group stopped");
        self
    }
}
