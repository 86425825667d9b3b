//! Shard replicas hosted by this node: the write path (a batch becomes one Raft entry) and the
//! read path (records of the applied prefix of the shard log, from a position).

mod cursor;
mod host;
mod replica;

pub use cursor::Cursor;
pub use host::ShardHost;
pub use replica::AppendError;
pub use replica::ReadRecord;
pub use replica::ReadResult;
pub use replica::ShardReplica;
