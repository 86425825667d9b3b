//! The stream as the catalog reports it: a plain value, converted from the admin API's
//! `StreamDescription`, so planning and status building need no gRPC types.

use std::collections::BTreeMap;

use runnel_proto::v1 as pb;

use crate::crd::StreamLifecycle;
use crate::crd::StreamMode;

/// One stream's description in the catalog.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedStream {
    pub name: String,
    pub arn: String,
    /// None when the node reports an unknown status.
    pub status: Option<StreamLifecycle>,
    /// None when the node reports an unknown mode.
    pub mode: Option<StreamMode>,
    pub retention_period_hours: u32,
    pub tags: BTreeMap<String, String>,
    pub shards: Vec<ObservedShard>,
    /// MaxRecordSizeInKiB (1024 when the node does not report it).
    pub max_record_size_kib: u32,
    /// The `KeyId` new records are encrypted with; None: not encrypted.
    pub encryption_key_id: Option<String>,
}

/// An enhanced fan-out consumer of a stream, as ListConsumers reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedConsumer {
    pub name: String,
    pub arn: String,
    /// CREATING, ACTIVE or DELETING.
    pub status: String,
}

impl From<pb::Consumer> for ObservedConsumer {
    fn from(c: pb::Consumer) -> Self {
        ObservedConsumer {
            name: c.consumer_name,
            arn: c.consumer_arn,
            status: c.status,
        }
    }
}

/// One shard of an [`ObservedStream`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedShard {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    /// Decimal, as in the Kinesis API.
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    pub closed: bool,
    /// Node ids holding a replica.
    pub replicas: Vec<u64>,
    /// Node id of the Raft leader, None when unknown.
    pub leader: Option<u64>,
}

impl ObservedStream {
    /// Shards that are not closed.
    pub fn open_shard_count(&self) -> usize {
        self.shards.iter().filter(|s| !s.closed).count()
    }
}

impl From<pb::StreamDescription> for ObservedStream {
    fn from(d: pb::StreamDescription) -> Self {
        let status = match pb::StreamStatus::try_from(d.status) {
            Ok(pb::StreamStatus::Creating) => Some(StreamLifecycle::Creating),
            Ok(pb::StreamStatus::Active) => Some(StreamLifecycle::Active),
            Ok(pb::StreamStatus::Updating) => Some(StreamLifecycle::Updating),
            Ok(pb::StreamStatus::Deleting) => Some(StreamLifecycle::Deleting),
            Ok(pb::StreamStatus::Unspecified) | Err(_) => None,
        };
        let mode = match pb::StreamMode::try_from(d.mode) {
            Ok(pb::StreamMode::Provisioned) => Some(StreamMode::Provisioned),
            Ok(pb::StreamMode::OnDemand) => Some(StreamMode::OnDemand),
            Ok(pb::StreamMode::Unspecified) | Err(_) => None,
        };
        ObservedStream {
            name: d.stream_name,
            arn: d.stream_arn,
            status,
            mode,
            retention_period_hours: d.retention_period_hours,
            tags: d.tags.into_iter().collect(),
            shards: d.shards.into_iter().map(ObservedShard::from).collect(),
            max_record_size_kib: if d.max_record_size_kib == 0 {
                crate::plan::DEFAULT_MAX_RECORD_SIZE_KIB
            } else {
                d.max_record_size_kib
            },
            encryption_key_id: d.encryption_key_id,
        }
    }
}

impl From<pb::Shard> for ObservedShard {
    fn from(s: pb::Shard) -> Self {
        let (starting_hash_key, ending_hash_key) = s
            .hash_key_range
            .map(|r| (r.starting_hash_key, r.ending_hash_key))
            .unwrap_or_default();
        ObservedShard {
            shard_id: s.shard_id,
            parent_shard_id: non_empty(s.parent_shard_id),
            adjacent_parent_shard_id: non_empty(s.adjacent_parent_shard_id),
            starting_hash_key,
            ending_hash_key,
            closed: !s.ending_sequence_number.is_empty(),
            replicas: s.replicas,
            leader: (s.leader != 0).then_some(s.leader),
        }
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}
