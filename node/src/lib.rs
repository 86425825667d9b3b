//! Runnel's data plane: shard replicas on Raft, the catalog, the service layer and the APIs.

pub mod capacity;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod encryption;
pub mod grpc;
pub mod kinesis;
pub mod metrics;
pub mod model;
pub mod node;
pub mod raft;
pub mod retention;
pub mod service;
pub mod shard;
mod stats;
