//! Per-shard throughput admission: what the service layer asks of the shard's leader, which
//! decides (`capacity::shard_admission`, applied by `shard::router`), and how its answers
//! become AWS results and metrics.
//!
//! The node that takes the request decides *whether* a request is admitted (the stream's mode,
//! `--throttling`); the leader decides *how much*. Refusals are counted
//! (WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, and
//! `runnel_api_calls_throttled_total`) here, by the node that builds the AWS response, once per
//! refused entry or call. See `docs/ARCHITECTURE.md`, "Throttling".

use super::PutEntryResult;
use super::ServiceError;
use super::StreamService;
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
    /// Whether the appends of a PutRecords to `stream` are admitted against the per-shard
    /// write budgets (by each shard's leader).
    pub(super) fn write_throttled(&self, stream: &StreamRecord) -> bool {
        self.inner.config.throttling.applies_to(stream.mode)
    }

    /// Fails the entries of one shard's batch that its leader did not admit (a suffix of the
    /// batch) with ProvisionedThroughputExceededException, as AWS; returns how many.
    pub(super) fn fail_throttled(
        &self,
        stream: &str,
        shard: u32,
        refused: &[(usize, Record)],
        results: &mut [Option<PutEntryResult>],
    ) -> u64 {
        let message = write_throttled_message(shard, stream, &self.inner.config.account);
        let mut throttled = 0;
        for &(i, _) in refused {
            if let Some(slot) = results.get_mut(i) {
                *slot = Some(PutEntryResult::Failed {
                    error_code: THROTTLED.into(),
                    error_message: message.clone(),
                });
                throttled += 1;
            }
        }
        throttled
    }

    /// Counts throttled PutRecords entries (WriteProvisionedThroughputExceeded).
    pub(super) fn count_write_throttled(&self, stream: &str, throttled: u64) {
        if throttled > 0 {
            self.inner
                .metrics
                .streams
                .write_throughput_exceeded
                .with_label_values(&[stream])
                .inc_by(throttled);
        }
    }

    /// The GetRecords error of a read the shard's leader refused (counted as
    /// ReadProvisionedThroughputExceeded).
    pub(super) fn read_refused(&self, stream: &str, shard: &ShardRecord) -> ServiceError {
        self.inner
            .metrics
            .streams
            .read_throughput_exceeded
            .with_label_values(&[stream])
            .inc();
        ServiceError::ProvisionedThroughputExceeded(read_throttled_message(
            shard.index,
            stream,
            &self.inner.config.account,
        ))
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
