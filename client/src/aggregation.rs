//! KPL record aggregation: many user records in one Kinesis record, in the format of the
//! Kinesis Producer Library (and `aws-kinesis-agg`), so that the KCL and other de-aggregating
//! consumers read them unchanged.
//!
//! ```text
//! F3 89 9A C2 | AggregatedRecord (protobuf) | MD5 of the protobuf bytes (16 bytes)
//! ```
//!
//! The aggregate is put with the first user record's partition key and, as the KPL does, an
//! explicit hash key that routes it to the shard of that key: aggregate only records of one
//! shard (see [`group_by_shard`]) so that each user record lands where its own key would.

use bytes::Bytes;
use md5::Digest;
use md5::Md5;
use prost::Message;

use crate::PutEntry;
use crate::Record;

/// The first four bytes of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// The largest aggregated record's data (the Kinesis record limit, 1 MiB, less the partition
/// key the record also carries).
pub const MAX_AGGREGATE_BYTES: usize = 1024 * 1024 - 256;

#[derive(Clone, PartialEq, prost::Message)]
struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    records: Vec<UserRecordProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct UserRecordProto {
    #[prost(uint64, required, tag = "1")]
    partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "bytes", required, tag = "3")]
    data: Bytes,
}

/// MD5 of a partition key as a 128-bit big-endian number: the hash key Kinesis routes by.
pub fn hash_key(partition_key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// The hash key a record is routed by: its explicit hash key, or the MD5 of its key.
pub fn routing_key(entry: &PutEntry) -> u128 {
    entry
        .explicit_hash_key
        .as_deref()
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| hash_key(&entry.partition_key))
}

/// Groups records by the range (of `ranges`, inclusive start and end) holding their routing
/// key, keeping input order within each group; records outside every range form their own
/// group (the server will report them).
pub fn group_by_shard(entries: Vec<PutEntry>, ranges: &[(u128, u128)]) -> Vec<Vec<PutEntry>> {
    let mut groups: Vec<(Option<usize>, Vec<PutEntry>)> = Vec::new();
    for entry in entries {
        let key = routing_key(&entry);
        let shard = ranges.iter().position(|&(lo, hi)| lo <= key && key <= hi);
        match groups.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, group)) => group.push(entry),
            None => groups.push((shard, vec![entry])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Aggregates records into as few aggregated records as fit in [`MAX_AGGREGATE_BYTES`] each,
/// in order. Each aggregate carries its first record's partition key and routing key.
pub fn aggregate(entries: Vec<PutEntry>) -> Vec<PutEntry> {
    chunks(entries).into_iter().map(encode).collect()
}

/// Splits records, in order, into the groups that [`aggregate`] turns into one aggregate each.
pub fn chunks(entries: Vec<PutEntry>) -> Vec<Vec<PutEntry>> {
    let mut out = Vec::new();
    let mut current: Vec<PutEntry> = Vec::new();
    let mut size = 0;
    for entry in entries {
        // Data, key, and a generous allowance for the protobuf framing of each.
        let cost = entry.data.len() + entry.partition_key.len() + 64;
        if !current.is_empty() && size + cost > MAX_AGGREGATE_BYTES {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += cost;
        current.push(entry);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// One aggregated record holding `entries` (see [`chunks`] for how many fit).
pub fn encode(entries: Vec<PutEntry>) -> PutEntry {
    let first_key = entries
        .first()
        .map(|e| e.partition_key.clone())
        .unwrap_or_default();
    let routing = entries.first().map(routing_key).unwrap_or_default();
    let mut message = AggregatedRecord::default();
    for entry in entries {
        let partition_key_index = index_of(&mut message.partition_key_table, entry.partition_key);
        let explicit_hash_key_index = entry
            .explicit_hash_key
            .map(|k| index_of(&mut message.explicit_hash_key_table, k));
        message.records.push(UserRecordProto {
            partition_key_index,
            explicit_hash_key_index,
            data: entry.data,
        });
    }
    let body = message.encode_to_vec();
    let mut data = Vec::with_capacity(4 + body.len() + 16);
    data.extend_from_slice(&MAGIC);
    data.extend_from_slice(&body);
    data.extend_from_slice(&Md5::digest(&body));
    PutEntry {
        partition_key: first_key,
        data: Bytes::from(data),
        explicit_hash_key: Some(routing.to_string()),
    }
}

fn index_of(table: &mut Vec<String>, value: String) -> u64 {
    match table.iter().position(|v| *v == value) {
        Some(i) => i as u64,
        None => {
            table.push(value);
            (table.len() - 1) as u64
        }
    }
}

/// One user record out of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Bytes,
}

/// The user records of an aggregated record's data, or `None` when `data` is not one (no
/// magic, a wrong checksum, a malformed body or a dangling table index): such a record is an
/// ordinary record, as the KCL treats it.
pub fn deaggregate(data: &Bytes) -> Option<Vec<UserRecord>> {
    if data.len() < MAGIC.len() + 16 || data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let body = data.slice(MAGIC.len()..data.len() - 16);
    let digest: [u8; 16] = Md5::digest(&body).into();
    if digest[..] != data[data.len() - 16..] {
        return None;
    }
    let message = AggregatedRecord::decode(body).ok()?;
    let lookup = |table: &[String], i: u64| table.get(usize::try_from(i).ok()?).cloned();
    message
        .records
        .into_iter()
        .map(|r| {
            Some(UserRecord {
                partition_key: lookup(&message.partition_key_table, r.partition_key_index)?,
                explicit_hash_key: match r.explicit_hash_key_index {
                    Some(i) => Some(lookup(&message.explicit_hash_key_table, i)?),
                    None => None,
                },
                data: r.data,
            })
        })
        .collect()
}

impl Record {
    /// The user records this record carries: itself when it is not an aggregate, otherwise
    /// one record per user record, sharing the aggregate's shard, sequence number and arrival
    /// time (in aggregation order).
    pub fn deaggregate(self) -> Vec<Record> {
        match deaggregate(&self.data) {
            None => vec![self],
            Some(users) => users
                .into_iter()
                .map(|u| Record {
                    partition_key: u.partition_key,
                    explicit_hash_key: u.explicit_hash_key,
                    data: u.data,
                    ..self.clone()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, data: &str) -> PutEntry {
        PutEntry::new(key, Bytes::from(data.to_string()))
    }

    #[test]
    fn aggregates_round_trip_in_order() {
        let mut with_ehk = entry("c", "three");
        with_ehk.explicit_hash_key = Some("42".into());
        let entries = vec![entry("a", "one"), entry("b", "two"), with_ehk, entry("a", "four")];
        let out = aggregate(entries.clone());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].partition_key, "a");
        assert_eq!(out[0].explicit_hash_key, Some(hash_key("a").to_string()));
        let users = deaggregate(&out[0].data).unwrap_or_default();
        let back: Vec<PutEntry> = users
            .into_iter()
            .map(|u| PutEntry {
                partition_key: u.partition_key,
                data: u.data,
                explicit_hash_key: u.explicit_hash_key,
            })
            .collect();
        assert_eq!(back, entries);
    }

    #[test]
    fn large_inputs_make_several_aggregates() {
        let big = "x".repeat(300 * 1024);
        let out = aggregate((0..7).map(|i| entry(&format!("k{i}"), &big)).collect());
        assert_eq!(out.len(), 3, "three 300 KiB records fit in one aggregate");
        assert!(out.iter().all(|e| e.data.len() <= MAX_AGGREGATE_BYTES + 256));
        let total: usize = out
            .iter()
            .map(|e| deaggregate(&e.data).map_or(0, |u| u.len()))
            .sum();
        assert_eq!(total, 7);
    }

    #[test]
    fn ordinary_and_corrupt_records_are_not_aggregates() {
        assert_eq!(
            deaggregate(&Bytes::from_static(b"plain data, not an aggregate")),
            None
        );
        let mut data = aggregate(vec![entry("a", "one")])[0].data.to_vec();
        let last = data.len() - 1;
        data[last] ^= 1;
        assert_eq!(deaggregate(&Bytes::from(data)), None, "checksum mismatch");
    }

    #[test]
    fn groups_follow_the_shard_ranges() {
        let half = u128::MAX / 2;
        let ranges = [(0, half), (half + 1, u128::MAX)];
        let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
        let groups = group_by_shard(keys.iter().map(|k| entry(k, "d")).collect(), &ranges);
        assert_eq!(groups.len(), 2);
        for g in &groups {
            let low = routing_key(&g[0]) <= half;
            assert!(g.iter().all(|e| (routing_key(e) <= half) == low));
        }
        assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), 20);
    }

    #[test]
    fn md5_routing_matches_kinesis() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }
}
