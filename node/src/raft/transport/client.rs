//! openraft's network for one group of a cluster node, over the shared [`PeerPool`].

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use openraft::AnyError;
use openraft::BasicNode;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftTypeConfig;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;

use super::message;
use super::message::RaftRequest;
use super::message::RaftResponse;
use super::peer::PeerPool;

pub struct ClusterNetwork<C> {
    group: u64,
    pool: Arc<PeerPool>,
    _p: PhantomData<C>,
}

impl<C> ClusterNetwork<C> {
    pub fn new(group: u64, pool: Arc<PeerPool>) -> ClusterNetwork<C> {
        ClusterNetwork {
            group,
            pool,
            _p: PhantomData,
        }
    }
}

pub struct ClusterClient<C> {
    group: u64,
    addr: String,
    pool: Arc<PeerPool>,
    _p: PhantomData<C>,
}

impl<C> RaftNetworkFactory<C> for ClusterNetwork<C>
where
    C: RaftTypeConfig<Node = BasicNode, NodeId = u64>,
{
    type Network = ClusterClient<C>;

    async fn new_client(&mut self, target: C::NodeId, node: &BasicNode) -> Self::Network {
        ClusterClient {
            group: self.group,
            addr: self.pool.address(target, &node.addr),
            pool: self.pool.clone(),
            _p: PhantomData,
        }
    }
}

enum CallError {
    Unreachable(String),
    Network(String),
}

impl<C: RaftTypeConfig> ClusterClient<C> {
    async fn call(&self, req: RaftRequest<C>, option: &RPCOption) -> Result<RaftResponse<C>, CallError> {
        let payload = message::encode(&req).map_err(CallError::Network)?;
        let call = self.pool.call(&self.addr, self.group, Bytes::from(payload));
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(CallError::Unreachable(e)),
            Err(_) => return Err(CallError::Network(format!("{}: timed out", self.addr))),
        };
        if !reply.error.is_empty() {
            return Err(CallError::Unreachable(reply.error));
        }
        message::decode(&reply.payload).map_err(CallError::Network)
    }
}

fn rpc_error<C: RaftTypeConfig>(e: CallError) -> RPCError<C> {
    match e {
        CallError::Unreachable(m) => RPCError::Unreachable(Unreachable::new(&AnyError::error(m))),
        CallError::Network(m) => RPCError::Network(NetworkError::new(&AnyError::error(m))),
    }
}

fn unexpected<C: RaftTypeConfig>() -> RPCError<C> {
    RPCError::Network(NetworkError::new(&AnyError::error("unexpected response kind")))
}

impl<C> RaftNetworkV2<C> for ClusterClient<C>
where
    C: RaftTypeConfig<Node = BasicNode>,
{
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        match self
            .call(RaftRequest::Append(rpc), &option)
            .await
            .map_err(rpc_error)?
        {
            RaftResponse::Append(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        match self
            .call(RaftRequest::Vote(rpc), &option)
            .await
            .map_err(rpc_error)?
        {
            RaftResponse::Vote(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<C>,
        option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        match self
            .call(RaftRequest::PreVote(rpc), &option)
            .await
            .map_err(rpc_error)?
        {
            RaftResponse::Vote(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let req = RaftRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        match self.call(req, &option).await {
            Ok(RaftResponse::Snapshot(r)) => Ok(r),
            Ok(_) => Err(StreamingError::Network(NetworkError::new(&AnyError::error(
                "unexpected response kind",
            )))),
            Err(CallError::Unreachable(m)) => {
                Err(StreamingError::Unreachable(Unreachable::new(&AnyError::error(m))))
            }
            Err(CallError::Network(m)) => {
                Err(StreamingError::Network(NetworkError::new(&AnyError::error(m))))
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<C>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<C>, RPCError<C>> {
        match self
            .call(RaftRequest::TransferLeader(req), &option)
            .await
            .map_err(rpc_error)?
        {
            RaftResponse::TransferLeader(r) => Ok(r),
            _ => Err(unexpected()),
        }
    }
}
