//! The `fan-out` mode: one stream delivered to many enhanced fan-out consumers. Registers
//! `--consumers` consumers, subscribes each to every shard as that consumer (each with its own
//! read budget), produces timestamped records at `--rate`, and reports the put-to-deliver
//! latency over all deliveries and the fewest records any consumer received.

use anyhow::Context;
use clap::Args;
use tokio::time::Instant;

use crate::Options;
use crate::e2e::ReceiveStats;
use crate::e2e::Receivers;
use crate::e2e::SETTLE;
use crate::e2e::Via;
use crate::e2e::add_receive_rows;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;
use crate::setup;

#[derive(Debug, Clone, Args)]
pub struct FanOutOptions {
    #[command(flatten)]
    pub common: Options,
    /// Enhanced fan-out consumers (the node's default limit is 20 per stream).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub consumers: u32,
}

pub async fn run(options: &FanOutOptions) -> anyhow::Result<Report> {
    let common = &options.common;
    anyhow::ensure!(
        common.record_size as usize >= produce::HEADER,
        "fan-out needs --record-size of at least 16"
    );
    let target = setup::connect(common).await?;
    let client = &target.client;
    let names: Vec<String> = (0..options.consumers)
        .map(|i| format!("runnel-bench-{i}"))
        .collect();
    // Consumers left by an earlier run (of the same names) are reused.
    let existing: Vec<String> = client
        .list_consumers(&common.stream)
        .await?
        .into_iter()
        .map(|c| c.consumer_name)
        .collect();
    // At most 5 consumers may be CREATING at once (as on AWS): register in waves.
    let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(n)).collect();
    for wave in missing.chunks(5) {
        for name in wave {
            client
                .register_consumer(&common.stream, name)
                .await
                .with_context(|| format!("cannot register consumer {name}"))?;
        }
        for name in wave {
            client
                .wait_for_consumer(&common.stream, name, std::time::Duration::from_secs(60))
                .await?;
        }
    }
    let receivers: Vec<Receivers> = names
        .iter()
        .map(|name| {
            Receivers::start_as(
                client,
                &common.stream,
                &target.shards,
                Via::Subscribe,
                Some(name.clone()),
            )
        })
        .collect();
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    let load = Load::from_options(common, true);
    let produced = produce::produce(client, &load).await;
    let mut total = ReceiveStats::new();
    let mut fewest = u64::MAX;
    for r in receivers {
        let stats = r.finish(produced.records).await;
        fewest = fewest.min(stats.records);
        total.merge(stats);
    }
    let seconds = started.elapsed().as_secs_f64();
    for name in &names {
        let _ = client.deregister_consumer(&common.stream, name).await;
    }
    let mut report = Report::new("fan-out");
    produce::describe_setup(&mut report, common, target.shards.len());
    report.count("consumers", "consumers", u64::from(options.consumers));
    produced.add_to(&mut report);
    report.count("fewest_received", "fewest records one consumer received", fewest);
    add_receive_rows(&mut report, &total, seconds);
    Ok(report)
}
