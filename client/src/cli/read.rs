//! `runnel get` and `runnel tail`: reading a stream with a StreamReader, or (`tail --app`) as
//! one worker of a consuming application with checkpoints in the cluster.

use std::time::Duration;

use clap::Args;
use runnel_client::Client;
use runnel_client::Consumer;
use runnel_client::ConsumerConfig;
use runnel_client::Position;
use runnel_client::ReaderOptions;
use runnel_client::Record;
use runnel_client::StreamReader;

use super::output::Output;

/// Most records asked per GetRecords call.
const MAX_PER_CALL: u32 = 10_000;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Stream name.
    stream: String,
    /// Read only this shard (e.g. shardId-000000000000).
    #[arg(long)]
    shard: Option<String>,
    /// Where to start: trim-horizon, latest, at-seq:N, after-seq:N, timestamp:RFC3339 or
    /// timestamp:EPOCH_MS.
    #[arg(long, default_value = "trim-horizon", value_parser = parse_position)]
    from: Position,
    /// Stop after this many records (as stored: an aggregate counts once).
    #[arg(long)]
    limit: Option<u64>,
    /// Print KPL-aggregated records as stored instead of their user records.
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    /// Stream name.
    stream: String,
    /// Where to start (as for `get`).
    #[arg(long, default_value = "latest", value_parser = parse_position)]
    from: Position,
    /// Keep reading new records (every shard, including shards created by resharding) until
    /// Ctrl-C; without it, stop once caught up.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print KPL-aggregated records as stored instead of their user records.
    #[arg(long)]
    raw: bool,
    /// Read as a worker of this consuming application: the application's `tail --app` workers
    /// share the shards (leases in the cluster), each batch is checkpointed once printed, and
    /// a restart resumes after the last checkpoint (`--from` applies only to shards without
    /// one). Runs until Ctrl-C, then releases its leases.
    #[arg(long)]
    app: Option<String>,
    /// This worker's id within the application (default: host name and process id).
    #[arg(long, requires = "app")]
    worker: Option<String>,
    /// Take over the leases of a worker that stopped renewing them after this many seconds.
    #[arg(long, default_value_t = 10, requires = "app")]
    failover_secs: u64,
}

fn parse_position(input: &str) -> Result<Position, String> {
    input.parse().map_err(|err: runnel_client::Error| err.to_string())
}

pub async fn get(client: &Client, out: &Output, args: GetArgs) -> anyhow::Result<()> {
    let limit_per_call = match args.limit {
        Some(0) => return Ok(()),
        Some(limit) => u32::try_from(limit).unwrap_or(MAX_PER_CALL).min(MAX_PER_CALL),
        None => MAX_PER_CALL,
    };
    let options = ReaderOptions {
        start: args.from,
        shard: args.shard,
        follow: false,
        limit_per_call,
        ..ReaderOptions::default()
    };
    read(client, out, &args.stream, options, args.limit, args.raw).await
}

pub async fn tail(client: &Client, out: &Output, args: TailArgs) -> anyhow::Result<()> {
    if let Some(app) = args.app.clone() {
        return consume(client, out, args, app).await;
    }
    let options = ReaderOptions {
        start: args.from,
        follow: args.follow,
        ..ReaderOptions::default()
    };
    tokio::select! {
        result = read(client, out, &args.stream, options, None, args.raw) => result,
        signal = tokio::signal::ctrl_c() => Ok(signal?),
    }
}

/// `tail --app`: one worker of a consuming application.
async fn consume(client: &Client, out: &Output, args: TailArgs, app: String) -> anyhow::Result<()> {
    client.describe_stream(&args.stream).await?;
    let worker = args.worker.unwrap_or_else(default_worker_id);
    let mut config = ConsumerConfig::new(&args.stream, app, worker)
        .with_failover_time(Duration::from_secs(args.failover_secs.max(1)));
    config.initial_position = args.from;
    config.deaggregate = !args.raw;
    let mut consumer = Consumer::start(client.clone(), config);
    let printed = async {
        while let Some(delivery) = consumer.next().await {
            out.records(&delivery.records)?;
            match consumer.checkpoint(&delivery).await {
                // Another worker took the shard over; it resumes from the last checkpoint.
                Err(runnel_client::Error::LeaseLost(_)) => {}
                other => other?,
            }
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        result = printed => result,
        signal = tokio::signal::ctrl_c() => Ok(signal?),
    };
    consumer.shutdown().await;
    result
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

async fn read(
    client: &Client,
    out: &Output,
    stream: &str,
    options: ReaderOptions,
    limit: Option<u64>,
    raw: bool,
) -> anyhow::Result<()> {
    let mut reader = StreamReader::open(client, stream, options).await?;
    let mut remaining = limit.unwrap_or(u64::MAX);
    while remaining > 0 {
        let Some(mut records) = reader.next_batch().await? else {
            break;
        };
        let keep = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(records.len());
        records.truncate(keep);
        remaining -= keep as u64;
        if !raw {
            records = records.into_iter().flat_map(Record::deaggregate).collect();
        }
        out.records(&records)?;
    }
    Ok(())
}
