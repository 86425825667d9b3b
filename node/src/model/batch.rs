//! The encoding of a producer batch inside one Raft entry (and so one shard-log frame).
//!
//! ```text
//! u8 version (1) | u32 count | count × ( u16 key len | key | u8 has_ehk | [u128 ehk] | u32 data len | data )
//! ```
//! all integers big-endian. Decoding slices the data out of the entry buffer without copying.

use bytes::Buf;
use bytes::BufMut;
use bytes::Bytes;
use bytes::BytesMut;

const VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub partition_key: String,
    pub explicit_hash_key: Option<u128>,
    pub data: Bytes,
}

/// Records of one shard written as one Raft entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordBatch {
    pub records: Vec<Record>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed record batch: {0}")]
pub struct BatchDecodeError(&'static str);

impl RecordBatch {
    pub fn encoded_len(&self) -> usize {
        5 + self
            .records
            .iter()
            .map(|r| {
                2 + r.partition_key.len()
                    + 1
                    + if r.explicit_hash_key.is_some() { 16 } else { 0 }
                    + 4
                    + r.data.len()
            })
            .sum::<usize>()
    }

    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        buf.put_u8(VERSION);
        buf.put_u32(self.records.len() as u32);
        for r in &self.records {
            buf.put_u16(r.partition_key.len() as u16);
            buf.put_slice(r.partition_key.as_bytes());
            match r.explicit_hash_key {
                Some(k) => {
                    buf.put_u8(1);
                    buf.put_u128(k);
                }
                None => buf.put_u8(0),
            }
            buf.put_u32(r.data.len() as u32);
            buf.put_slice(&r.data);
        }
        buf.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<RecordBatch, BatchDecodeError> {
        let need = |buf: &Bytes, n: usize| {
            if buf.remaining() < n {
                Err(BatchDecodeError("truncated"))
            } else {
                Ok(())
            }
        };
        need(&buf, 5)?;
        if buf.get_u8() != VERSION {
            return Err(BatchDecodeError("unknown version"));
        }
        let count = buf.get_u32() as usize;
        let mut records = Vec::with_capacity(count.min(65_536));
        for _ in 0..count {
            need(&buf, 2)?;
            let key_len = buf.get_u16() as usize;
            need(&buf, key_len + 1)?;
            let key = buf.split_to(key_len);
            let partition_key = String::from_utf8(key.to_vec())
                .map_err(|_| BatchDecodeError("partition key is not UTF-8"))?;
            let explicit_hash_key = match buf.get_u8() {
                0 => None,
                1 => {
                    need(&buf, 16)?;
                    Some(buf.get_u128())
                }
                _ => return Err(BatchDecodeError("bad hash key flag")),
            };
            need(&buf, 4)?;
            let len = buf.get_u32() as usize;
            need(&buf, len)?;
            let data = buf.split_to(len);
            records.push(Record {
                partition_key,
                explicit_hash_key,
                data,
            });
        }
        if buf.has_remaining() {
            return Err(BatchDecodeError("trailing bytes"));
        }
        Ok(RecordBatch { records })
    }
}

/// Where one record of an encoded batch ends, and its size as throughput counts it (data plus
/// partition key, `capacity::usage::record_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    pub end: usize,
    pub size: usize,
}

/// The records of an encoded batch, walked without decoding them (the leader of a shard admits
/// a forwarded batch from these).
pub fn record_spans(encoded: &[u8]) -> Result<Vec<RecordSpan>, BatchDecodeError> {
    let mut buf = encoded;
    let need = |buf: &[u8], n: usize| {
        if buf.len() < n {
            Err(BatchDecodeError("truncated"))
        } else {
            Ok(())
        }
    };
    need(buf, 5)?;
    if buf.get_u8() != VERSION {
        return Err(BatchDecodeError("unknown version"));
    }
    let count = buf.get_u32() as usize;
    let mut spans = Vec::with_capacity(count.min(65_536));
    for _ in 0..count {
        need(buf, 2)?;
        let key_len = buf.get_u16() as usize;
        need(buf, key_len + 1)?;
        buf.advance(key_len);
        match buf.get_u8() {
            0 => {}
            1 => {
                need(buf, 16)?;
                buf.advance(16);
            }
            _ => return Err(BatchDecodeError("bad hash key flag")),
        }
        need(buf, 4)?;
        let len = buf.get_u32() as usize;
        need(buf, len)?;
        buf.advance(len);
        spans.push(RecordSpan {
            end: encoded.len() - buf.len(),
            size: key_len + len,
        });
    }
    if buf.has_remaining() {
        return Err(BatchDecodeError("trailing bytes"));
    }
    Ok(spans)
}

/// The first `n` records of an encoded batch whose records are `spans`, encoded: the batch
/// itself when that is all of them, else a copy with the count rewritten.
pub fn batch_prefix(encoded: &Bytes, spans: &[RecordSpan], n: usize) -> Bytes {
    if n >= spans.len() {
        return encoded.clone();
    }
    let end = n.checked_sub(1).and_then(|i| spans.get(i)).map_or(5, |s| s.end);
    let mut buf = BytesMut::with_capacity(end);
    buf.put_u8(VERSION);
    buf.put_u32(n as u32);
    buf.put_slice(encoded.get(5..end).unwrap_or_default());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn spans_reject_what_decode_rejects() {
        let enc = RecordBatch {
            records: vec![Record {
                partition_key: "k".into(),
                explicit_hash_key: Some(7),
                data: Bytes::from_static(b"abc"),
            }],
        }
        .encode();
        assert_eq!(
            record_spans(&enc),
            Ok(vec![RecordSpan {
                end: enc.len(),
                size: 4
            }])
        );
        assert!(record_spans(&enc[..enc.len() - 1]).is_err());
        let mut trailing = enc.to_vec();
        trailing.push(0);
        assert!(record_spans(&trailing).is_err());
        assert!(record_spans(&[2, 0, 0, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(recs in proptest::collection::vec(("\\PC{1,20}", proptest::option::of(any::<u128>()), proptest::collection::vec(any::<u8>(), 0..200)), 0..20)) {
            let batch = RecordBatch { records: recs.into_iter().map(|(k, h, d)| Record { partition_key: k, explicit_hash_key: h, data: Bytes::from(d) }).collect() };
            let enc = batch.encode();
            prop_assert_eq!(enc.len(), batch.encoded_len());
            prop_assert_eq!(RecordBatch::decode(enc.clone()), Ok(batch.clone()));
            // Every strict prefix is rejected, never misread.
            for cut in [0, 1, enc.len() / 2, enc.len().saturating_sub(1)] {
                if cut < enc.len() { prop_assert!(RecordBatch::decode(enc.slice(..cut)).is_err()); }
            }
            // Spans give each record's size; every prefix decodes to the first records.
            let spans = record_spans(&enc).unwrap();
            let sizes: Vec<usize> = spans.iter().map(|s| s.size).collect();
            let expected: Vec<usize> = batch.records.iter().map(|r| r.data.len() + r.partition_key.len()).collect();
            prop_assert_eq!(sizes, expected);
            for n in 0..=batch.records.len() {
                let prefix = RecordBatch::decode(batch_prefix(&enc, &spans, n)).unwrap();
                prop_assert_eq!(&prefix.records[..], &batch.records[..n]);
            }
        }
    }
}
