//! Units of usage accounting, as AWS bills Kinesis Data Streams in provisioned mode: shard-hours
//! and PUT payload units.
//!
//! **PUT payload units.** AWS counts each record in 25 KB "payload chunks", rounded up: "a 5 KB
//! record contains one PUT Payload Unit, a 45 KB record contains two PUT Payload Units, and a
//! 1 MB record contains 40 PUT Payload Units" (Kinesis pricing). The same pricing page defines
//! 1 KB as 1,024 bytes, so a unit here is 25 × 1,024 = 25,600 bytes; AWS's "1 MB = 40 units"
//! example is then a 1,000 KB (1,024,000-byte) record, and a record of a full MiB
//! (1,048,576 bytes) is 41 units. The payload counted is the record as the write limits count
//! it: data blob plus partition key (UTF-8 bytes). Every record is at least one unit.
//!
//! **Shard-hours.** Each open shard accrues the wall time it is open; closed shards (parents
//! after a reshard) accrue nothing, as AWS does not bill them.

/// Bytes of one PUT payload unit: 25 KB with AWS's 1 KB = 1,024 bytes.
pub const PUT_PAYLOAD_UNIT_BYTES: u64 = 25 * 1024;

/// The bytes a record counts for (limits, IncomingBytes, payload units): data plus partition key.
pub fn record_bytes(data_len: usize, partition_key: &str) -> usize {
    data_len + partition_key.len()
}

/// PUT payload units of one record of `bytes` payload: 25,600-byte chunks, rounded up, at
/// least one.
pub fn put_payload_units(bytes: u64) -> u64 {
    bytes.div_ceil(PUT_PAYLOAD_UNIT_BYTES).max(1)
}

/// Hours one open shard created at `created_ms` accrues between `from_ms` and `to_ms` (epoch
/// milliseconds): none before its creation, and none if the clock went backwards.
pub fn shard_hours_between(created_ms: i64, from_ms: i64, to_ms: i64) -> f64 {
    let from = from_ms.max(created_ms);
    (to_ms.saturating_sub(from)).max(0) as f64 / 3_600_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_units_follow_aws_examples() {
        // "A 5 KB record contains one PUT Payload Unit."
        assert_eq!(put_payload_units(5 * 1024), 1);
        // "A 45 KB record contains two PUT Payload Units."
        assert_eq!(put_payload_units(45 * 1024), 2);
        // "A 1 MB record contains 40 PUT Payload Units" (1 MB = 1,000 KB of 1,024 bytes).
        assert_eq!(put_payload_units(1000 * 1024), 40);
        // A full MiB is 40.96 units, rounded up.
        assert_eq!(put_payload_units(1 << 20), 41);
    }

    #[test]
    fn payload_units_round_up_at_unit_boundaries() {
        assert_eq!(put_payload_units(0), 1);
        assert_eq!(put_payload_units(1), 1);
        assert_eq!(put_payload_units(25_600), 1);
        assert_eq!(put_payload_units(25_601), 2);
        assert_eq!(put_payload_units(51_200), 2);
        assert_eq!(put_payload_units(51_201), 3);
        // The largest record a stream may be configured for (10 MiB): 409.6 → 410.
        assert_eq!(put_payload_units(10 << 20), 410);
        assert_eq!(record_bytes(25_590, "0123456789"), 25_600);
    }

    #[test]
    fn a_shard_accrues_only_while_it_exists() {
        let h = 3_600_000;
        // Existed for the whole interval.
        assert_eq!(shard_hours_between(0, h, 3 * h), 2.0);
        // Created in the middle of the interval.
        assert_eq!(shard_hours_between(2 * h, h, 3 * h), 1.0);
        // Created after the interval (a clock skew) or a clock going backwards: nothing.
        assert_eq!(shard_hours_between(4 * h, h, 3 * h), 0.0);
        assert_eq!(shard_hours_between(0, 3 * h, h), 0.0);
    }
}
