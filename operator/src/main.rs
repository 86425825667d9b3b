//! `runnel-operator`: watches `Stream` and `DeliveryStream` resources and reconciles them into
//! the Runnel catalog through the nodes' admin gRPC API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::Client;
use runnel_operator::catalog_client::CatalogClient;
use runnel_operator::cluster::reconciler::ClusterConfig;
use runnel_operator::cluster::reconciler::ClusterReconciler;
use runnel_operator::cluster::reconciler::NodeStatefulSet;
use runnel_operator::controller;
use runnel_operator::controller::Context;
use runnel_operator::discovery::NodeSet;
use runnel_operator::leader::Elector;
use runnel_operator::leader::LeaseTiming;
use runnel_operator::load::LoadTracker;
use runnel_operator::metrics;
use runnel_operator::metrics::Metrics;
use runnel_operator::node_metrics;
use runnel_operator::node_metrics::MetricsTargets;
use runnel_operator::policy::nodes::NodeScalingConfig;
use runnel_operator::policy::placement::PlacementConfig;

/// How often in-cluster discovery re-reads the node StatefulSet.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(name = "runnel-operator", version, about = "Kubernetes operator for Runnel")]
struct Args {
    /// Admin gRPC addresses of the nodes (HOST:PORT,...). Overrides in-cluster discovery.
    #[arg(long, env = "RUNNEL_NODES", value_delimiter = ',')]
    nodes: Vec<String>,

    /// Watch only this namespace (all namespaces when unset).
    #[arg(long, env = "RUNNEL_WATCH_NAMESPACE")]
    namespace: Option<String>,

    /// Address of the operator's own /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:8080")]
    metrics_addr: SocketAddr,

    /// Run the controllers only while holding a Lease, so several replicas can run.
    #[arg(long)]
    leader_election: bool,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "runnel-operator")]
    lease_name: String,

    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,

    /// Seconds a Lease stays valid without renewal; a standby takes over after that.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,

    /// This replica's identity in the Lease and in Events (default: hostname and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// The node StatefulSet: in-cluster discovery, node scaling, and (also with `--nodes`) its
    /// pods `<name>-<ordinal>`, read by name to find each node's zone and capacity annotation.
    #[arg(long, default_value = "runnel-node")]
    node_statefulset: String,

    /// The headless Service of the node StatefulSet (in-cluster discovery).
    #[arg(long, default_value = "runnel-node-headless")]
    node_service: String,

    /// Namespace of the node StatefulSet (default: the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    node_namespace: String,

    /// The nodes' gRPC port (in-cluster discovery).
    #[arg(long, default_value_t = 4568)]
    node_grpc_port: u16,

    /// Metrics addresses of the nodes (HOST:PORT,...), read for the autoscaler's load samples.
    /// Overrides in-cluster discovery; with `--nodes` and without this flag no load is measured.
    #[arg(long, env = "RUNNEL_NODE_METRICS", value_delimiter = ',')]
    node_metrics: Vec<String>,

    /// The nodes' metrics port (in-cluster discovery).
    #[arg(long, default_value_t = 4569)]
    node_metrics_port: u16,

    /// Seconds between two reads of the nodes' metrics (load samples).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    load_sample_seconds: u64,

    /// Seconds of load history kept; autoscaling windows longer than this are capped to it.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    load_history_seconds: u64,

    /// Replication factor of shard groups, as the nodes' `--replication-factor`: placement keeps
    /// it (reports shards with more or fewer replicas) and node scaling never goes below it.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=7))]
    replication_factor: u32,

    /// Seconds between two rounds of the cluster reconciler (replica placement, node scaling).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    placement_interval_seconds: u64,

    /// Most replica moves under way at once in the cluster; 0 disables replica moves.
    #[arg(long, default_value_t = 2)]
    max_moves_in_flight: usize,

    /// Write bytes per second one node sustains (replicated writes): placement moves replicas
    /// off nodes above 85 % of it and node scaling grows the StatefulSet above 75 % on average.
    /// A Kubernetes Node's annotation `runnel.dev/capacity-bytes-per-sec` overrides it for the
    /// node whose pod runs there.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    node_capacity_bytes_per_sec: u64,

    /// Let the operator scale the node StatefulSet (`--node-statefulset` in `--node-namespace`):
    /// grow it when replicas or load per node exceed their bounds, drain, remove and shrink
    /// its highest ordinal when the rest carry the load.
    #[arg(long)]
    node_scaling: bool,

    /// Fewest node pods node scaling keeps (never fewer than the replication factor).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    min_nodes: u32,

    /// Most node pods node scaling creates.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    max_nodes: u32,

    /// Most shard replicas per node before node scaling grows the StatefulSet.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    max_replicas_per_node: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();

    let metrics = Metrics::new().context("registering metrics")?;
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    tracing::info!(addr = %args.metrics_addr, "serving /metrics, /healthz, /readyz");
    tokio::spawn(metrics::serve(listener, metrics.clone()));

    let client = Client::try_default()
        .await
        .context("loading the Kubernetes configuration")?;
    let version = client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API server")?;
    tracing::info!(version = %version.git_version, "connected to the API server");

    let targets = MetricsTargets::new(args.node_metrics.clone());
    let catalog = if args.nodes.is_empty() {
        let set = NodeSet {
            statefulset: args.node_statefulset.clone(),
            service: args.node_service.clone(),
            namespace: args.node_namespace.clone(),
            grpc_port: args.node_grpc_port,
            metrics_port: args.node_metrics_port,
        };
        let replicas = set.replicas(client.clone()).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "node StatefulSet not readable yet; assuming one node");
            1
        });
        let catalog = CatalogClient::new(&set.addrs(replicas))?;
        let discovered_metrics = args.node_metrics.is_empty().then(|| targets.clone());
        if let Some(t) = &discovered_metrics {
            t.set(set.metrics_addrs(replicas));
        }
        tokio::spawn(refresh_nodes(
            set,
            client.clone(),
            catalog.clone(),
            discovered_metrics,
        ));
        catalog
    } else {
        CatalogClient::new(&args.nodes)?
    };
    tracing::info!(
        nodes = ?catalog.addrs(),
        metrics = ?targets.get(),
        replication_factor = args.replication_factor,
        "runnel nodes"
    );
    let sample_interval = Duration::from_secs(args.load_sample_seconds);
    let load = Arc::new(Mutex::new(LoadTracker::new(args.load_history_seconds)));
    tokio::spawn(node_metrics::sample_forever(
        targets,
        load.clone(),
        sample_interval,
    ));

    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let cluster = ClusterReconciler::new(
        client.clone(),
        catalog.clone(),
        metrics.clone(),
        load.clone(),
        identity.clone(),
        cluster_config(&args)?,
    );
    let ctx = Arc::new(
        Context::new(client.clone(), catalog, metrics.clone(), identity.clone())
            .with_load(load, sample_interval)
            .with_zones(cluster.zones()),
    );
    metrics.set_ready(true);

    if !args.leader_election {
        metrics.leader.set(1);
        run_controllers(ctx, cluster, args.namespace).await;
        return Ok(());
    }

    let timing = LeaseTiming::from_duration(Duration::from_secs(args.lease_duration_seconds));
    let leases: Api<Lease> = Api::namespaced(client, &args.lease_namespace);
    let mut elector = Elector::new(leases, &args.lease_name, &identity, timing);
    tracing::info!(lease = %args.lease_name, identity = %elector.identity(), "waiting for leadership");
    tokio::select! {
        acquired = elector.acquire() => acquired?,
        () = shutdown_signal() => return Ok(()),
    }
    metrics.leader.set(1);
    tracing::info!("leading: starting the controllers");
    tokio::select! {
        () = run_controllers(ctx, cluster, args.namespace) => {
            metrics.leader.set(0);
            if let Err(e) = elector.release().await {
                tracing::warn!(error = %e, "could not release the lease");
            }
            Ok(())
        }
        lost = elector.hold() => {
            metrics.leader.set(0);
            Err(anyhow::Error::new(lost).context("stopping: leadership lost"))
        }
    }
}

/// The Stream and DeliveryStream controllers and the cluster reconciler, until the
/// controllers stop (on shutdown).
async fn run_controllers(ctx: Arc<Context>, cluster: ClusterReconciler, namespace: Option<String>) {
    tokio::select! {
        () = controller::run(ctx, namespace) => {}
        () = cluster.run() => {}
    }
}

fn cluster_config(args: &Args) -> anyhow::Result<ClusterConfig> {
    if args.min_nodes > args.max_nodes {
        anyhow::bail!(
            "--min-nodes {} exceeds --max-nodes {}",
            args.min_nodes,
            args.max_nodes
        );
    }
    let node_scaling = args.node_scaling.then(|| NodeScalingConfig {
        min_nodes: args.min_nodes as usize,
        max_nodes: args.max_nodes as usize,
        max_replicas_per_node: args.max_replicas_per_node as usize,
        ..NodeScalingConfig::default()
    });
    Ok(ClusterConfig {
        interval: Duration::from_secs(args.placement_interval_seconds),
        placement: PlacementConfig {
            replication_factor: args.replication_factor as usize,
            ..PlacementConfig::default()
        },
        max_moves_in_flight: args.max_moves_in_flight,
        node_capacity: args.node_capacity_bytes_per_sec as f64,
        statefulset: NodeStatefulSet {
            name: args.node_statefulset.clone(),
            namespace: args.node_namespace.clone(),
        },
        node_scaling,
    })
}

/// Re-reads the StatefulSet's replica count and updates the node lists.
async fn refresh_nodes(
    set: NodeSet,
    client: Client,
    catalog: CatalogClient,
    metrics: Option<MetricsTargets>,
) {
    loop {
        tokio::time::sleep(DISCOVERY_INTERVAL).await;
        match set.replicas(client.clone()).await {
            Ok(replicas) => {
                let addrs = set.addrs(replicas);
                if addrs != catalog.addrs() {
                    tracing::info!(nodes = ?addrs, "node set changed");
                    if let Err(e) = catalog.set_nodes(&addrs) {
                        tracing::warn!(error = %e, "invalid node address");
                    }
                }
                if let Some(m) = &metrics {
                    m.set(set.metrics_addrs(replicas));
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the node StatefulSet failed"),
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::SignalKind;
        use tokio::signal::unix::signal;
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "runnel-operator".to_string())
}
