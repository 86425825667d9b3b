//! `runnel get` and `runnel tail`: reading a stream with a StreamReader.

use clap::Args;
use runnel_client::Client;
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
