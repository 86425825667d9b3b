//! The receiving side: decode an openraft request for one group and hand it to that group.

use openraft::Raft;
use openraft::RaftTypeConfig;
use openraft::storage::RaftStateMachine;

use super::message;
use super::message::RaftRequest;
use super::message::RaftResponse;
use crate::raft::group::ShardGroup;

/// Handles one postcard-encoded [`RaftRequest`] for `raft`, returning the encoded response.
pub async fn handle<C, SM>(raft: &Raft<C, SM>, payload: &[u8]) -> Result<Vec<u8>, String>
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C, SnapshotData = Vec<u8>>,
{
    let req: RaftRequest<C> = message::decode(payload)?;
    message::encode(&serve(raft, req).await?)
}

/// Handles one request for a shard replica, which also receives snapshots as staged logs.
pub async fn handle_shard(group: &ShardGroup, payload: &[u8]) -> Result<Vec<u8>, String> {
    let resp = match message::decode(payload)? {
        RaftRequest::SnapshotChunk(chunk) => {
            group.catch_up.receive(chunk).map_err(|e| e.to_string())?;
            RaftResponse::Staged
        }
        RaftRequest::SnapshotEnd {
            transfer,
            sent_any,
            vote,
            meta,
            data,
        } => {
            let last = meta
                .last_log_id
                .ok_or_else(|| "a shard snapshot without a last log id".to_owned())?;
            group
                .catch_up
                .complete(transfer, &last, sent_any)
                .map_err(|e| e.to_string())?;
            let snapshot = openraft::storage::Snapshot { meta, snapshot: data };
            RaftResponse::Snapshot(
                group
                    .raft
                    .install_full_snapshot(vote, snapshot)
                    .await
                    .map_err(|e| e.to_string())?,
            )
        }
        RaftRequest::Snapshot { .. } => {
            return Err("a shard snapshot must come with its log (SnapshotChunk)".into());
        }
        req => serve(&group.raft, req).await?,
    };
    message::encode(&resp)
}

async fn serve<C, SM>(raft: &Raft<C, SM>, req: RaftRequest<C>) -> Result<RaftResponse<C>, String>
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C, SnapshotData = Vec<u8>>,
{
    Ok(match req {
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
        RaftRequest::SnapshotChunk(_) | RaftRequest::SnapshotEnd { .. } => {
            return Err("only shard groups receive staged snapshots".into());
        }
    })
}
