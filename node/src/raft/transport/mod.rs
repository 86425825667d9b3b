//! Raft between nodes over tonic. All groups share one HTTP/2 connection per node pair.
//! Replication to a follower is pipelined on ordered lanes (`Raft.Pipeline`, [`lane`],
//! [`append_stream`], [`receiver`]); every other message of every group bound for a peer is
//! batched into `Raft.Batch` calls ([`peer`]).

mod append_stream;
mod client;
mod lane;
mod message;
mod peer;
mod receiver;
mod server;

pub use client::ClusterNetwork;
pub use message::RaftRequest;
pub use message::RaftResponse;
pub use peer::MAX_MESSAGE_BYTES as PEER_MESSAGE_BYTES;
pub use peer::PeerPool;
pub use receiver::AckSink;
pub use receiver::AppendSession;
pub use receiver::ack_frames;
pub use receiver::append_session;
pub use receiver::serve_lane;
pub use server::handle;
pub use server::handle_shard;
