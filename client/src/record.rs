//! Typed records and results exchanged with the server.

use bytes::Bytes;
use runnel_proto::v1 as proto;

use crate::Error;
use crate::Position;

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutEntry {
    pub partition_key: String,
    pub data: Bytes,
    /// Decimal 128-bit hash key overriding the partition key's hash.
    pub explicit_hash_key: Option<String>,
}

impl PutEntry {
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        PutEntry {
            partition_key: partition_key.into(),
            data: data.into(),
            explicit_hash_key: None,
        }
    }

    /// The size counted against the 5 MiB batch limit: data plus partition key, as Kinesis counts.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

impl From<PutEntry> for proto::PutRecordsEntry {
    fn from(entry: PutEntry) -> Self {
        proto::PutRecordsEntry {
            partition_key: entry.partition_key,
            data: entry.data,
            explicit_hash_key: entry.explicit_hash_key,
        }
    }
}

/// The outcome of one put record, in input order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutResult {
    Ok {
        shard_id: String,
        sequence_number: String,
    },
    Failed {
        error_code: String,
        error_message: String,
    },
}

impl PutResult {
    pub fn is_ok(&self) -> bool {
        matches!(self, PutResult::Ok { .. })
    }

    /// The shard the record went to, or the record's error.
    pub fn shard_id(&self) -> Result<String, Error> {
        match self {
            PutResult::Ok { shard_id, .. } => Ok(shard_id.clone()),
            PutResult::Failed {
                error_code,
                error_message,
            } => Err(Error::InvalidArgument(format!("{error_code}: {error_message}"))),
        }
    }
}

impl From<proto::PutRecordResult> for PutResult {
    fn from(result: proto::PutRecordResult) -> Self {
        if result.error_code.is_empty() && !result.sequence_number.is_empty() {
            PutResult::Ok {
                shard_id: result.shard_id,
                sequence_number: result.sequence_number,
            }
        } else {
            let error_code = if result.error_code.is_empty() {
                "InternalFailure".to_string()
            } else {
                result.error_code
            };
            PutResult::Failed {
                error_code,
                error_message: result.error_message,
            }
        }
    }
}

/// A record read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub shard_id: String,
    pub sequence_number: String,
    /// Milliseconds since the Unix epoch.
    pub arrival_ms: i64,
    pub partition_key: String,
    pub data: Bytes,
    pub explicit_hash_key: Option<String>,
}

impl Record {
    pub(crate) fn from_proto(shard_id: &str, record: proto::Record) -> Self {
        Record {
            shard_id: shard_id.to_string(),
            sequence_number: record.sequence_number,
            arrival_ms: record.approximate_arrival_timestamp_ms,
            partition_key: record.partition_key,
            data: record.data,
            explicit_hash_key: record.explicit_hash_key,
        }
    }
}

/// A shard created by splitting or merging the shard that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
}

impl From<proto::ChildShard> for ChildShard {
    fn from(child: proto::ChildShard) -> Self {
        ChildShard {
            shard_id: child.shard_id,
            parent_shards: child.parent_shards,
        }
    }
}

/// One page of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRecordsOutput {
    pub records: Vec<Record>,
    /// Where to continue; `None` when the shard is closed and fully read.
    pub next_position: Option<Position>,
    pub millis_behind_latest: i64,
    /// Set when the shard is closed and the read reached its end.
    pub child_shards: Vec<ChildShard>,
}

impl GetRecordsOutput {
    pub(crate) fn from_proto(shard_id: &str, response: proto::GetRecordsResponse) -> Result<Self, Error> {
        Ok(GetRecordsOutput {
            records: response
                .records
                .into_iter()
                .map(|r| Record::from_proto(shard_id, r))
                .collect(),
            next_position: response.next_position.map(Position::from_proto).transpose()?,
            millis_behind_latest: response.millis_behind_latest,
            child_shards: response.child_shards.into_iter().map(ChildShard::from).collect(),
        })
    }

    /// True when the shard is closed and this page reached its end.
    pub fn shard_ended(&self) -> bool {
        self.next_position.is_none()
    }
}

/// One push from a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEvent {
    pub records: Vec<Record>,
    /// Resubscribe with `Position::AfterSequenceNumber(this)` to continue.
    pub continuation_sequence_number: String,
    pub millis_behind_latest: i64,
    pub child_shards: Vec<ChildShard>,
}

impl SubscribeEvent {
    pub(crate) fn from_proto(shard_id: &str, event: proto::SubscribeEvent) -> Self {
        SubscribeEvent {
            records: event
                .records
                .into_iter()
                .map(|r| Record::from_proto(shard_id, r))
                .collect(),
            continuation_sequence_number: event.continuation_sequence_number,
            millis_behind_latest: event.millis_behind_latest,
            child_shards: event.child_shards.into_iter().map(ChildShard::from).collect(),
        }
    }
}
