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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn round_trip(recs in proptest::collection::vec(("\\PC{1,20}", proptest::option::of(any::<u128>()), proptest::collection::vec(any::<u8>(), 0..200)), 0..20)) {
            let batch = RecordBatch { records: recs.into_iter().map(|(k, h, d)| Record { partition_key: k, explicit_hash_key: h, data: Bytes::from(d) }).collect() };
            let enc = batch.encode();
            prop_assert_eq!(enc.len(), batch.encoded_len());
            prop_assert_eq!(RecordBatch::decode(enc.clone()), Ok(batch));
            // Every strict prefix is rejected, never misread.
            for cut in [0, 1, enc.len() / 2, enc.len().saturating_sub(1)] {
                if cut < enc.len() { prop_assert!(RecordBatch::decode(enc.slice(..cut)).is_err()); }
            }
        }
    }
}
