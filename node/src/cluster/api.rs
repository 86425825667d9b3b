//! `runnel.v1.Raft`: Raft traffic of every group hosted here, and requests forwarded to the
//! leaders this node holds.

use futures::future::join_all;
use runnel_proto::v1 as pb;
use runnel_proto::v1::raft_server::Raft;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::catalog_client::CatalogClient;
use super::catalog_client::ProposeError;
use crate::catalog::CatalogCommand;
use crate::catalog::ShardRecord;
use crate::raft::catalog_sm::CatalogView;
use crate::raft::transport;
use crate::shard::AppendError;
use crate::shard::ReadError;
use crate::shard::ReadLimits;
use crate::shard::ShardRouter;
use crate::shard::router::KEY_NOT_FOUND;
use crate::shard::router::NOT_APPENDED;
use crate::shard::router::Proposed;
use crate::shard::wire;

pub struct RaftApi {
    /// Counts the encoded Raft messages received (`runnel_replication_inbound_bytes_total`).
    pub inbound_bytes: prometheus::IntCounter,
    /// Records the other nodes' liveness pings (cluster mode).
    pub liveness: Option<std::sync::Arc<super::liveness::Liveness>>,
    pub catalog: CatalogClient,
    pub view: CatalogView,
    pub router: ShardRouter,
}

fn not_applied(message: String) -> Status {
    let mut s = Status::unavailable(message);
    s.metadata_mut()
        .insert(NOT_APPENDED, tonic::metadata::MetadataValue::from_static("1"));
    s
}

impl RaftApi {
    async fn one(&self, m: pb::RaftMessage) -> pb::RaftReply {
        let result = if m.group == 0 {
            transport::handle(self.catalog.raft(), &m.payload).await
        } else {
            match self.router.host().by_group(m.group) {
                Some(r) => {
                    r.on_raft_message();
                    transport::handle_shard(r.group(), &m.payload).await
                }
                None => Err(format!("group {} is not hosted here", m.group)),
            }
        };
        match result {
            Ok(payload) => pb::RaftReply {
                payload: payload.into(),
                error: String::new(),
            },
            Err(error) => pb::RaftReply {
                payload: Default::default(),
                error,
            },
        }
    }

    fn shard_record(&self, group: u64) -> Option<ShardRecord> {
        if let Some(r) = self.router.host().by_group(group) {
            return Some(r.shard.clone());
        }
        self.view.read(|c| {
            c.streams
                .values()
                .flat_map(|s| s.shards.iter())
                .find(|s| s.group == group)
                .cloned()
        })
    }
}

/// Opens a pipelined replication session of `group` (0: the catalog).
fn open_session(
    catalog: &CatalogClient,
    router: &ShardRouter,
    group: u64,
    session: u64,
    acks: transport::AckSink,
) -> Result<transport::AppendSession, String> {
    if group == 0 {
        return Ok(transport::append_session(catalog.raft(), session, acks, || {}));
    }
    let Some(replica) = router.host().by_group(group) else {
        return Err(format!("group {group} is not hosted here"));
    };
    let raft = replica.group().raft.clone();
    Ok(transport::append_session(&raft, session, acks, move || {
        replica.on_raft_message()
    }))
}

type AckStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::PipelineAcks, Status>> + Send>>;

#[tonic::async_trait]
impl Raft for RaftApi {
    type PipelineStream = AckStream;

    async fn pipeline(
        &self,
        request: Request<tonic::Streaming<pb::PipelineFrame>>,
    ) -> Result<Response<AckStream>, Status> {
        let frames = request.into_inner();
        let (acks, rx) = tokio::sync::mpsc::unbounded_channel();
        let (catalog, router) = (self.catalog.clone(), self.router.clone());
        let inbound = self.inbound_bytes.clone();
        tokio::spawn(transport::serve_lane(
            frames,
            acks,
            inbound,
            move |group, session, acks| open_session(&catalog, &router, group, session, acks),
        ));
        Ok(Response::new(Box::pin(transport::ack_frames(rx))))
    }

    async fn batch(
        &self,
        request: Request<pb::RaftBatch>,
    ) -> Result<Response<pb::RaftBatchResponse>, Status> {
        let messages = request.into_inner().messages;
        let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
        self.inbound_bytes.inc_by(bytes as u64);
        let replies = join_all(messages.into_iter().map(|m| self.one(m))).await;
        Ok(Response::new(pb::RaftBatchResponse { replies }))
    }

    async fn ping(&self, request: Request<pb::PingRequest>) -> Result<Response<pb::PingResponse>, Status> {
        if let Some(live) = &self.liveness {
            live.ping_received(&request.into_inner());
        }
        Ok(Response::new(pb::PingResponse {}))
    }

    async fn propose_shard(
        &self,
        request: Request<pb::ProposeShardRequest>,
    ) -> Result<Response<pb::ProposeShardResponse>, Status> {
        let r = request.into_inner();
        let Some(shard) = self.shard_record(r.group) else {
            return Err(not_applied(format!("group {} is unknown here", r.group)));
        };
        let outcome = if r.seal {
            self.router.seal(&shard, r.hops).await.map(Proposed::Closed)
        } else {
            self.router
                .append(&shard, r.batch, r.admit, r.hops)
                .await
                .map(Proposed::Records)
        };
        match outcome {
            Ok(proposed) => Ok(Response::new(wire::proposed_to_proto(proposed))),
            Err(AppendError::Closed { at, .. }) => {
                Ok(Response::new(wire::proposed_to_proto(Proposed::Closed(at))))
            }
            Err(e @ AppendError::NotLeader { .. }) => Err(not_applied(e.to_string())),
            Err(e @ AppendError::KeyNotFound { .. }) => {
                let mut status = Status::failed_precondition(e.to_string());
                status
                    .metadata_mut()
                    .insert(KEY_NOT_FOUND, tonic::metadata::MetadataValue::from_static("1"));
                Err(status)
            }
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn propose_catalog(
        &self,
        request: Request<pb::ProposeCatalogRequest>,
    ) -> Result<Response<pb::ProposeCatalogResponse>, Status> {
        let r = request.into_inner();
        let cmd: CatalogCommand =
            serde_json::from_slice(&r.command).map_err(|e| Status::invalid_argument(e.to_string()))?;
        match self.catalog.propose(cmd, r.hops).await {
            Ok((reply, log_index)) => {
                let reply = serde_json::to_vec(&reply).map_err(|e| Status::internal(e.to_string()))?;
                Ok(Response::new(pb::ProposeCatalogResponse { reply, log_index }))
            }
            Err(e @ ProposeError::NoLeader(_)) => Err(not_applied(e.to_string())),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn read_shard(
        &self,
        request: Request<pb::ReadShardRequest>,
    ) -> Result<Response<pb::ReadShardResponse>, Status> {
        let r = request.into_inner();
        let Some(shard) = self.shard_record(r.group) else {
            return Err(Status::unavailable(format!("group {} is unknown here", r.group)));
        };
        let start = wire::start_from_proto(r.start);
        let limits = ReadLimits {
            max_entries: r.limit as usize,
            max_bytes: usize::try_from(r.max_bytes).unwrap_or(usize::MAX),
        };
        let admission = wire::admission_from_proto(r.admission);
        match self.router.read(&shard, start, limits, admission, r.hops).await {
            Ok(read) => Ok(Response::new(wire::frames_to_proto(read))),
            // An answer, not a failure: the forwarding node must not retry it elsewhere.
            Err(ReadError::Throttled { .. }) => Ok(Response::new(wire::throttled_read())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn subscription_lease(
        &self,
        request: Request<pb::SubscriptionLeaseRequest>,
    ) -> Result<Response<pb::SubscriptionLeaseResponse>, Status> {
        let Some((lease, hops)) = wire::lease_from_proto(request.into_inner()) else {
            return Err(Status::invalid_argument(
                "a subscription lease request without an operation",
            ));
        };
        let Some(shard) = self.shard_record(lease.key.group) else {
            return Err(Status::unavailable(format!(
                "group {} is unknown here",
                lease.key.group
            )));
        };
        match self.router.subscription_lease(&shard, &lease, hops).await {
            Ok(answer) => Ok(Response::new(wire::lease_answer_to_proto(answer))),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }
}
