//! The Raft network of a standalone node: its groups have no peers, so any RPC is a bug and
//! answers Unreachable. The multi-node transport (tonic) replaces it in cluster mode.

use std::future::Future;
use std::marker::PhantomData;

use openraft::AnyError;
use openraft::OptionalSend;
use openraft::RaftNetworkFactory;
use openraft::RaftTypeConfig;
use openraft::error::RPCError;
use openraft::error::ReplicationClosed;
use openraft::error::StreamingError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::VoteOf;

pub struct NoPeers<C>(PhantomData<C>);

impl<C> Default for NoPeers<C> {
    fn default() -> Self {
        NoPeers(PhantomData)
    }
}

fn unreachable<C: RaftTypeConfig>() -> Unreachable<C> {
    Unreachable::new(&AnyError::error("standalone node has no peers"))
}

impl<C: RaftTypeConfig> RaftNetworkFactory<C> for NoPeers<C> {
    type Network = NoPeers<C>;

    async fn new_client(&mut self, _target: C::NodeId, _node: &C::Node) -> Self::Network {
        NoPeers(PhantomData)
    }
}

impl<C: RaftTypeConfig> RaftNetworkV2<C> for NoPeers<C> {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(unreachable::<C>()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<C>,
        _option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(unreachable::<C>()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<C>,
        _snapshot: SnapshotOf<C, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        Err(StreamingError::Unreachable(unreachable::<C>()))
    }
}
