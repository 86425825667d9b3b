//! The Kinesis data model as pure values: names, ARNs, shard ids, hash keys, sequence numbers
//! and the on-log encoding of a record batch. No I/O lives here.

pub mod batch;
pub mod hash_key;
pub mod names;
pub mod sequence;

pub use batch::Record;
pub use batch::RecordBatch;
pub use hash_key::HashKeyRange;
pub use names::ShardId;
pub use names::StreamName;
pub use sequence::SequenceNumber;
