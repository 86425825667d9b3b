//! The `consume` mode: pre-fill, then drain every shard from the trim horizon.

use std::time::Duration;

use hdrhistogram::Histogram;
use runnel_client::Client;
use runnel_client::Position;
use tokio::time::Instant;

use crate::Options;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;
use crate::report::histogram;
use crate::setup;

/// Records asked per GetRecords call.
const PAGE: u32 = 10_000;
/// Upper bound of the pre-fill phase.
const PREFILL_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct DrainStats {
    latency: Histogram<u64>,
    records: u64,
    bytes: u64,
    calls: u64,
    complete: bool,
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let target = setup::connect(options).await?;
    let mut report = Report::new("consume");
    produce::describe_setup(&mut report, options, target.shards.len());
    if options.prefill > 0 {
        eprintln!(
            "pre-filling '{}' with {} records",
            options.stream, options.prefill
        );
        let mut load = Load::from_options(options, false);
        load.rate = 0;
        load.max_records = Some(options.prefill);
        load.deadline = Instant::now() + PREFILL_LIMIT;
        let stats = produce::produce(&target.client, &load).await;
        report.count("prefill_records", "pre-filled records", stats.records);
        report.rates("prefill", stats.records, stats.bytes, stats.seconds);
        if let Some(error) = &stats.first_error {
            report.text("prefill_first_error", "pre-fill first error", error);
        }
    }
    eprintln!("draining {} shard(s) from the trim horizon", target.shards.len());
    let deadline = Instant::now() + options.duration();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for shard in target.shards.clone() {
        let (client, stream) = (target.client.clone(), options.stream.clone());
        tasks.push(tokio::spawn(async move {
            drain(&client, &stream, &shard, deadline).await
        }));
    }
    let mut latency = histogram();
    let (mut records, mut bytes, mut calls, mut complete) = (0, 0, 0, true);
    for task in tasks {
        let stats = task.await??;
        let _ = latency.add(&stats.latency);
        records += stats.records;
        bytes += stats.bytes;
        calls += stats.calls;
        complete &= stats.complete;
    }
    let seconds = started.elapsed().as_secs_f64();
    report.count("records_read", "records read", records);
    report.count("bytes_read", "bytes read", bytes);
    report.count("get_calls", "GetRecords calls", calls);
    report.text(
        "drained",
        "drained to the end",
        if complete { "yes" } else { "no (duration reached)" },
    );
    report.number("drain_seconds", "drain time", seconds, "s");
    report.rates("consume", records, bytes, seconds);
    report.latency("get_call", "GetRecords latency", &latency);
    Ok(report)
}

/// Reads one shard from the trim horizon until caught up or the deadline.
async fn drain(client: &Client, stream: &str, shard: &str, deadline: Instant) -> anyhow::Result<DrainStats> {
    let mut stats = DrainStats {
        latency: histogram(),
        records: 0,
        bytes: 0,
        calls: 0,
        complete: false,
    };
    let mut position = Position::TrimHorizon;
    while Instant::now() < deadline {
        let sent = Instant::now();
        let page = client.get_records(stream, shard, position.clone(), PAGE).await?;
        stats.latency.saturating_record(sent.elapsed().as_micros() as u64);
        stats.calls += 1;
        let caught_up = page.records.is_empty() && page.millis_behind_latest <= 0;
        stats.records += page.records.len() as u64;
        stats.bytes += page.records.iter().map(|r| r.data.len() as u64).sum::<u64>();
        match page.next_position {
            Some(next) if !caught_up => position = next,
            _ => {
                stats.complete = true;
                break;
            }
        }
    }
    Ok(stats)
}
