//! The receiving side: decode an openraft request for one group and hand it to that group.

use openraft::Raft;
use openraft::RaftTypeConfig;
use openraft::storage::RaftStateMachine;

use super::message;
use super::message::RaftRequest;
use super::message::RaftResponse;

/// Handles one postcard-encoded [`RaftRequest`] for `raft`, returning the encoded response.
pub async fn handle<C, SM>(raft: &Raft<C, SM>, payload: &[u8]) -> Result<Vec<u8>, String>
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C, SnapshotData = Vec<u8>>,
{
    let req: RaftRequest<C> = message::decode(payload)?;
    let resp = match req {
        RaftRequest::Append(r) => {
            RaftResponse::Append(raft.append_entries(r).await.map_err(|e| e.to_string())?)
        }
        RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await.map_err(|e| e.to_string())?),
        RaftRequest::PreVote(r) => RaftResponse::Vote(raft.pre_vote(r).await.map_err(|e| e.to_string())?),
        RaftRequest::Snapshot { vote, meta, data } => {
            let snapshot = openraft::storage::Snapshot { meta, snapshot: data };
            RaftResponse::Snapshot(
                raft.install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        RaftRequest::TransferLeader(r) => {
            RaftResponse::TransferLeader(raft.handle_transfer_leader(r).await.map_err(|e| e.to_string())?)
        }
    };
    message::encode(&resp)
}
