//! The `throttle` mode: throttling accuracy. Producers offer more than the shards' configured
//! write limits while one GetRecords poller per shard calls as fast as it can; the report
//! compares the accepted rates with the configured ones.
//!
//! Run it against a node whose limits are the ones given here (the node's defaults are AWS's,
//! which are also this mode's defaults), on a PROVISIONED stream.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use clap::Args;
use runnel_client::Client;
use runnel_client::Error;
use runnel_client::Position;
use tokio::time::Instant;

use crate::Options;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;
use crate::setup;

/// Length of the benchmark's partition keys (32 hex digits), which count toward the byte limit.
const KEY_BYTES: u64 = 32;

#[derive(Debug, Clone, Args)]
pub struct ThrottleOptions {
    #[command(flatten)]
    pub common: Options,
    /// The node's per-shard write limit, records/s (`--shard-write-records-per-sec`).
    #[arg(long, default_value_t = 1_000)]
    pub limit_records: u64,
    /// The node's per-shard write limit, bytes/s (`--shard-write-bytes-per-sec`).
    #[arg(long, default_value_t = 1 << 20)]
    pub limit_bytes: u64,
    /// The node's per-shard GetRecords limit, calls/s (`--shard-read-calls-per-sec`).
    #[arg(long, default_value_t = 5)]
    pub limit_read_calls: u64,
    /// The node's burst (`--shard-burst-ms`): the bucket a shard starts with.
    #[arg(long, default_value_t = 1_000)]
    pub burst_ms: u64,
}

/// Records/s one shard accepts at most, given both write limits.
pub fn shard_write_rate(limit_records: u64, limit_bytes: u64, record_bytes: u64) -> f64 {
    let by_bytes = limit_bytes as f64 / record_bytes.max(1) as f64;
    (limit_records as f64).min(by_bytes)
}

/// Accepted over configured: raw, and with the initial burst (a full bucket) taken out.
pub fn accuracy(accepted: u64, configured_per_sec: f64, seconds: f64, burst_secs: f64) -> (f64, f64) {
    let configured = (configured_per_sec * seconds).max(1e-9);
    let raw = accepted as f64 / configured;
    let steady = (accepted as f64 - configured_per_sec * burst_secs) / configured;
    (raw, steady)
}

#[derive(Default)]
struct ReadCounts {
    ok: AtomicU64,
    throttled: AtomicU64,
    failed: AtomicU64,
}

async fn poll(client: Client, stream: String, shard: String, deadline: Instant, counts: Arc<ReadCounts>) {
    while Instant::now() < deadline {
        match client.get_records(&stream, &shard, Position::Latest, 1).await {
            Ok(_) => counts.ok.fetch_add(1, Ordering::Relaxed),
            Err(Error::Throttled(_)) => counts.throttled.fetch_add(1, Ordering::Relaxed),
            Err(_) => counts.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

pub async fn run(options: &ThrottleOptions) -> anyhow::Result<Report> {
    let mut common = options.common.clone();
    let target = setup::connect(&common).await?;
    let shards = target.shards.len() as f64;
    let per_shard = shard_write_rate(
        options.limit_records,
        options.limit_bytes,
        u64::from(common.record_size) + KEY_BYTES,
    );
    let configured = per_shard * shards;
    // Offer twice the configured rate unless told otherwise.
    if common.rate == 0 {
        common.rate = (2.0 * configured).ceil() as u64;
    }
    let common = &common;
    let load = Load::from_options(common, false);
    let started = Instant::now();
    let counts = Arc::new(ReadCounts::default());
    let pollers: Vec<_> = target
        .shards
        .iter()
        .map(|shard| {
            tokio::spawn(poll(
                target.client.clone(),
                common.stream.clone(),
                shard.clone(),
                load.deadline,
                counts.clone(),
            ))
        })
        .collect();
    let produced = produce::produce(&target.client, &load).await;
    for p in pollers {
        let _ = p.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let burst = options.burst_ms as f64 / 1000.0;

    let mut report = Report::new("throttle");
    produce::describe_setup(&mut report, common, target.shards.len());
    let offered = produced.records + produced.failed_records;
    report.number("seconds", "run time", seconds, "s");
    report.number(
        "write_configured_records_per_sec",
        "writes configured (records/s, all shards)",
        configured,
        "",
    );
    report.number(
        "write_offered_records_per_sec",
        "writes offered (records/s)",
        offered as f64 / produced.seconds.max(1e-9),
        "",
    );
    report.number(
        "write_accepted_records_per_sec",
        "writes accepted (records/s)",
        produced.records as f64 / produced.seconds.max(1e-9),
        "",
    );
    report.count(
        "write_throttled_records",
        "writes throttled (records)",
        produced.failed_records,
    );
    let (raw, steady) = accuracy(produced.records, configured, produced.seconds, burst);
    report.number(
        "write_accepted_vs_configured",
        "writes accepted / configured",
        raw,
        "",
    );
    report.number(
        "write_accepted_vs_configured_after_burst",
        "writes accepted / configured, burst excluded",
        steady,
        "",
    );
    let read_configured = options.limit_read_calls as f64 * shards;
    let (ok, throttled, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.throttled.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    report.number(
        "read_configured_calls_per_sec",
        "GetRecords configured (calls/s, all shards)",
        read_configured,
        "",
    );
    report.number(
        "read_accepted_calls_per_sec",
        "GetRecords accepted (calls/s)",
        ok as f64 / seconds,
        "",
    );
    report.count("read_throttled_calls", "GetRecords throttled (calls)", throttled);
    report.count("read_failed_calls", "GetRecords failed otherwise (calls)", failed);
    let (raw, steady) = accuracy(ok, read_configured, seconds, burst);
    report.number(
        "read_accepted_vs_configured",
        "GetRecords accepted / configured",
        raw,
        "",
    );
    report.number(
        "read_accepted_vs_configured_after_burst",
        "GetRecords accepted / configured, burst excluded",
        steady,
        "",
    );
    if let Some(e) = &produced.first_error {
        report.text("first_write_error", "first write error", e);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tighter_write_limit_decides() {
        // 1 KiB records (+ 32-byte key): bytes allow ~997/s, records 1,000/s.
        assert!((shard_write_rate(1000, 1 << 20, 1056) - 992.97).abs() < 0.01);
        // 100-byte records: the record limit.
        assert_eq!(shard_write_rate(1000, 1 << 20, 132), 1000.0);
    }

    #[test]
    fn accuracy_with_and_without_the_burst() {
        // 10 s at 1,000/s configured, 11,000 accepted (the 1 s burst included).
        let (raw, steady) = accuracy(11_000, 1000.0, 10.0, 1.0);
        assert!((raw - 1.1).abs() < 1e-9);
        assert!((steady - 1.0).abs() < 1e-9);
    }
}
