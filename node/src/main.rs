//! `runnel-node`: the Runnel data plane binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clap::Subcommand;
use runnel_log::LogConfig;
use runnel_node::node::Node;
use runnel_node::node::NodeConfig;
use runnel_node::raft::FsyncPolicy;
use runnel_node::service::ServiceConfig;

#[derive(Parser)]
#[command(
    name = "runnel-node",
    version,
    about = "Runnel: self-hosted, Kinesis-compatible data streams"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system in one process: a data directory, no Kubernetes.
    Standalone(StandaloneArgs),
}

#[derive(clap::Args)]
struct StandaloneArgs {
    /// Where shard logs and the catalog live. Restarting on the same directory resumes.
    #[arg(long, env = "RUNNEL_DATA_DIR", default_value = "runnel-data")]
    data_dir: PathBuf,
    /// Address of the Kinesis-compatible HTTP API.
    #[arg(long, env = "RUNNEL_KINESIS_ADDR", default_value = "127.0.0.1:4567")]
    kinesis_addr: SocketAddr,
    /// Address of the native gRPC API.
    #[arg(long, env = "RUNNEL_GRPC_ADDR", default_value = "127.0.0.1:4568")]
    grpc_addr: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(long, env = "RUNNEL_METRICS_ADDR", default_value = "127.0.0.1:4569")]
    metrics_addr: SocketAddr,
    /// When a write counts as durable: `always` fsyncs (group commit) before acknowledging;
    /// `never` leaves flushing to the OS (benchmarks and throwaway data only).
    #[arg(long, env = "RUNNEL_FSYNC", value_enum, default_value_t = FsyncPolicy::Always)]
    fsync: FsyncPolicy,
    /// Roll shard-log segments at this size (MiB).
    #[arg(long, env = "RUNNEL_SEGMENT_MIB", default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=4096))]
    segment_mib: u64,
    /// Delay of the CREATING → ACTIVE and DELETING → gone transitions (milliseconds).
    #[arg(long, env = "RUNNEL_TRANSITION_DELAY_MS", default_value_t = 100)]
    transition_delay_ms: u64,
    /// Most open shards on this node (DescribeLimits' ShardLimit; CreateStream beyond it fails
    /// with LimitExceededException).
    #[arg(long, env = "RUNNEL_SHARD_LIMIT", default_value_t = 20_000)]
    shard_limit: u32,
    /// Most shards of one stream.
    #[arg(long, env = "RUNNEL_SHARDS_PER_STREAM_LIMIT", default_value_t = 10_000)]
    shards_per_stream_limit: u32,
    /// Most ON_DEMAND streams (DescribeLimits' OnDemandStreamCountLimit).
    #[arg(long, env = "RUNNEL_ON_DEMAND_STREAM_LIMIT", default_value_t = 50)]
    on_demand_stream_limit: u32,
    /// Log format.
    #[arg(long, env = "RUNNEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let config = NodeConfig {
        node_id: 1,
        data_dir: args.data_dir.clone(),
        kinesis_addr: args.kinesis_addr,
        grpc_addr: args.grpc_addr,
        metrics_addr: args.metrics_addr,
        fsync: args.fsync,
        log: LogConfig {
            segment_bytes: args.segment_mib << 20,
            ..LogConfig::default()
        },
        service: ServiceConfig {
            transition_delay: std::time::Duration::from_millis(args.transition_delay_ms),
            max_shards_total: args.shard_limit,
            max_shards_per_stream: args.shards_per_stream_limit,
            max_on_demand_streams: args.on_demand_stream_limit,
            ..ServiceConfig::default()
        },
    };
    let node = Node::start(config).await.context("starting the node")?;
    tracing::info!(
        data_dir = %args.data_dir.display(),
        grpc = %format!("http://{}", node.grpc_addr),
        kinesis = %format!("http://{}", node.kinesis_addr),
        metrics = %runnel_node::metrics::describe_addr(&node.metrics_addr),
        fsync = ?args.fsync,
        "runnel-node standalone ready"
    );
    println!("runnel-node standalone ready");
    println!("  data dir:  {}", args.data_dir.display());
    println!("  gRPC API:  http://{}", node.grpc_addr);
    println!("  metrics:   http://{}/metrics", node.metrics_addr);
    println!("  Kinesis API: http://{}", node.kinesis_addr);
    node.run(shutdown_signal()).await.context("serving")?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Standalone(args) => {
            init_tracing(args.log_format);
            runtime.block_on(standalone(args))
        }
    }
}
