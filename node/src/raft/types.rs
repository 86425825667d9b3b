//! openraft type configurations of the shard groups and the catalog group.

use std::fmt;

use bytes::Bytes;

use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;

pub type NodeId = u64;

/// A command of a shard group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShardCommand {
    /// One producer batch for this shard, encoded as a [`crate::model::RecordBatch`].
    Records { timestamp_ms: i64, batch: Bytes },
    /// Closes the shard (a split or merge): no entry after the first seal holds records.
    Seal,
}

impl fmt::Display for ShardCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardCommand::Records { timestamp_ms, batch } => {
                write!(f, "records(ts={timestamp_ms}, {} bytes)", batch.len())
            }
            ShardCommand::Seal => f.write_str("seal"),
        }
    }
}

/// What applying a shard command answers, beyond the log id the client already gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ShardReply {
    /// The records are in the shard.
    #[default]
    Appended,
    /// The shard was sealed at log index `at`; the entry holds no records of the shard.
    Closed { at: u64 },
}

openraft::declare_raft_types!(
    /// Type configuration of a shard's Raft group.
    pub ShardRaft:
        D = ShardCommand,
        R = ShardReply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);

openraft::declare_raft_types!(
    /// Type configuration of the catalog's Raft group.
    pub CatalogRaft:
        D = CatalogCommand,
        R = CatalogReply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        AsyncRuntime = openraft_rt_tokio::TokioRuntime,
);
