//! Catalog proposals from any node: applied by the catalog leader, forwarded to it when this
//! node does not lead.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::ClientWriteError;
use openraft::error::RaftError;
use runnel_proto::v1 as pb;

use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::raft::group::CatalogRaftHandle;
use crate::raft::transport::PeerPool;
use crate::shard::router::MAX_HOPS;
use crate::shard::router::NOT_APPENDED;
use crate::shard::router::retry;
use crate::shard::router::unanswered;

const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("no catalog leader reachable: {0}")]
    NoLeader(String),
    #[error("catalog proposal failed: {0}")]
    Failed(String),
}

#[derive(Clone)]
pub struct CatalogClient {
    raft: CatalogRaftHandle,
    peers: Option<Arc<PeerPool>>,
}

type Attempt = crate::shard::router::Attempt<(CatalogReply, u64), ProposeError>;

impl CatalogClient {
    pub fn new(raft: CatalogRaftHandle, peers: Option<Arc<PeerPool>>) -> CatalogClient {
        CatalogClient { raft, peers }
    }

    pub fn raft(&self) -> &CatalogRaftHandle {
        &self.raft
    }

    /// True in cluster mode (the node has peers); false for a standalone node.
    pub fn is_cluster(&self) -> bool {
        self.peers.is_some()
    }

    /// Applies `cmd` through the catalog leader; returns once this node's replica has applied
    /// it too (so a read right after sees it), with the reply and the command's log index.
    pub async fn propose(&self, cmd: CatalogCommand, hops: u32) -> Result<(CatalogReply, u64), ProposeError> {
        let unanswered = || ProposeError::Failed(unanswered("catalog command"));
        let (reply, index) = retry(|| self.propose_once(cmd.clone(), hops), unanswered).await?;
        self.raft
            .wait(Some(DEADLINE))
            .applied_index_at_least(Some(index), "catalog command applied here")
            .await
            .map_err(|e| ProposeError::Failed(e.to_string()))?;
        Ok((reply, index))
    }

    async fn propose_once(&self, cmd: CatalogCommand, hops: u32) -> Attempt {
        let leader = match self.raft.client_write(cmd.clone()).await {
            Ok(resp) => return Attempt::Done(Ok((resp.data, resp.log_id.index))),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => f.leader_id.zip(f.leader_node),
            Err(e) => return Attempt::Done(Err(ProposeError::Failed(e.to_string()))),
        };
        let (Some((leader, node)), Some(pool)) = (leader, &self.peers) else {
            return Attempt::Retry(ProposeError::NoLeader("election in progress".into()));
        };
        let addr = pool.address(leader, &node.addr);
        if hops >= MAX_HOPS {
            return Attempt::Retry(ProposeError::NoLeader(format!(
                "still forwarding after {hops} hops"
            )));
        }
        let command = match serde_json::to_vec(&cmd) {
            Ok(c) => c,
            Err(e) => return Attempt::Done(Err(ProposeError::Failed(e.to_string()))),
        };
        let mut client = match pool.client(&addr) {
            Ok(c) => c,
            Err(e) => return Attempt::Done(Err(ProposeError::Failed(e))),
        };
        match client
            .propose_catalog(pb::ProposeCatalogRequest {
                command,
                hops: hops + 1,
            })
            .await
        {
            Ok(resp) => {
                let resp = resp.into_inner();
                let reply =
                    serde_json::from_slice(&resp.reply).map_err(|e| ProposeError::Failed(e.to_string()));
                Attempt::Done(reply.map(|r| (r, resp.log_index)))
            }
            Err(status) => {
                let e = ProposeError::NoLeader(format!("{addr}: {}", status.message()));
                let not_applied = status.metadata().contains_key(NOT_APPENDED)
                    || (status.code() == tonic::Code::Unavailable && status.message().contains("connect"));
                if not_applied {
                    Attempt::Retry(e)
                } else {
                    Attempt::Done(Err(e))
                }
            }
        }
    }
}
