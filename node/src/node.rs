//! A running node: opens the data directory, starts the catalog and shard groups and serves
//! the APIs and metrics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use runnel_log::LogConfig;
use runnel_proto::v1::admin_server::AdminServer;
use runnel_proto::v1::leases_server::LeasesServer;
use runnel_proto::v1::raft_server::RaftServer;
use runnel_proto::v1::streams_server::StreamsServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;

use crate::capacity::on_demand::OnDemandPolicy;
use crate::capacity::shard_admission::ShardAdmission;
use crate::catalog::CatalogCommand;
use crate::cluster::CatalogClient;
use crate::cluster::RaftApi;
use crate::encryption::BatchCipher;
use crate::encryption::KeyringError;
use crate::encryption::KeyringSource;
use crate::encryption::StreamKeys;
use crate::grpc;
use crate::kinesis::KinesisApi;
use crate::kinesis::tls;
use crate::kinesis::tls::TlsError;
use crate::kinesis::tls::TlsFiles;
use crate::metrics::Metrics;
use crate::raft::FsyncPolicy;
use crate::raft::GroupCommit;
use crate::raft::catalog_sm::CatalogView;
use crate::raft::group::CatalogRaftHandle;
use crate::raft::group::GroupEnv;
use crate::raft::group::start_catalog_group;
use crate::raft::transport::PEER_MESSAGE_BYTES;
use crate::raft::transport::PeerPool;
use crate::service::ServiceConfig;
use crate::service::StreamService;
use crate::shard::NodeDirectory;
use crate::shard::ShardHost;
use crate::shard::ShardRouter;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot use data directory {dir}: {source}")]
    DataDir { dir: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start: {0}")]
    Start(String),
    #[error("Kinesis API TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("encryption keyring: {0}")]
    Keyring(#[from] KeyringError),
}

/// Everything a node needs to know.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub kinesis_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub fsync: FsyncPolicy,
    pub log: LogConfig,
    pub service: ServiceConfig,
    /// Serve the Kinesis API over TLS with this certificate and key (cleartext when `None`).
    pub kinesis_tls: Option<TlsFiles>,
    /// The initial members of a cluster (node id → gRPC address), this node included; empty
    /// for a standalone node and for a node that joins a running cluster.
    pub peers: BTreeMap<u64, String>,
    /// Join the running cluster of this member (its gRPC address) instead of forming one.
    pub join: Option<String>,
    /// Quiesce idle shard groups (no per-group heartbeats; node liveness instead).
    pub quiesce: bool,
    /// The gRPC address other nodes reach this one at (default: `peers`' entry, else the
    /// bound gRPC address).
    pub advertise: Option<String>,
    /// When retention deletes expired segments.
    pub retention: crate::retention::RetentionSchedule,
    /// How often the periodic gauges (Raft state per group, storage per stream) refresh.
    pub stats_every: std::time::Duration,
    /// The master keys of server-side encryption (the same on every node of a cluster).
    pub keyring: KeyringSource,
}

/// Voters of the catalog group at most; further nodes follow it as learners.
pub const MAX_CATALOG_VOTERS: usize = 5;

/// A running node; `run` serves until shutdown.
pub struct Node {
    pub service: StreamService,
    host: Arc<ShardHost>,
    view: CatalogView,
    tasks: Vec<JoinHandle<()>>,
    stop_server: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    pub grpc_addr: SocketAddr,
    pub kinesis_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { what, addr, source })
}

fn start_err(what: &'static str) -> impl Fn(String) -> NodeError {
    move |e| NodeError::Start(format!("{what}: {e}"))
}

impl Node {
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let dir_err = |source| NodeError::DataDir {
            dir: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(config.data_dir.join("shards")).map_err(dir_err)?;
        let kinesis_tls = config.kinesis_tls.as_ref().map(tls::server_config).transpose()?;
        let keyring = config.keyring.load()?;
        let grpc = bind("gRPC", config.grpc_addr).await?;
        let metrics_listener = bind("metrics", config.metrics_addr).await?;
        let kinesis = bind("Kinesis", config.kinesis_addr).await?;
        let kinesis_addr = kinesis
            .local_addr()
            .map_err(|e| start_err("Kinesis")(e.to_string()))?;
        let grpc_addr = grpc.local_addr().map_err(|e| start_err("gRPC")(e.to_string()))?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|e| start_err("metrics")(e.to_string()))?;
        let cluster = !config.peers.is_empty() || config.join.is_some();
        let advertised = config
            .peers
            .get(&config.node_id)
            .cloned()
            .or_else(|| config.advertise.clone())
            .unwrap_or_else(|| grpc_addr.to_string());

        let metrics = Metrics::new().map_err(|e| start_err("metrics")(e.to_string()))?;
        let commit = GroupCommit::start(config.fsync, metrics.storage.clone())
            .map_err(|e| start_err("group commit")(e.to_string()))?;
        let peers = cluster.then(|| PeerPool::new(config.peers.clone(), Some(metrics.transport.clone())));
        let env = GroupEnv {
            node_id: config.node_id,
            node_addr: advertised.clone(),
            commit,
            log_config: config.log.clone(),
            peers: peers.clone(),
        };
        let members: BTreeMap<u64, BasicNode> = config
            .peers
            .iter()
            .take(MAX_CATALOG_VOTERS)
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        let catalog = start_catalog_group(&config.data_dir.join("catalog"), &env, members)
            .await
            .map_err(|e| start_err("catalog")(e.to_string()))?;
        let directory = node_directory(
            catalog.raft.clone(),
            config.node_id,
            advertised.clone(),
            peers.clone(),
        );
        let host = Arc::new(ShardHost::new(env, config.data_dir.join("shards"), directory));
        // The per-shard budgets of the shards this node leads, applied to every node's requests.
        // A new leader's grace before granting subscription leases it has not seen renewed:
        // standalone, every holder ended with the process that granted its lease.
        let lease_grace = if cluster {
            crate::capacity::subscription_leases::LEADER_GRACE
        } else {
            std::time::Duration::ZERO
        };
        let admission = Arc::new(ShardAdmission::new(
            config.service.shard_limits,
            config.service.api_limits.clone(),
            lease_grace,
        ));
        let view = catalog.view.clone();
        let stream_keys: StreamKeys = Arc::new(move |name: &str| {
            view.read(|c| {
                c.stream(name)
                    .and_then(|s| s.encryption.as_ref())
                    .map(|e| e.key_id.clone())
            })
        });
        let cipher = Arc::new(BatchCipher::new(keyring, stream_keys));
        let router = ShardRouter::new(host.clone(), peers.clone(), admission, cipher);
        let catalog_client = CatalogClient::new(catalog.raft.clone(), peers.clone());
        let barrier = catalog_client.clone();
        // Client APIs answer Unavailable until the node has caught up with the catalog.
        let ready = Arc::new(AtomicBool::new(false));
        let service = StreamService::new(
            config.service.clone(),
            catalog_client.clone(),
            catalog.view.clone(),
            router.clone(),
            metrics.clone(),
        );

        // Serve right away: in a cluster the other nodes' Raft traffic must get through before
        // this node can learn the catalog.
        let liveness =
            cluster.then(|| crate::cluster::liveness::Liveness::new(config.node_id, config.quiesce));
        let raft_api = RaftApi {
            liveness: liveness.clone(),
            inbound_bytes: metrics.transport.inbound_bytes.with_label_values(&[] as &[&str]),
            catalog: catalog_client.clone(),
            view: catalog.view.clone(),
            router,
        };
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(InterceptedService::new(
                    StreamsServer::new(grpc::StreamsApi {
                        service: service.clone(),
                    })
                    .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES),
                    until_ready(ready.clone()),
                ))
                .add_service(InterceptedService::new(
                    AdminServer::new(grpc::AdminApi {
                        service: service.clone(),
                    }),
                    until_ready(ready.clone()),
                ))
                .add_service(InterceptedService::new(
                    LeasesServer::new(grpc::LeasesApi {
                        service: service.clone(),
                    }),
                    until_ready(ready.clone()),
                ))
                .add_service(
                    RaftServer::new(raft_api)
                        .max_decoding_message_size(PEER_MESSAGE_BYTES)
                        .max_encoding_message_size(PEER_MESSAGE_BYTES),
                )
                .serve_with_incoming_shutdown(no_delay(grpc), async {
                    let _ = stopped.await;
                }),
        );
        let quiesced_gauge = metrics
            .transport
            .quiesced_groups
            .with_label_values(&[] as &[&str]);
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(metrics_listener, metrics.clone()).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        })];
        let m = service_metrics(&service);
        tasks.push(tokio::spawn(crate::stats::refresh_loop(
            host.clone(),
            catalog.view.clone(),
            m,
            service.hot_keys(),
            config.stats_every,
        )));
        tasks.push(tokio::spawn(crate::retention::run(
            host.clone(),
            catalog.view.clone(),
            config.retention,
        )));
        if cluster {
            if let Some(seed) = config.join.clone() {
                tasks.push(tokio::spawn(join_cluster(
                    seed,
                    config.node_id,
                    advertised.clone(),
                )));
            }
            wait_for_catalog_leader(&catalog.raft).await;
            // A barrier through the leader: once it is applied here, this replica holds every
            // stream that existed before (a restarted node does not answer "not found" for
            // streams it has not heard of yet).
            catch_up_with_catalog(&barrier).await;
            tasks.push(tokio::spawn(follow_catalog(host.clone(), catalog.view.clone())));
            tasks.push(tokio::spawn(crate::cluster::membership::drive_replica_changes(
                host.clone(),
                catalog.view.clone(),
                catalog_client.clone(),
            )));
            tasks.push(tokio::spawn(crate::cluster::leadership::rebalance_leaders(
                host.clone(),
                catalog.view.clone(),
            )));
            if let (Some(live), Some(pool)) = (&liveness, &peers) {
                tasks.push(tokio::spawn(live.clone().ping_loop(host.clone(), pool.clone())));
                if config.quiesce {
                    tasks.push(tokio::spawn(crate::cluster::quiesce::driver::run(
                        host.clone(),
                        live.clone(),
                        quiesced_gauge.clone(),
                    )));
                }
            }
        }
        ready.store(true, Ordering::Release);
        service
            .resume_transitions()
            .await
            .map_err(|e| start_err("shards")(e.to_string()))?;
        tasks.push(tokio::spawn(service.clone().expire_closed_shards_loop()));
        let on_demand = OnDemandPolicy {
            splits: service.config().on_demand_splits,
            merges: service.config().on_demand_merges,
        };
        if !on_demand.is_off() {
            tasks.push(tokio::spawn(service.clone().reshard_on_demand(on_demand)));
        }
        let kinesis_api = KinesisApi::new(service.clone(), &config.data_dir).map_err(dir_err)?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::kinesis::serve(kinesis, kinesis_api, kinesis_tls).await {
                tracing::error!(error = %e, "Kinesis API stopped");
            }
        }));
        Ok(Node {
            service,
            host,
            view: catalog.view,
            tasks,
            stop_server: Some(stop_server),
            server,
            grpc_addr,
            kinesis_addr,
            metrics_addr,
        })
    }

    /// The applied catalog.
    pub fn catalog(&self) -> CatalogView {
        self.view.clone()
    }

    /// The shard replicas of this node.
    pub fn host(&self) -> Arc<ShardHost> {
        self.host.clone()
    }

    /// Serves until `shutdown` resolves, then stops the groups.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        shutdown.await;
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        for t in &self.tasks {
            t.abort();
        }
        self.host.shutdown().await;
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NodeError::Start(format!("gRPC server: {e}"))),
            Err(e) => Err(NodeError::Start(format!("gRPC server task: {e}"))),
        }
    }
}

/// Accepted connections with Nagle's algorithm off: a small response (one PutRecord's
/// acknowledgement, a Raft vote) must not wait for the peer's delayed ACK.
fn no_delay(listener: TcpListener) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| {
        let conn = conn?;
        conn.set_nodelay(true)?;
        Ok(conn)
    })
}

/// Rejects client calls with Unavailable (which clients retry) until the node is ready.
fn until_ready(ready: Arc<AtomicBool>) -> impl tonic::service::Interceptor + Clone {
    move |req: tonic::Request<()>| {
        if ready.load(Ordering::Acquire) {
            Ok(req)
        } else {
            Err(tonic::Status::unavailable(
                "the node is starting: it has not caught up with the catalog yet",
            ))
        }
    }
}

fn service_metrics(service: &StreamService) -> Metrics {
    service.metrics().clone()
}

/// Node id → address of every catalog member (the cluster's nodes), as this node reaches them:
/// its own `--peers` entries win over the addresses in the catalog's membership.
fn node_directory(
    catalog: CatalogRaftHandle,
    me: u64,
    my_addr: String,
    peers: Option<Arc<PeerPool>>,
) -> NodeDirectory {
    Arc::new(move || {
        let m = catalog.metrics().borrow_watched().clone();
        let mut nodes: BTreeMap<u64, String> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        nodes.entry(me).or_insert_with(|| my_addr.clone());
        if let Some(pool) = &peers {
            nodes.extend(pool.routes().iter().map(|(id, addr)| (*id, addr.clone())));
        }
        nodes
    })
}

/// Asks a member of a running cluster to add this node, until one accepts (the member forwards
/// the request to the catalog leader, which makes this node a learner and then, while the
/// catalog has fewer than five voters, a voter).
async fn join_cluster(seed: String, id: u64, advertised: String) {
    use runnel_proto::v1::admin_client::AdminClient;
    let seed = if seed.contains("://") {
        seed
    } else {
        format!("http://{seed}")
    };
    loop {
        let request = runnel_proto::v1::AddNodeRequest {
            node_id: id,
            address: advertised.clone(),
        };
        match AdminClient::connect(seed.clone()).await {
            Ok(mut admin) => match admin.add_node(request).await {
                Ok(_) => {
                    tracing::info!(seed = %seed, "joined the cluster");
                    return;
                }
                Err(status) => {
                    tracing::warn!(seed = %seed, error = %status.message(), "join refused; retrying")
                }
            },
            Err(e) => tracing::warn!(seed = %seed, error = %e, "cannot reach the cluster to join; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn wait_for_catalog_leader(catalog: &CatalogRaftHandle) {
    let mut logged = false;
    loop {
        let leader = catalog.metrics().borrow_watched().current_leader;
        if leader.is_some() {
            tracing::info!(leader = ?leader, "catalog has a leader");
            return;
        }
        if !logged {
            tracing::info!("waiting for the catalog group to elect a leader (are the other peers up?)");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Proposes a no-op through the catalog leader until it succeeds. A node (re)started while cut
/// off from the leader keeps trying until the partition heals instead of giving up.
async fn catch_up_with_catalog(catalog: &CatalogClient) {
    let mut logged = false;
    loop {
        match catalog.propose(CatalogCommand::Noop, 0).await {
            Ok(_) => return,
            Err(e) if !logged => {
                tracing::warn!(error = %e, "cannot reach the catalog leader yet; retrying until it answers");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Keeps this node's replicas in step with the catalog as it changes (streams created or
/// deleted through any node).
async fn follow_catalog(host: Arc<ShardHost>, view: CatalogView) {
    let mut changes = view.changes();
    loop {
        let catalog = view.read(|c| c.clone());
        if let Err(e) = host.reconcile(&catalog).await {
            tracing::warn!(error = %e, "cannot bring shard replicas in line with the catalog");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}
