//! A running node: opens the data directory, starts the catalog and shard groups and serves
//! the APIs and metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use runnel_log::LogConfig;
use runnel_proto::v1::admin_server::AdminServer;
use runnel_proto::v1::streams_server::StreamsServer;
use tokio::net::TcpListener;

use crate::grpc;
use crate::kinesis::KinesisApi;
use crate::metrics::Metrics;
use crate::raft::FsyncPolicy;
use crate::raft::GroupCommit;
use crate::raft::catalog_sm::CatalogView;
use crate::raft::group::GroupEnv;
use crate::raft::group::start_catalog_group;
use crate::service::ServiceConfig;
use crate::service::StreamService;
use crate::shard::ShardHost;

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
}

/// Everything a standalone node needs to know.
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
}

/// A node whose listeners are bound; `run` serves until shutdown.
pub struct Node {
    pub service: StreamService,
    host: Arc<ShardHost>,
    view: CatalogView,
    grpc: TcpListener,
    kinesis: TcpListener,
    kinesis_api: KinesisApi,
    metrics_listener: TcpListener,
    metrics: Metrics,
    pub grpc_addr: SocketAddr,
    pub kinesis_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { what, addr, source })
}

impl Node {
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let dir_err = |source| NodeError::DataDir {
            dir: config.data_dir.clone(),
            source,
        };
        std::fs::create_dir_all(config.data_dir.join("shards")).map_err(dir_err)?;
        let grpc = bind("gRPC", config.grpc_addr).await?;
        let metrics_listener = bind("metrics", config.metrics_addr).await?;
        let kinesis = bind("Kinesis", config.kinesis_addr).await?;
        let kinesis_addr = kinesis
            .local_addr()
            .map_err(|e| NodeError::Start(e.to_string()))?;
        let grpc_addr = grpc.local_addr().map_err(|e| NodeError::Start(e.to_string()))?;
        let metrics_addr = metrics_listener
            .local_addr()
            .map_err(|e| NodeError::Start(e.to_string()))?;

        let metrics = Metrics::new().map_err(|e| NodeError::Start(e.to_string()))?;
        let commit = GroupCommit::start(config.fsync, metrics.storage.clone())
            .map_err(|e| NodeError::Start(e.to_string()))?;
        let env = GroupEnv {
            node_id: config.node_id,
            node_addr: grpc_addr.to_string(),
            commit,
            log_config: config.log.clone(),
        };
        let catalog = start_catalog_group(&config.data_dir.join("catalog"), &env)
            .await
            .map_err(|e| NodeError::Start(format!("catalog: {e}")))?;
        let host = Arc::new(ShardHost::new(env, config.data_dir.join("shards")));
        let service = StreamService::new(
            config.service.clone(),
            catalog.raft,
            catalog.view.clone(),
            host.clone(),
            metrics.clone(),
        );
        service
            .resume_transitions()
            .await
            .map_err(|e| NodeError::Start(format!("shards: {e}")))?;
        let kinesis_api = KinesisApi::new(service.clone(), &config.data_dir).map_err(dir_err)?;
        Ok(Node {
            service,
            host,
            view: catalog.view,
            grpc,
            kinesis,
            kinesis_api,
            metrics_listener,
            metrics,
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
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let streams = StreamsServer::new(grpc::StreamsApi {
            service: self.service.clone(),
        })
        .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(grpc::MAX_MESSAGE_BYTES);
        let admin = AdminServer::new(grpc::AdminApi {
            service: self.service.clone(),
        });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.grpc);
        let kinesis_task = tokio::spawn(crate::kinesis::serve(self.kinesis, self.kinesis_api));
        let metrics_task = tokio::spawn(crate::metrics::serve(self.metrics_listener, self.metrics.clone()));
        let refresher = tokio::spawn(crate::stats::refresh_loop(
            self.host.clone(),
            self.metrics.clone(),
        ));
        let retention = tokio::spawn(crate::retention::run(self.host.clone(), self.view.clone()));
        let served = tonic::transport::Server::builder()
            .add_service(streams)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        kinesis_task.abort();
        metrics_task.abort();
        refresher.abort();
        retention.abort();
        self.host.shutdown().await;
        served.map_err(|e| NodeError::Start(format!("gRPC server: {e}")))
    }
}
