//! Turning shard-log frames into records: pure, shared by local reads and reads forwarded to
//! the leader (which ship frames).

use super::cursor::Cursor;
use super::replica::FrameRead;
use crate::capacity::usage::record_bytes;
use crate::catalog::ShardRecord;
use crate::clock;
use crate::encryption::BatchCipher;
use crate::encryption::OpenError;
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
    /// Whether the record was stored encrypted (the Kinesis `EncryptionType` `KMS`).
    pub encrypted: bool,
}

/// Why frames could not be turned into records.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A sealed batch whose key this node's keyring does not hold.
    #[error("{0}")]
    MissingKey(String),
    #[error("{0}")]
    Malformed(String),
}

#[derive(Debug)]
pub struct ReadResult {
    pub records: Vec<ReadRecord>,
    /// Where the next read continues.
    pub next: Cursor,
    pub millis_behind_latest: i64,
    /// The data and partition-key bytes of `records`.
    pub bytes: usize,
    /// Whether the read stopped at its record or byte limit before the frames ran out.
    pub full: bool,
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

/// How much of a shard's records one read takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Take {
    pub records: usize,
    /// Data and partition-key bytes: no record that would take the read past them is taken...
    pub bytes: usize,
    /// ...unless it is the first record of the read (a record larger than `bytes` is still
    /// returned, alone). False for the later parts of a read assembled from several.
    pub at_least_one: bool,
}

/// Decodes `frames` (consecutive, all at or below `watermark`) from `start`, taking what `take`
/// allows.
pub fn decode(
    shard: &ShardRecord,
    frames: Vec<runnel_log::Entry>,
    start: Cursor,
    watermark: u64,
    take: Take,
    cipher: &BatchCipher,
) -> Result<ReadResult, DecodeError> {
    let mut cursor = start;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let mut behind_ts = None;
    let mut full = false;
    'frames: for frame in frames {
        if frame.index > watermark || frame.index < cursor.log_index {
            continue;
        }
        if frame.kind != KIND_RECORDS {
            cursor = Cursor::entry_start(frame.index + 1);
            continue;
        }
        let opened = cipher.open(frame.payload).map_err(|e| match e {
            OpenError::MissingKey(_) => DecodeError::MissingKey(e.to_string()),
            other => DecodeError::Malformed(format!("log entry {}: {other}", frame.index)),
        })?;
        let batch = RecordBatch::decode(opened.plain)
            .map_err(|e| DecodeError::Malformed(format!("log entry {}: {e}", frame.index)))?;
        let skip = if frame.index == cursor.log_index {
            usize::from(cursor.position)
        } else {
            0
        };
        for (pos, r) in batch.records.into_iter().enumerate().skip(skip) {
            let size = r.data.len() + r.partition_key.len();
            let first = records.is_empty() && take.at_least_one;
            if records.len() >= take.records || (!first && bytes + size > take.bytes) {
                cursor = Cursor {
                    log_index: frame.index,
                    position: pos as u16,
                };
                behind_ts = Some(frame.timestamp_ms);
                full = true;
                break 'frames;
            }
            bytes += size;
            records.push(ReadRecord {
                sequence_number: sequence_number(shard, frame.index, pos as u16, frame.timestamp_ms),
                arrival_ms: frame.timestamp_ms,
                partition_key: r.partition_key,
                explicit_hash_key: r.explicit_hash_key,
                data: r.data,
                encrypted: opened.encrypted,
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
        bytes,
        full,
    })
}

/// The bytes (data and partition keys, as usage counts them) of the records a reader taking
/// `take` gets from `read`: what the shard's leader charges a GetRecords read, computed as the
/// reader's own [`decode`] will.
pub fn returned_bytes(shard: &ShardRecord, read: &FrameRead, take: Take, cipher: &BatchCipher) -> usize {
    decode(
        shard,
        read.frames.clone(),
        read.start,
        read.watermark,
        take,
        cipher,
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

    use std::sync::Arc;

    use super::*;
    use crate::encryption::Keyring;
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
        let c = BatchCipher::without_keys();
        let take = |records, bytes| Take {
            records,
            bytes,
            at_least_one: true,
        };
        // From the second record of entry 1, up to the watermark.
        assert_eq!(returned_bytes(&s, &read, take(100, 1 << 20), &c), 20 + 30 + 40);
        assert_eq!(returned_bytes(&s, &read, take(2, 1 << 20), &c), 20 + 30);
        // Bytes stop a read before the record that would pass them...
        assert_eq!(returned_bytes(&s, &read, take(100, 50), &c), 20 + 30);
        assert_eq!(returned_bytes(&s, &read, take(100, 49), &c), 20);
        // ...but a read's first record is taken whatever its size, unless the read already
        // has records from an earlier part.
        assert_eq!(returned_bytes(&s, &read, take(100, 5), &c), 20);
        let later = Take {
            at_least_one: false,
            ..take(100, 5)
        };
        assert_eq!(returned_bytes(&s, &read, later, &c), 0);
    }

    #[test]
    fn a_read_says_whether_it_stopped_at_its_limits() {
        let s = shard();
        let c = BatchCipher::without_keys();
        let frames = || vec![frame(1, &[10, 20]), frame(2, &[30])];
        let start = Cursor::entry_start(1);
        let take = |records, bytes| Take {
            records,
            bytes,
            at_least_one: false,
        };
        let all = decode(&s, frames(), start, 2, take(100, 100), &c).unwrap();
        assert_eq!((all.records.len(), all.bytes, all.full), (3, 60, false));
        let cut = decode(&s, frames(), start, 2, take(100, 35), &c).unwrap();
        assert_eq!((cut.records.len(), cut.bytes, cut.full), (2, 30, true));
        assert_eq!(
            cut.next,
            Cursor {
                log_index: 2,
                position: 0
            }
        );
        let none = decode(&s, frames(), start, 2, take(100, 5), &c).unwrap();
        assert_eq!((none.records.len(), none.full, none.next), (0, true, start));
    }

    #[test]
    fn sealed_entries_read_as_encrypted_records_and_need_their_key() {
        let keys = Keyring::parse("key k AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let cipher = BatchCipher::new(keys, Arc::new(|s| (s == "enc").then(|| "k".to_string())));
        let s = shard();
        let plain = frame(1, &[10, 20]);
        let (sealed, was_sealed) = cipher.seal("enc", 1, frame(2, &[30]).payload).unwrap();
        assert!(was_sealed);
        let sealed = runnel_log::Entry {
            index: 2,
            payload: sealed,
            ..frame(2, &[30])
        };
        let take = Take {
            records: 100,
            bytes: 1 << 20,
            at_least_one: true,
        };
        let start = Cursor::entry_start(1);
        let read = decode(&s, vec![plain.clone(), sealed.clone()], start, 2, take, &cipher).unwrap();
        let flags: Vec<(usize, bool)> = read.records.iter().map(|r| (r.data.len(), r.encrypted)).collect();
        assert_eq!(flags, vec![(9, false), (19, false), (29, true)]);
        // A node whose keyring lacks the key refuses the read; it never returns ciphertext.
        let keyless = BatchCipher::without_keys();
        assert!(matches!(
            decode(&s, vec![plain, sealed], start, 2, take, &keyless),
            Err(DecodeError::MissingKey(_))
        ));
    }
}
