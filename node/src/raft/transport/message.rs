//! The openraft messages carried in a `RaftMessage` payload (postcard-encoded).

use openraft::RaftTypeConfig;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::SnapshotResponse;
use openraft::raft::TransferLeaderRequest;
use openraft::raft::TransferLeaderResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::VoteOf;

use crate::raft::catch_up::Chunk;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub enum RaftRequest<C: RaftTypeConfig> {
    Append(AppendEntriesRequest<C>),
    Vote(VoteRequest<C>),
    PreVote(VoteRequest<C>),
    Snapshot {
        vote: VoteOf<C>,
        meta: SnapshotMetaOf<C>,
        data: Vec<u8>,
    },
    TransferLeader(TransferLeaderRequest<C>),
    /// Part of a shard snapshot: the sender's log entries, staged by the receiver.
    SnapshotChunk(Chunk),
    /// The end of a shard snapshot transfer: install the staged log as the snapshot.
    SnapshotEnd {
        transfer: u64,
        /// Whether any entry was sent (the sender may keep none up to the snapshot).
        sent_any: bool,
        vote: VoteOf<C>,
        meta: SnapshotMetaOf<C>,
        data: Vec<u8>,
    },
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub enum RaftResponse<C: RaftTypeConfig> {
    Append(AppendEntriesResponse<C>),
    Vote(VoteResponse<C>),
    Snapshot(SnapshotResponse<C>),
    TransferLeader(TransferLeaderResponse<C>),
    /// A snapshot chunk was staged.
    Staged,
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| format!("encode raft message: {e}"))
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("decode raft message: {e}"))
}
