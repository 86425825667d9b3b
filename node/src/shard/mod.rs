//! Shard replicas hosted by this node: the write path (a batch becomes one Raft entry), the read
//! path (records of the applied prefix of the shard log, from a position) and the routing of
//! both to the shard's leader wherever it runs.

mod cursor;
mod decode;
mod host;
mod lease_route;
mod replica;
pub mod router;
pub mod wire;

pub use cursor::Cursor;
pub use cursor::ReadStart;
pub use decode::DecodeError;
pub use decode::ReadRecord;
pub use decode::ReadResult;
pub use decode::Take;
pub use decode::decode;
pub use decode::sequence_number;
pub use host::NodeDirectory;
pub use host::ShardHost;
pub use lease_route::LeaseError;
pub use replica::AppendError;
pub use replica::Appended;
pub use replica::FrameRead;
pub use replica::ReadError;
pub use replica::ShardReplica;
pub use router::Admitted;
pub use router::ReadLimits;
pub use router::ShardRouter;
