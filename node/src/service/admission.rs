//! Per-shard throughput admission: the service layer's hooks around `capacity::throughput`.
//!
//! Enforced by the node that serves the request, before it appends or reads (see
//! `docs/ARCHITECTURE.md`, "Throttling", for what that means in a cluster).

use std::collections::BTreeMap;
use std::time::Instant;

use super::PutEntryResult;
use super::ServiceError;
use super::StreamService;
use crate::capacity::usage::record_bytes;
use crate::catalog::ShardRecord;
use crate::catalog::StreamRecord;
use crate::model::Record;
use crate::model::ShardId;

/// The error code of a throttled PutRecords entry and the type of the PutRecord/GetRecords error.
pub const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// AWS's message for a write over a shard's limits (PutRecord, and each PutRecords entry).
pub fn write_throttled_message(shard: u32, stream: &str, account: &str) -> String {
    format!(
        "Rate exceeded for shard {} in stream {stream} under account {account}.",
        ShardId(shard)
    )
}

/// AWS's message for a GetRecords call over a shard's read limits.
pub fn read_throttled_message(shard: u32, stream: &str, account: &str) -> String {
    format!("Rate exceeded for Shard - {account}/{stream}/{}", ShardId(shard))
}

impl StreamService {
    /// Admits each shard's batch of a PutRecords against the shard's write budget. Entries over
    /// the budget (a suffix of each shard's batch) are taken out of the batch and fail on their
    /// own with ProvisionedThroughputExceededException, as AWS; batches left empty are dropped.
    pub(super) fn admit_writes(
        &self,
        stream: &StreamRecord,
        batches: &mut BTreeMap<u32, Vec<(usize, Record)>>,
        results: &mut [Option<PutEntryResult>],
    ) {
        let config = &self.inner.config;
        if !config.throttling.applies_to(stream.mode) {
            return;
        }
        let now = Instant::now();
        let mut throttled = 0u64;
        batches.retain(|&index, entries| {
            // A shard missing from the catalog is reported by the append, as before.
            let Some(shard) = stream.shard(index) else {
                return true;
            };
            let sizes = entries
                .iter()
                .map(|(_, r)| record_bytes(r.data.len(), &r.partition_key));
            let admitted = self.inner.throttle.admit_writes(shard.group, sizes, now);
            if admitted >= entries.len() {
                return true;
            }
            let message = write_throttled_message(index, &stream.name, &config.account);
            for &(i, _) in &entries[admitted..] {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(PutEntryResult::Failed {
                        error_code: THROTTLED.into(),
                        error_message: message.clone(),
                    });
                    throttled += 1;
                }
            }
            entries.truncate(admitted);
            admitted > 0
        });
        if throttled > 0 {
            self.inner
                .metrics
                .streams
                .write_throughput_exceeded
                .with_label_values(&[&stream.name])
                .inc_by(throttled);
        }
    }

    /// Admits one GetRecords call on `shard` against its read budget.
    pub(super) fn admit_read(&self, stream: &str, shard: &ShardRecord) -> Result<(), ServiceError> {
        if !self.read_throttled(stream) {
            return Ok(());
        }
        if self.inner.throttle.admit_read(shard.group, Instant::now()) {
            return Ok(());
        }
        self.inner
            .metrics
            .streams
            .read_throughput_exceeded
            .with_label_values(&[stream])
            .inc();
        Err(ServiceError::ProvisionedThroughputExceeded(
            read_throttled_message(shard.index, stream, &self.inner.config.account),
        ))
    }

    /// Charges the bytes an admitted GetRecords returned to the shard's read budget.
    pub(super) fn charge_read(&self, stream: &str, shard: &ShardRecord, bytes: usize) {
        if self.read_throttled(stream) {
            self.inner
                .throttle
                .charge_read(shard.group, bytes, Instant::now());
        }
    }

    pub(super) fn read_throttled(&self, stream: &str) -> bool {
        let throttling = self.inner.config.throttling;
        self.inner
            .view
            .read(|c| c.stream(stream).map(|s| throttling.applies_to(s.mode)))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_those_of_aws() {
        assert_eq!(
            write_throttled_message(1, "exampleStreamName", "111111111111"),
            "Rate exceeded for shard shardId-000000000001 in stream exampleStreamName under account 111111111111."
        );
        assert_eq!(
            read_throttled_message(0, "eth-erc20-event", "477594640287"),
            "Rate exceeded for Shard - 477594640287/eth-erc20-event/shardId-000000000000"
        );
    }
}
