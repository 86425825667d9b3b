//! Raft between nodes over tonic. All groups share one HTTP/2 connection per node pair; the
//! messages of every group bound for a peer are batched into one `Raft.Batch` call.

mod client;
mod message;
mod peer;
mod server;

pub use client::ClusterNetwork;
pub use message::RaftRequest;
pub use message::RaftResponse;
pub use peer::MAX_MESSAGE_BYTES as PEER_MESSAGE_BYTES;
pub use peer::PeerPool;
pub use server::handle;
pub use server::handle_shard;
