//! Turning shard-log frames into records: pure, shared by local reads and reads forwarded to
//! the leader (which ship frames).

use super::cursor::Cursor;
use super::replica::FrameRead;
use crate::capacity::usage::record_bytes;
use crate::catalog::ShardRecord;
use crate::clock;
use crate::model::RecordBatch;
use crate::model::SequenceNumber;
use crate::raft::codec::KIND_RECORDS;

use bytes::Bytes;

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

pub fn sequence_number(
    shard: &ShardRecord,
    log_index: u64,
    position: u16,
    arrival_ms: i64,
) -> SequenceNumber {
    SequenceNumber {
        shard_created_secs: shard.created_secs(),
        shard_index: shard.index,
        log_index,
        position,
        arrival_secs: (arrival_ms / 1000).max(0) as u64,
    }
}

/// Decodes `frames` (consecutive, all at or below `watermark`) from `start`, stopping after
/// `limit` records or about `max_bytes` of data.
pub fn decode(
    shard: &ShardRecord,
    frames: Vec<runnel_log::Entry>,
    start: Cursor,
    watermark: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<ReadResult, String> {
    let mut cursor = start;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut behind_ts = None;
    'frames: for frame in frames {
        if frame.index > watermark || frame.index < cursor.log_index {
            continue;
        }
        if frame.kind != KIND_RECORDS {
            cursor = Cursor::entry_start(frame.index + 1);
            continue;
        }
        let batch = RecordBatch::decode(frame.payload).map_err(|e| e.to_string())?;
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
                behind_ts = Some(frame.timestamp_ms);
                break 'frames;
            }
            bytes += r.data.len() + r.partition_key.len();
            records.push(ReadRecord {
                sequence_number: sequence_number(shard, frame.index, pos as u16, frame.timestamp_ms),
                arrival_ms: frame.timestamp_ms,
                partition_key: r.partition_key,
                explicit_hash_key: r.explicit_hash_key,
                data: r.data,
            });
        }
        cursor = Cursor::entry_start(frame.index + 1);
    }
    let millis_behind_latest = if cursor.log_index > watermark {
        0
    } else {
        behind_ts
            .or_else(|| records.last().map(|r| r.arrival_ms))
            .map_or(0, |t| (clock::now_ms() - t).max(0))
    };
    Ok(ReadResult {
        records,
        next: cursor,
        millis_behind_latest,
    })
}

/// The bytes (data and partition keys, as usage counts them) of the records a reader taking up
/// to `limit` records or about `max_bytes` gets from `read`: what the shard's leader charges a
/// GetRecords read, computed as the reader's own [`decode`] will.
pub fn returned_bytes(shard: &ShardRecord, read: &FrameRead, limit: usize, max_bytes: usize) -> usize {
    decode(
        shard,
        read.frames.clone(),
        read.start,
        read.watermark,
        limit,
        max_bytes,
    )
    .map_or(0, |r| {
        r.records
            .iter()
            .map(|r| record_bytes(r.data.len(), &r.partition_key))
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::model::Record;

    fn shard() -> ShardRecord {
        ShardRecord::fixture(0, 1)
    }

    fn frame(index: u64, sizes: &[usize]) -> runnel_log::Entry {
        let batch = RecordBatch {
            records: sizes
                .iter()
                .map(|&n| Record {
                    partition_key: "k".into(),
                    explicit_hash_key: None,
                    data: Bytes::from(vec![0u8; n - 1]),
                })
                .collect(),
        };
        runnel_log::Entry {
            index,
            term: 1,
            timestamp_ms: 0,
            kind: KIND_RECORDS,
            payload: batch.encode(),
        }
    }

    #[test]
    fn a_read_is_charged_what_the_reader_takes_of_it() {
        let read = FrameRead {
            start: Cursor {
                log_index: 1,
                position: 1,
            },
            frames: vec![frame(1, &[10, 20, 30]), frame(2, &[40]), frame(3, &[50])],
            watermark: 2,
        };
        let s = shard();
        // From the second record of entry 1, up to the watermark.
        assert_eq!(returned_bytes(&s, &read, 100, 1 << 20), 20 + 30 + 40);
        assert_eq!(returned_bytes(&s, &read, 2, 1 << 20), 20 + 30);
        // Bytes stop a read after the record that reaches them.
        assert_eq!(returned_bytes(&s, &read, 100, 25), 20 + 30);
    }
}
