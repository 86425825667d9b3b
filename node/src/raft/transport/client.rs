//! openraft's network for one group of a cluster node, over the shared [`PeerPool`].

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
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
use openraft::raft::StreamAppendResult;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;
use runnel_log::LogReader;

use super::message;
use super::message::RaftRequest;
use super::message::RaftResponse;
use super::peer::PeerPool;
use crate::raft::catch_up::Chunk;
use crate::raft::catch_up::WireEntry;

pub struct ClusterNetwork<C> {
    group: u64,
    pool: Arc<PeerPool>,
    log: Option<LogReader>,
    _p: PhantomData<C>,
}

impl<C> ClusterNetwork<C> {
    pub fn new(group: u64, pool: Arc<PeerPool>) -> ClusterNetwork<C> {
        ClusterNetwork {
            group,
            pool,
            log: None,
            _p: PhantomData,
        }
    }

    /// A shard group: its snapshots are sent with the log they describe
    /// ([`crate::raft::catch_up`]).
    pub fn with_log(mut self, log: LogReader) -> ClusterNetwork<C> {
        self.log = Some(log);
        self
    }
}

pub struct ClusterClient<C> {
    pub(super) group: u64,
    pub(super) addr: String,
    pub(super) pool: Arc<PeerPool>,
    log: Option<LogReader>,
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
            log: self.log.clone(),
            _p: PhantomData,
        }
    }
}

pub(super) enum CallError {
    Unreachable(String),
    Network(String),
}

impl<C: RaftTypeConfig> ClusterClient<C> {
    pub(super) async fn call(
        &self,
        req: RaftRequest<C>,
        option: &RPCOption,
    ) -> Result<RaftResponse<C>, CallError> {
        self.call_within(req, option.hard_ttl()).await
    }

    async fn call_within(&self, req: RaftRequest<C>, ttl: Duration) -> Result<RaftResponse<C>, CallError> {
        let payload = message::encode(&req).map_err(CallError::Network)?;
        let ttl = ttl + transfer_allowance(payload.len());
        let call = self.pool.call(&self.addr, self.group, Bytes::from(payload));
        let reply = match tokio::time::timeout(ttl, call).await {
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

/// openraft gives an AppendEntries the heartbeat interval (250 ms) to answer, whatever it
/// carries; a batch of up to 16 MiB also gets the time to move and persist it at this rate, so
/// a follower catching up is not timed out on every large batch.
const SLOWEST_TRANSFER_BYTES_PER_SEC: f64 = 16.0 * 1024.0 * 1024.0;

pub(super) fn transfer_allowance(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / SLOWEST_TRANSFER_BYTES_PER_SEC)
}

/// Bytes of log entries per snapshot message, and how long one may take.
const CHUNK_BYTES: usize = 4 << 20;
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

impl<C> ClusterClient<C>
where
    C: RaftTypeConfig<Node = BasicNode>,
{
    /// Sends a shard snapshot: every entry this replica keeps up to the snapshot's last log id,
    /// in chunks the receiver stages, then the snapshot itself, which installs them.
    async fn send_with_log(
        &self,
        log: &LogReader,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Vec<u8>>,
        option: &RPCOption,
    ) -> Result<RaftResponse<C>, CallError> {
        let end = snapshot.meta.last_log_id.as_ref().map_or(0, |l| l.index() + 1);
        let transfer = rand::random::<u64>();
        let mut next = log.first_index().filter(|&f| f < end);
        let sent_any = next.is_some();
        let mut first = true;
        loop {
            let entries: Vec<WireEntry> = match next {
                Some(from) => log
                    .read(from, (end - from) as usize, CHUNK_BYTES)
                    .map_err(|e| CallError::Network(format!("read the log for a snapshot: {e}")))?
                    .into_iter()
                    .take_while(|e| e.index < end)
                    .map(WireEntry::from)
                    .collect(),
                None => Vec::new(),
            };
            let last = entries.last().map(|e| e.index);
            if sent_any && last.is_none() {
                return Err(CallError::Network(format!(
                    "the log no longer holds index {next:?} of the snapshot"
                )));
            }
            let chunk = Chunk {
                transfer,
                first,
                entries,
            };
            match self
                .call_within(RaftRequest::SnapshotChunk(chunk), CHUNK_TIMEOUT)
                .await?
            {
                RaftResponse::Staged => {}
                _ => return Err(CallError::Network("unexpected response kind".into())),
            }
            first = false;
            next = last.map(|l| l + 1).filter(|&n| n < end);
            if next.is_none() {
                break;
            }
        }
        let req = RaftRequest::SnapshotEnd {
            transfer,
            sent_any,
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        self.call_within(req, option.hard_ttl().max(CHUNK_TIMEOUT)).await
    }
}

pub(super) fn rpc_error<C: RaftTypeConfig>(e: CallError) -> RPCError<C> {
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

    /// Pipelined ([`super::append_stream`]), unless the peer is of a build without pipelines.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<C>, RPCError<C>>>, RPCError<C>>>
    where
        S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
    {
        if !self.pool.pipelines(&self.addr) {
            return openraft::network::stream_append_sequential(self, input, option);
        }
        let stream = super::append_stream::pipelined(self, input, option);
        Box::pin(async move { Ok(stream) })
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
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let result = match self.log.clone() {
            Some(log) => {
                tokio::select! {
                    r = self.send_with_log(&log, vote, snapshot, &option) => r,
                    closed = cancel => return Err(StreamingError::Closed(closed)),
                }
            }
            None => {
                let req = RaftRequest::Snapshot {
                    vote,
                    meta: snapshot.meta,
                    data: snapshot.snapshot,
                };
                self.call(req, &option).await
            }
        };
        match result {
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
