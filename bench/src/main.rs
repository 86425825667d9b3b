//! `runnel-bench`: a load generator for Runnel's native gRPC API.
//!
//! Modes: `produce` (ingest throughput and PutRecords latency), `consume` (drain rate from the
//! trim horizon of a pre-filled stream), `e2e` (put-to-subscribe latency) and `mixed` (produce and
//! consume at once), `throttle` (accepted vs configured per-shard rates), `split` (splitting a
//! loaded shard) and `fan-out` (one stream to many enhanced fan-out consumers). Every run is bounded by `--duration` and stops by itself.

mod catch_up;
mod cluster;
mod consume;
mod e2e;
mod failover;
mod fan_out;
mod idle;
mod mixed;
mod produce;
mod report;
mod setup;
mod split;
mod throttle;

use std::process::ExitCode;

use clap::Args;
use clap::Parser;
use clap::Subcommand;

#[derive(Debug, Parser)]
#[command(name = "runnel-bench", version, about = "Load generator for Runnel")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Put records as fast as allowed: records/s, MB/s and PutRecords latency.
    Produce(produce::ProduceOptions),
    /// Pre-fill the stream, then read it from the trim horizon: drain records/s and MB/s.
    Consume(Options),
    /// Put-to-subscribe latency: producers at --rate, one subscription per shard.
    E2e(Options),
    /// Produce and consume (GetRecords polling) at once.
    Mixed(Options),
    /// Throttling accuracy: offer more than the per-shard limits; accepted vs configured.
    Throttle(throttle::ThrottleOptions),
    /// Split a loaded shard: time until the children take writes, failed records meanwhile.
    Split(split::SplitOptions),
    /// Enhanced fan-out: --consumers subscriptions per shard, put-to-deliver latency.
    FanOut(fan_out::FanOutOptions),
    /// Idle cost: create --shards shards, then each node's CPU share with no traffic.
    Idle(idle::IdleOptions),
    /// Failover: start a cluster, kill -9 shard leaders, time until writes are acknowledged.
    Failover(failover::FailoverOptions),
    /// Catch-up: start a cluster, stop a node, put --prefill records, time its catch-up.
    CatchUp(catch_up::CatchUpOptions),
}

/// Flags shared by every mode.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// gRPC address of a Runnel node.
    #[arg(long, env = "RUNNEL_ENDPOINT", default_value = "http://127.0.0.1:4568")]
    pub endpoint: String,
    /// Stream to use; created when missing.
    #[arg(long, default_value = "runnel-bench")]
    pub stream: String,
    /// Shard count of a stream created by the benchmark.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: u32,
    /// Bytes of data per record (at least 16 in e2e and mixed, which embed a timestamp).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=10_485_760))]
    pub record_size: u32,
    /// Records per PutRecords call.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub batch_size: u32,
    /// PutRecords calls in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Seconds of load (the consume mode's drain is bounded by it too).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Target records/s across all producers; 0 for as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Records put before draining in consume mode (0: drain what the stream holds).
    #[arg(long, default_value_t = 200_000)]
    pub prefill: u64,
    /// Print the results as one JSON document.
    #[arg(long)]
    pub json: bool,
}

impl Options {
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.duration.clamp(0.0, 86_400.0))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let (options, report) = match cli.mode {
            Mode::Produce(options) => {
                let report = produce::run(&options).await?;
                (options.common, report)
            }
            Mode::Consume(options) => {
                let report = consume::run(&options).await?;
                (options, report)
            }
            Mode::E2e(options) => {
                let report = e2e::run(&options).await?;
                (options, report)
            }
            Mode::Mixed(options) => {
                let report = mixed::run(&options).await?;
                (options, report)
            }
            Mode::Throttle(options) => {
                let report = throttle::run(&options).await?;
                (options.common, report)
            }
            Mode::Split(options) => {
                let report = split::run(&options).await?;
                (options.common, report)
            }
            Mode::FanOut(options) => {
                let report = fan_out::run(&options).await?;
                (options.common, report)
            }
            Mode::Idle(options) => {
                let report = idle::run(&options).await?;
                (options.common, report)
            }
            Mode::Failover(options) => {
                let report = failover::run(&options).await?;
                (options.common, report)
            }
            Mode::CatchUp(options) => {
                let report = catch_up::run(&options).await?;
                (options.common, report)
            }
        };
        report.print(options.json)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
