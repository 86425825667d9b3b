//! Raft plumbing shared by every group on a node: the type configurations, the log store over
//! the shard log, group commit, the state machines and the network.
//!
//! Every shard is one openraft group, and so is the catalog. The shard log *is* the Raft log of
//! a shard group: a producer batch is appended once, as one Raft entry, and readers read the
//! committed prefix of that same log. The shard state machine only tracks how far the log is
//! applied (the visibility watermark), so no record is written twice.

pub mod catalog_sm;
pub mod catch_up;
pub mod codec;
pub mod flusher;
pub mod group;
pub mod log_store;
pub mod network;
pub mod shard_sm;
mod snapshot_file;
pub mod transport;
pub mod types;
mod vote_file;

pub use flusher::FsyncPolicy;
pub use flusher::GroupCommit;
