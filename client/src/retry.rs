//! Putting records with retries: entries refused for throughput (or an internal failure) are
//! sent again after a backoff, the rest of the batch keeps its results.
//!
//! Order: the server refuses a suffix of each shard's part of a PutRecords when a shard is over
//! its limits, so retrying the refused entries, in order, before anything else of this call
//! keeps one key's records in the order given.

use std::time::Duration;

use crate::Client;
use crate::Error;
use crate::PutEntry;
use crate::PutResult;
use crate::batch::split_batches;

/// How often and how patiently failed entries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per entry, the first included.
    pub max_attempts: u32,
    /// The pause before the first retry; doubled each time.
    pub base_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Up to 20 attempts, 50 ms doubling to at most 2 s (about half a minute in all).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 20,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1 for the first retry), without jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Whether an entry that failed with `error_code` may succeed when sent again.
pub fn retryable(error_code: &str) -> bool {
    matches!(
        error_code,
        "ProvisionedThroughputExceededException" | "InternalFailure" | "ServiceUnavailable"
    )
}

impl Client {
    /// Puts records like [`Client::put_records`] (batch after batch), retrying the entries of
    /// each batch that failed with a retryable code — and calls that failed with a retryable
    /// error — following `policy` before the next batch is sent, so one key's records keep their
    /// order. Results are in input order; an entry still failing after the last attempt keeps
    /// its last failure.
    pub async fn put_records_with_retry(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
        policy: RetryPolicy,
    ) -> Result<Vec<PutResult>, Error> {
        let mut results = Vec::with_capacity(entries.len());
        for batch in split_batches(entries, self.batch_limits()) {
            results.extend(self.put_batch_with_retry(stream, batch, policy).await?);
        }
        Ok(results)
    }

    async fn put_batch_with_retry(
        &self,
        stream: &str,
        batch: Vec<PutEntry>,
        policy: RetryPolicy,
    ) -> Result<Vec<PutResult>, Error> {
        let mut results: Vec<Option<PutResult>> = vec![None; batch.len()];
        let mut todo: Vec<(usize, PutEntry)> = batch.into_iter().enumerate().collect();
        let mut attempt = 0;
        while !todo.is_empty() {
            attempt += 1;
            if attempt > 1 {
                let jitter = rand::random_range(0.5..=1.0);
                tokio::time::sleep(policy.delay(attempt - 1).mul_f64(jitter)).await;
            }
            let sent: Vec<PutEntry> = todo.iter().map(|(_, e)| e.clone()).collect();
            let outcome = match self.put_batch(stream, sent).await {
                Ok(outcome) => outcome,
                Err(e) if e.is_retryable() && attempt < policy.max_attempts => continue,
                Err(e) => return Err(e),
            };
            let mut again = Vec::new();
            for ((index, entry), result) in todo.into_iter().zip(outcome) {
                let retry = matches!(&result, PutResult::Failed { error_code, .. } if retryable(error_code));
                if retry && attempt < policy.max_attempts {
                    again.push((index, entry));
                }
                results[index] = Some(result);
            }
            todo = again;
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(PutResult::Failed {
                    error_code: "InternalFailure".into(),
                    error_message: "not sent".into(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let ms: Vec<u128> = (1..=8).map(|r| p.delay(r).as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(p.delay(200), Duration::from_secs(2));
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(retryable("ProvisionedThroughputExceededException"));
        assert!(retryable("InternalFailure"));
        assert!(!retryable("InvalidArgumentException"));
        assert!(!retryable("ValidationException"));
    }
}
