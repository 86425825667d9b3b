//! Client library for Runnel's native gRPC API.
//!
//! [`Client`] wraps the `Streams` (data plane) and `Admin` gRPC services with typed helpers;
//! [`StreamReader`] reads every shard of a stream, parents before children, which is what the
//! `runnel get` and `runnel tail` commands use. [`Consumer`] is one worker of a consuming
//! application: shard leases balanced across the application's workers and checkpoints kept in
//! the cluster (`runnel tail --app`). [`aggregation`] writes and reads KPL-aggregated records.
//!
//! ```no_run
//! # async fn example() -> Result<(), runnel_client::Error> {
//! use runnel_client::{Client, Position, PutEntry};
//! let client = Client::connect("http://127.0.0.1:4568").await?;
//! client.create_stream(runnel_client::CreateStream::provisioned("orders", 2)).await?;
//! let results = client.put_records("orders", vec![PutEntry::new("key", "hello")]).await?;
//! let page = client.get_records("orders", &results[0].shard_id()?, Position::TrimHorizon, 100).await?;
//! # Ok(()) }
//! ```

pub mod aggregation;
mod batch;
mod client;
pub mod consumer;
mod error;
mod membership;
mod position;
mod reader;
mod record;
mod retry;
mod sequence;
mod shard_order;

pub use batch::BatchLimits;
pub use batch::Batcher;
pub use batch::split_batches;
pub use client::Client;
pub use client::CreateStream;
pub use client::StreamMode;
pub use consumer::Consumer;
pub use consumer::ConsumerConfig;
pub use consumer::Delivery;
pub use error::Error;
pub use position::Position;
pub use reader::ReaderOptions;
pub use reader::StreamReader;
pub use record::ChildShard;
pub use record::GetRecordsOutput;
pub use record::PutEntry;
pub use record::PutResult;
pub use record::Record;
pub use record::SubscribeEvent;
pub use retry::RetryPolicy;
pub use sequence::shard_index_of_sequence_number;
pub use shard_order::ShardNode;
pub use shard_order::ShardOrder;

/// The generated protobuf types, for callers that need fields the typed helpers do not expose.
pub use runnel_proto::v1 as proto;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
