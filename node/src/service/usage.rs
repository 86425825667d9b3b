//! Per-stream API and usage metrics of puts and reads (units in `capacity::usage`).

use std::time::Instant;

use super::PutEntryResult;
use super::StreamService;
use super::admission::THROTTLED;
use crate::capacity::usage::put_payload_units;
use crate::capacity::usage::record_bytes;
use crate::model::ShardId;
use crate::shard::ReadRecord;

/// What a PutRecords did, counted from its results and the sizes of its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PutTally {
    pub accepted: u64,
    pub accepted_bytes: u64,
    pub payload_units: u64,
    /// Entries that failed for another reason than throttling.
    pub failed: u64,
}

impl PutTally {
    pub fn of(sizes: &[usize], results: &[PutEntryResult]) -> PutTally {
        let mut t = PutTally::default();
        for (size, result) in sizes.iter().zip(results) {
            match result {
                PutEntryResult::Ok { .. } => {
                    t.accepted += 1;
                    t.accepted_bytes += *size as u64;
                    t.payload_units += put_payload_units(*size as u64);
                }
                PutEntryResult::Failed { error_code, .. } if error_code == THROTTLED => {}
                PutEntryResult::Failed { .. } => t.failed += 1,
            }
        }
        t
    }

    /// Accepted records and bytes per shard, in first-seen order.
    pub fn per_shard(sizes: &[usize], results: &[PutEntryResult]) -> Vec<(ShardId, u64, u64)> {
        let mut out: Vec<(ShardId, u64, u64)> = Vec::new();
        for (size, result) in sizes.iter().zip(results) {
            let PutEntryResult::Ok { shard_id, .. } = result else {
                continue;
            };
            match out.iter_mut().find(|(s, _, _)| s == shard_id) {
                Some((_, records, bytes)) => {
                    *records += 1;
                    *bytes += *size as u64;
                }
                None => out.push((*shard_id, 1, *size as u64)),
            }
        }
        out
    }
}

impl StreamService {
    /// Counts a PutRecords: IncomingRecords/IncomingBytes and usage count accepted records
    /// only; PutRecords.FailedRecords counts internal failures (throttled entries are counted
    /// by WriteProvisionedThroughputExceeded when they are refused).
    pub(super) fn account_put(
        &self,
        stream: &str,
        sizes: &[usize],
        results: &[PutEntryResult],
        started: Instant,
    ) {
        let t = PutTally::of(sizes, results);
        let m = &self.inner.metrics;
        let label = &[stream];
        m.streams
            .incoming_records
            .with_label_values(label)
            .inc_by(t.accepted);
        m.streams
            .incoming_bytes
            .with_label_values(label)
            .inc_by(t.accepted_bytes);
        m.streams
            .put_failed_records
            .with_label_values(label)
            .inc_by(t.failed);
        m.streams
            .put_latency
            .with_label_values(label)
            .observe(started.elapsed().as_secs_f64());
        m.usage.bytes_in.with_label_values(label).inc_by(t.accepted_bytes);
        m.usage
            .put_payload_units
            .with_label_values(label)
            .inc_by(t.payload_units);
        for (shard, records, bytes) in PutTally::per_shard(sizes, results) {
            let shard = shard.to_string();
            let labels = &[stream, shard.as_str()];
            m.streams
                .shard_incoming_records
                .with_label_values(labels)
                .inc_by(records);
            m.streams
                .shard_incoming_bytes
                .with_label_values(labels)
                .inc_by(bytes);
        }
    }

    /// Feeds the accepted records of a shard, as (hash key, bytes), to its hot-key window.
    pub(super) fn observe_keys(&self, stream: &str, shard: u32, records: impl Iterator<Item = (u128, u64)>) {
        let Ok(mut windows) = self.inner.hot_keys.lock() else {
            return;
        };
        for (key, bytes) in records {
            windows.observe(stream, shard, key, bytes);
        }
    }

    /// Counts the bytes a GetRecords returned from a shard (OutgoingBytes per shard).
    pub(super) fn account_shard_read(&self, stream: &str, shard: ShardId, bytes: usize) {
        let shard = shard.to_string();
        self.inner
            .metrics
            .streams
            .shard_outgoing_bytes
            .with_label_values(&[stream, shard.as_str()])
            .inc_by(bytes as u64);
    }

    /// Counts records delivered to a reader (GetRecords or a subscription) as bytes out;
    /// returns those bytes.
    pub(super) fn account_read(&self, stream: &str, records: &[ReadRecord]) -> usize {
        let bytes: usize = records
            .iter()
            .map(|r| record_bytes(r.data.len(), &r.partition_key))
            .sum();
        self.inner
            .metrics
            .usage
            .bytes_out
            .with_label_values(&[stream])
            .inc_by(bytes as u64);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SequenceNumber;

    fn ok() -> PutEntryResult {
        PutEntryResult::Ok {
            shard_id: ShardId(0),
            sequence_number: SequenceNumber {
                shard_created_secs: 0,
                shard_index: 0,
                log_index: 1,
                position: 0,
                arrival_secs: 0,
            },
            encrypted: false,
        }
    }

    fn failed(code: &str) -> PutEntryResult {
        PutEntryResult::Failed {
            error_code: code.into(),
            error_message: String::new(),
        }
    }

    #[test]
    fn accepted_records_are_counted_per_shard() {
        let on = |shard: u32| PutEntryResult::Ok {
            shard_id: ShardId(shard),
            sequence_number: SequenceNumber {
                shard_created_secs: 0,
                shard_index: shard,
                log_index: 1,
                position: 0,
                arrival_secs: 0,
            },
            encrypted: false,
        };
        let sizes = [10, 20, 30, 40];
        let results = [on(1), on(0), failed(THROTTLED), on(1)];
        assert_eq!(
            PutTally::per_shard(&sizes, &results),
            vec![(ShardId(1), 2, 50), (ShardId(0), 1, 20)]
        );
    }

    #[test]
    fn only_accepted_records_count_as_usage() {
        let sizes = [100, 25_600, 25_601, 1 << 20, 7];
        let results = [ok(), ok(), ok(), failed(THROTTLED), failed("InternalFailure")];
        assert_eq!(
            PutTally::of(&sizes, &results),
            PutTally {
                accepted: 3,
                accepted_bytes: 100 + 25_600 + 25_601,
                payload_units: 1 + 1 + 2,
                failed: 1,
            }
        );
    }
}
