//! `runnel-node`: the Runnel data plane binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clap::Subcommand;
use runnel_log::LogConfig;
use runnel_node::capacity::api_limits::ApiLimits;
use runnel_node::capacity::api_limits::RateSetting;
use runnel_node::capacity::cold_shards::MergePolicy;
use runnel_node::capacity::hot_shards::SplitPolicy;
use runnel_node::capacity::throughput::ShardLimits;
use runnel_node::capacity::throughput::Throttling;
use runnel_node::encryption::Keyring;
use runnel_node::encryption::KeyringSource;
use runnel_node::kinesis::tls::TlsFiles;
use runnel_node::node::Node;
use runnel_node::node::NodeConfig;
use runnel_node::raft::FsyncPolicy;
use runnel_node::retention::RetentionSchedule;
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
    Standalone(NodeArgs),
    /// Run one node of a replicated cluster.
    Cluster(ClusterArgs),
    /// Start a local cluster of real node processes on predictable ports, for trying failover
    /// by hand (node i listens on 4567+10(i-1), 4568+10(i-1), 4569+10(i-1)).
    DevCluster(DevClusterArgs),
    /// Print a new keyring for `--kms-keyring` (one random 256-bit key, aliased
    /// `alias/aws/kinesis`), e.g. `runnel-node new-keyring > keyring` and then
    /// `kubectl create secret generic runnel-keyring --from-file=keyring`.
    NewKeyring,
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// This node's id (1 or more), unique in the cluster.
    #[arg(long, env = "RUNNEL_NODE_ID", value_parser = clap::value_parser!(u64).range(1..))]
    node_id: u64,
    /// The initial members, this node included, by their gRPC addresses: `1=host:port,2=...`.
    /// This node reaches each listed peer at the address given here, whatever address the
    /// node that formed a group recorded for it (so each node may have a route of its own).
    #[arg(long, env = "RUNNEL_PEERS", value_parser = parse_peer, value_delimiter = ',', required_unless_present = "join", conflicts_with = "join")]
    peers: Vec<(u64, String)>,
    /// Join a running cluster through any member's gRPC address instead of forming one with
    /// `--peers` (the node becomes a catalog learner, then a voter while there are fewer than
    /// five; new shards are placed on it). Harmless on restarts.
    #[arg(long, env = "RUNNEL_JOIN")]
    join: Option<String>,
    /// The gRPC address other nodes reach this node at (default: the `--peers` entry, else
    /// `--grpc-addr`).
    #[arg(long, env = "RUNNEL_ADVERTISE_ADDR")]
    advertise_addr: Option<String>,
    /// Quiesce idle shard groups (`--quiesce false` to keep every group ticking): a group with
    /// nothing to replicate stops its timers, and its followers rely on node-to-node liveness
    /// pings to notice a dead leader.
    #[arg(long, env = "RUNNEL_QUIESCE", default_value_t = true, action = clap::ArgAction::Set)]
    quiesce: bool,
    /// Replicas of each new shard.
    #[arg(long, env = "RUNNEL_REPLICATION_FACTOR", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=7))]
    replication_factor: u64,
}

#[derive(clap::Args)]
struct DevClusterArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    nodes: u64,
    /// Parent directory of the nodes' data directories (`node-1`, `node-2`, ...).
    #[arg(long, default_value = "runnel-dev-cluster")]
    data_dir: PathBuf,
    /// First node's Kinesis port; node i uses base+10(i-1) (Kinesis), +1 (gRPC), +2 (metrics).
    #[arg(long, default_value_t = 4567)]
    base_port: u16,
    /// Passed to every node.
    #[arg(long, value_enum, default_value_t = FsyncPolicy::Always)]
    fsync: FsyncPolicy,
    /// Further node flags, after `--`, passed to every node (e.g. `-- --throttling off`).
    #[arg(last = true)]
    node_args: Vec<String>,
}

fn parse_peer(s: &str) -> Result<(u64, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not ID=HOST:PORT"))?;
    let id = id
        .trim()
        .parse::<u64>()
        .map_err(|_| format!("'{id}' is not a node id"))?;
    if id == 0 {
        return Err("node ids start at 1".into());
    }
    let addr = addr.trim();
    if addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_none()
    {
        return Err(format!("'{addr}' is not HOST:PORT"));
    }
    Ok((id, addr.to_owned()))
}

#[derive(clap::Args)]
struct NodeArgs {
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
    /// Drop-behind: keep only the newest this many MiB of each shard log in the OS page cache
    /// once fsynced (older pages are dropped with posix_fadvise, and reads of older records
    /// come from disk); 0 leaves the page cache to the OS. Bounds the cache a node's logs hold
    /// (in Kubernetes it is charged to the pod's memory) and reuses pages instead of touching
    /// new ones.
    #[arg(long, env = "RUNNEL_PAGE_CACHE_WINDOW_MIB", default_value_t = 0)]
    page_cache_window_mib: u64,
    /// How often retention looks for expired segments (seconds).
    #[arg(long, env = "RUNNEL_RETENTION_CHECK_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    retention_check_secs: u64,
    /// How often the periodic gauges refresh: Raft state per group (role, term, commit and
    /// applied index, lag), storage and open shards per stream (milliseconds).
    #[arg(long, env = "RUNNEL_STATS_REFRESH_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    stats_refresh_ms: u64,
    /// Testing only: retention acts as if the clock were this many seconds ahead (expires
    /// records early). Never set in production.
    #[arg(
        long,
        env = "RUNNEL_RETENTION_CLOCK_OFFSET_SECS",
        default_value_t = 0,
        hide = true
    )]
    retention_clock_offset_secs: u32,
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
    /// UpdateShardCount calls one stream may make per rolling 24 hours (AWS: 10); more fail
    /// with LimitExceededException.
    #[arg(long, env = "RUNNEL_SCALINGS_PER_DAY_LIMIT", default_value_t = 10)]
    scalings_per_day_limit: u32,
    /// StartStreamEncryption calls one stream may make per rolling 24 hours (AWS: 25); more
    /// fail with LimitExceededException.
    #[arg(long, env = "RUNNEL_KEY_CHANGES_PER_DAY_LIMIT", default_value_t = 25)]
    key_changes_per_day_limit: u32,
    /// Most streams CREATING or DELETING at once; CreateStream and DeleteStream beyond it fail
    /// with LimitExceededException (AWS: 5).
    #[arg(long, env = "RUNNEL_TRANSITIONING_STREAM_LIMIT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    transitioning_stream_limit: u32,
    /// Most enhanced fan-out consumers per stream; RegisterStreamConsumer beyond it fails with
    /// LimitExceededException (AWS: 20).
    #[arg(long, env = "RUNNEL_CONSUMERS_PER_STREAM_LIMIT", default_value_t = 20)]
    consumers_per_stream_limit: u32,
    /// How long a SubscribeToShard subscription (and a native Subscribe of a consumer) lasts
    /// before it ends and must be renewed (milliseconds; AWS: 5 minutes).
    #[arg(long, env = "RUNNEL_SUBSCRIPTION_LIFETIME_MS", default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    subscription_lifetime_ms: u64,
    /// Serve the Kinesis API over TLS (HTTP/1.1 and HTTP/2 by ALPN) with this PEM certificate
    /// chain; without it the API is cleartext (HTTP/1.1 and h2c).
    #[arg(long, env = "RUNNEL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(long, env = "RUNNEL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The keyring of server-side encryption (StartStreamEncryption): master keys by id and
    /// alias, the same file on every node of a cluster (`runnel-node new-keyring` makes one).
    /// Default: standalone nodes create `<data dir>/keyring` with one key aliased
    /// `alias/aws/kinesis`; cluster nodes have no keys.
    #[arg(long, env = "RUNNEL_KMS_KEYRING")]
    kms_keyring: Option<PathBuf>,
    #[command(flatten)]
    throughput: ThroughputArgs,
    #[command(flatten)]
    on_demand: OnDemandArgs,
    /// Log format.
    #[arg(long, env = "RUNNEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Per-shard throughput limits, enforced by the node serving each request (defaults: AWS's).
#[derive(clap::Args)]
struct ThroughputArgs {
    /// Which streams the per-shard limits apply to: `provisioned` (as AWS), `all` (ON_DEMAND
    /// streams too) or `off`.
    #[arg(long, env = "RUNNEL_THROTTLING", value_enum, default_value_t = Throttling::Provisioned)]
    throttling: Throttling,
    /// Writes per shard, bytes/s (data + partition key); 0 = unlimited.
    #[arg(long, env = "RUNNEL_SHARD_WRITE_BYTES_PER_SEC", default_value_t = 1 << 20)]
    shard_write_bytes_per_sec: u64,
    /// Writes per shard, records/s; 0 = unlimited.
    #[arg(long, env = "RUNNEL_SHARD_WRITE_RECORDS_PER_SEC", default_value_t = 1_000)]
    shard_write_records_per_sec: u64,
    /// Reads per shard (GetRecords, shared by all its consumers), bytes/s; 0 = unlimited.
    #[arg(long, env = "RUNNEL_SHARD_READ_BYTES_PER_SEC", default_value_t = 2 << 20)]
    shard_read_bytes_per_sec: u64,
    /// GetRecords calls per shard per second; 0 = unlimited.
    #[arg(long, env = "RUNNEL_SHARD_READ_CALLS_PER_SEC", default_value_t = 5)]
    shard_read_calls_per_sec: u64,
    /// Enhanced fan-out reads of one consumer from one shard, bytes/s (independent of other
    /// consumers and of GetRecords); 0 = unlimited.
    #[arg(long, env = "RUNNEL_CONSUMER_READ_BYTES_PER_SEC", default_value_t = 2 << 20)]
    consumer_read_bytes_per_sec: u64,
    /// How much of each rate an idle shard may take at once, in milliseconds of it (the
    /// token-bucket size).
    #[arg(long, env = "RUNNEL_SHARD_BURST_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    shard_burst_ms: u64,
    /// Overrides AWS's per-second limit of an API operation, `Operation=count` (0 = unlimited;
    /// repeatable or comma-separated): GetShardIterator (5 per shard), SubscribeToShard (1 per
    /// consumer and shard), RegisterStreamConsumer and DeregisterStreamConsumer (5),
    /// DescribeStreamConsumer (20 per stream), ListStreamConsumers (5 per stream),
    /// DescribeStream (10), DescribeStreamSummary (20), ListShards (1000 per stream),
    /// ListStreams (5). Applied unless `--throttling off`.
    #[arg(
        long = "api-rate-limit",
        env = "RUNNEL_API_RATE_LIMITS",
        value_delimiter = ','
    )]
    api_rate_limits: Vec<RateSetting>,
    /// The period the API limits count calls in, milliseconds (AWS: one second).
    #[arg(long, env = "RUNNEL_API_RATE_WINDOW_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    api_rate_window_ms: u64,
}

impl ThroughputArgs {
    fn limits(&self) -> ShardLimits {
        ShardLimits {
            write_bytes_per_sec: self.shard_write_bytes_per_sec,
            write_records_per_sec: self.shard_write_records_per_sec,
            read_bytes_per_sec: self.shard_read_bytes_per_sec,
            read_calls_per_sec: self.shard_read_calls_per_sec,
            burst: std::time::Duration::from_millis(self.shard_burst_ms),
        }
    }

    fn api_limits(&self) -> ApiLimits {
        ApiLimits::new(
            &self.api_rate_limits,
            std::time::Duration::from_millis(self.api_rate_window_ms),
        )
    }
}

/// When a node splits a hot shard or merges cold shards of an ON_DEMAND stream (defaults: hot
/// at 80 % of AWS's per-shard write limits for a minute; cold at 20 % for 15 minutes).
#[derive(clap::Args)]
struct OnDemandArgs {
    /// Split hot ON_DEMAND shards automatically.
    #[arg(long, env = "RUNNEL_ON_DEMAND_SPLITS", default_value_t = true, action = clap::ArgAction::Set)]
    on_demand_splits: bool,
    /// A shard writing at least this many bytes/s (encoded batches) is hot.
    #[arg(long, env = "RUNNEL_HOT_SHARD_BYTES_PER_SEC", default_value_t = (1 << 20) * 4 / 5)]
    hot_shard_bytes_per_sec: u64,
    /// A shard writing at least this many records/s is hot.
    #[arg(long, env = "RUNNEL_HOT_SHARD_RECORDS_PER_SEC", default_value_t = 800)]
    hot_shard_records_per_sec: u64,
    /// How long a shard must stay hot before it is split, seconds.
    #[arg(long, env = "RUNNEL_HOT_SHARD_SUSTAINED_SECS", default_value_t = 60)]
    hot_shard_sustained_secs: u64,
    /// No automatic split within this long after a stream's last reshard, seconds.
    #[arg(long, env = "RUNNEL_HOT_SHARD_COOLDOWN_SECS", default_value_t = 300)]
    hot_shard_cooldown_secs: u64,
    /// Automatic splits stop at this many open shards per stream.
    #[arg(long, env = "RUNNEL_ON_DEMAND_MAX_SHARDS", default_value_t = 200)]
    on_demand_max_shards: u32,
    /// Merge adjacent cold ON_DEMAND shards automatically.
    #[arg(long, env = "RUNNEL_ON_DEMAND_MERGES", default_value_t = true, action = clap::ArgAction::Set)]
    on_demand_merges: bool,
    /// A shard writing at most this many bytes/s (encoded batches) and at most
    /// `--cold-shard-records-per-sec` is cold (default: a quarter of the hot threshold; 0 and 0:
    /// only a shard without writes is cold).
    #[arg(long, env = "RUNNEL_COLD_SHARD_BYTES_PER_SEC", default_value_t = (1 << 20) / 5)]
    cold_shard_bytes_per_sec: u64,
    /// A shard writing at most this many records/s (and at most the cold bytes/s) is cold.
    #[arg(long, env = "RUNNEL_COLD_SHARD_RECORDS_PER_SEC", default_value_t = 200)]
    cold_shard_records_per_sec: u64,
    /// How long two adjacent shards must both stay cold before they are merged, seconds.
    #[arg(long, env = "RUNNEL_COLD_SHARD_SUSTAINED_SECS", default_value_t = 900)]
    cold_shard_sustained_secs: u64,
    /// No automatic merge within this long after a stream's last reshard, seconds.
    #[arg(long, env = "RUNNEL_COLD_SHARD_COOLDOWN_SECS", default_value_t = 600)]
    cold_shard_cooldown_secs: u64,
    /// Automatic merges stop at this many open shards per stream (AWS's ON_DEMAND streams
    /// start with 4).
    #[arg(long, env = "RUNNEL_ON_DEMAND_MIN_SHARDS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    on_demand_min_shards: u32,
}

impl OnDemandArgs {
    fn policy(&self) -> Option<SplitPolicy> {
        self.on_demand_splits.then(|| SplitPolicy {
            hot_bytes_per_sec: self.hot_shard_bytes_per_sec,
            hot_records_per_sec: self.hot_shard_records_per_sec,
            sustained: std::time::Duration::from_secs(self.hot_shard_sustained_secs),
            cooldown: std::time::Duration::from_secs(self.hot_shard_cooldown_secs),
            max_shards: self.on_demand_max_shards,
        })
    }

    fn merge_policy(&self) -> Option<MergePolicy> {
        self.on_demand_merges.then(|| MergePolicy {
            cold_bytes_per_sec: self.cold_shard_bytes_per_sec,
            cold_records_per_sec: self.cold_shard_records_per_sec,
            sustained: std::time::Duration::from_secs(self.cold_shard_sustained_secs),
            cooldown: std::time::Duration::from_secs(self.cold_shard_cooldown_secs),
            min_shards: self.on_demand_min_shards,
            hot_bytes_per_sec: self.hot_shard_bytes_per_sec,
            hot_records_per_sec: self.hot_shard_records_per_sec,
        })
    }
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

fn node_config(args: &NodeArgs) -> NodeConfig {
    NodeConfig {
        node_id: 1,
        data_dir: args.data_dir.clone(),
        kinesis_addr: args.kinesis_addr,
        grpc_addr: args.grpc_addr,
        metrics_addr: args.metrics_addr,
        fsync: args.fsync,
        log: LogConfig {
            segment_bytes: args.segment_mib << 20,
            cache_window_bytes: (args.page_cache_window_mib > 0).then_some(args.page_cache_window_mib << 20),
            ..LogConfig::default()
        },
        service: ServiceConfig {
            transition_delay: std::time::Duration::from_millis(args.transition_delay_ms),
            max_shards_total: args.shard_limit,
            max_shards_per_stream: args.shards_per_stream_limit,
            max_on_demand_streams: args.on_demand_stream_limit,
            max_transitioning_streams: args.transitioning_stream_limit,
            max_scalings_per_day: args.scalings_per_day_limit,
            max_key_changes_per_day: args.key_changes_per_day_limit,
            on_demand_splits: args.on_demand.policy(),
            on_demand_merges: args.on_demand.merge_policy(),
            api_limits: args.throughput.api_limits(),
            replication_factor: 1,
            shard_limits: args.throughput.limits(),
            throttling: args.throughput.throttling,
            max_consumers_per_stream: args.consumers_per_stream_limit,
            subscription_lifetime: std::time::Duration::from_millis(args.subscription_lifetime_ms),
            consumer_read_bytes_per_sec: args.throughput.consumer_read_bytes_per_sec,
            ..ServiceConfig::default()
        },
        kinesis_tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        peers: BTreeMap::new(),
        join: None,
        quiesce: false,
        advertise: None,
        retention: RetentionSchedule {
            every: std::time::Duration::from_secs(args.retention_check_secs),
            clock_offset_ms: i64::from(args.retention_clock_offset_secs) * 1000,
        },
        stats_every: std::time::Duration::from_millis(args.stats_refresh_ms),
        keyring: match &args.kms_keyring {
            Some(path) => KeyringSource::File(path.clone()),
            None => KeyringSource::Empty,
        },
    }
}

/// A standalone node creates its own keyring when none is given.
fn standalone_config(args: &NodeArgs) -> NodeConfig {
    let mut config = node_config(args);
    if args.kms_keyring.is_none() {
        config.keyring = KeyringSource::CreateIfMissing(args.data_dir.join("keyring"));
    }
    config
}

async fn serve(mode: &str, args: &NodeArgs, config: NodeConfig) -> anyhow::Result<()> {
    let scheme = if config.kinesis_tls.is_some() {
        "https"
    } else {
        "http"
    };
    let node = Node::start(config).await.context("starting the node")?;
    tracing::info!(
        data_dir = %args.data_dir.display(),
        grpc = %format!("http://{}", node.grpc_addr),
        kinesis = %format!("{scheme}://{}", node.kinesis_addr),
        metrics = %runnel_node::metrics::describe_addr(&node.metrics_addr),
        fsync = ?args.fsync,
        "runnel-node {mode} ready"
    );
    println!("runnel-node {mode} ready");
    println!("  data dir:  {}", args.data_dir.display());
    println!("  gRPC API:  http://{}", node.grpc_addr);
    println!("  metrics:   http://{}/metrics", node.metrics_addr);
    println!("  Kinesis API: {scheme}://{}", node.kinesis_addr);
    node.run(shutdown_signal()).await.context("serving")?;
    Ok(())
}

async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let peers: BTreeMap<u64, String> = args.peers.iter().cloned().collect();
    if args.join.is_none() && !peers.contains_key(&args.node_id) {
        anyhow::bail!(
            "--peers must list this node (id {}) with its gRPC address",
            args.node_id
        );
    }
    if peers.len() > runnel_node::node::MAX_CATALOG_VOTERS {
        anyhow::bail!(
            "at most {} initial peers are supported",
            runnel_node::node::MAX_CATALOG_VOTERS
        );
    }
    let mut config = node_config(&args.node);
    config.node_id = args.node_id;
    config.peers = peers;
    config.join = args.join.clone();
    config.quiesce = args.quiesce;
    config.advertise = args.advertise_addr.clone();
    config.service.replication_factor = args.replication_factor as usize;
    serve("cluster", &args.node, config).await
}

async fn dev_cluster(args: DevClusterArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating runnel-node")?;
    let port = |i: u64, off: u16| args.base_port + 10 * (i as u16 - 1) + off;
    let peers: Vec<String> = (1..=args.nodes)
        .map(|i| format!("{i}=127.0.0.1:{}", port(i, 1)))
        .collect();
    let fsync = match args.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Never => "never",
    };
    // One keyring for all nodes (unless the node flags name one), so encrypted streams work.
    let mut keyring_args = Vec::new();
    if !args.node_args.iter().any(|a| a.starts_with("--kms-keyring")) {
        std::fs::create_dir_all(&args.data_dir).context("creating the data directory")?;
        let path = args.data_dir.join("keyring");
        Keyring::load_or_create(&path).context("creating the cluster's keyring")?;
        keyring_args = vec!["--kms-keyring".into(), path.display().to_string()];
    }
    let mut children = Vec::new();
    for i in 1..=args.nodes {
        let dir = args.data_dir.join(format!("node-{i}"));
        let child = tokio::process::Command::new(&exe)
            .arg("cluster")
            .args(["--node-id", &i.to_string(), "--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(&dir)
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", port(i, 0))])
            .args(["--grpc-addr", &format!("127.0.0.1:{}", port(i, 1))])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", port(i, 2))])
            .args(["--fsync", fsync])
            .args(&keyring_args)
            .args(&args.node_args)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting node {i}"))?;
        println!(
            "node {i}: gRPC 127.0.0.1:{}  metrics 127.0.0.1:{}  data {}",
            port(i, 1),
            port(i, 2),
            dir.display()
        );
        children.push(child);
    }
    println!(
        "{} nodes running; kill -9 one to watch failover; Ctrl-C stops them all",
        args.nodes
    );
    shutdown_signal().await;
    for c in &mut children {
        let _ = c.kill().await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Standalone(args) => {
            init_tracing(args.log_format);
            runtime.block_on(serve("standalone", &args, standalone_config(&args)))
        }
        Command::Cluster(args) => {
            init_tracing(args.node.log_format);
            runtime.block_on(cluster(args))
        }
        Command::DevCluster(args) => {
            init_tracing(LogFormat::Text);
            runtime.block_on(dev_cluster(args))
        }
        Command::NewKeyring => {
            print!("{}", Keyring::generate()?);
            Ok(())
        }
    }
}
