//! Conversions between protobuf messages and service-layer values.

use runnel_proto::v1 as pb;
use tonic::Status;

use crate::catalog::StreamMode;
use crate::catalog::StreamStatus;
use crate::model::SequenceNumber;
use crate::service::ChildShard;
use crate::service::PositionInput;
use crate::service::ServiceError;
use crate::service::StreamDescription;
use crate::shard::Cursor;
use crate::shard::ReadRecord;

pub fn status(e: ServiceError) -> Status {
    let code = match &e {
        ServiceError::Validation(_) | ServiceError::InvalidArgument(_) => tonic::Code::InvalidArgument,
        ServiceError::ResourceNotFound(_) => tonic::Code::NotFound,
        ServiceError::ResourceInUse(_) => tonic::Code::FailedPrecondition,
        ServiceError::LimitExceeded(_) | ServiceError::ProvisionedThroughputExceeded(_) => {
            tonic::Code::ResourceExhausted
        }
        ServiceError::ExpiredIterator(_) | ServiceError::ExpiredNextToken(_) => tonic::Code::OutOfRange,
        ServiceError::ConditionFailed(_) => tonic::Code::Aborted,
        // The request names a key the keyring lacks: a refusal, not a transient state.
        ServiceError::KmsNotFound(_) => tonic::Code::InvalidArgument,
        ServiceError::KmsAccessDenied(_) => tonic::Code::PermissionDenied,
        ServiceError::Internal(_) => tonic::Code::Internal,
    };
    let mut status = Status::new(code, e.to_string());
    if let Ok(v) = e.aws_type().parse() {
        status.metadata_mut().insert("x-runnel-error-type", v);
    }
    status
}

pub fn position(p: Option<pb::Position>) -> Result<PositionInput, Status> {
    use pb::position::Kind;
    match p.and_then(|p| p.kind) {
        None => Err(Status::invalid_argument("position is required")),
        Some(Kind::TrimHorizon(_)) => Ok(PositionInput::TrimHorizon),
        Some(Kind::Latest(_)) => Ok(PositionInput::Latest),
        Some(Kind::AtSequenceNumber(s)) => Ok(PositionInput::AtSequenceNumber(s)),
        Some(Kind::AfterSequenceNumber(s)) => Ok(PositionInput::AfterSequenceNumber(s)),
        Some(Kind::AtTimestampMs(t)) => Ok(PositionInput::AtTimestamp(t)),
    }
}

/// The position where a read continues, as a sequence-number position of the shard.
pub fn continuation(shard_index: u32, shard_created_secs: u64, c: Cursor) -> pb::Position {
    let seq = SequenceNumber {
        shard_created_secs,
        shard_index,
        log_index: c.log_index,
        position: c.position,
        arrival_secs: 0,
    };
    pb::Position {
        kind: Some(pb::position::Kind::AtSequenceNumber(seq.to_string())),
    }
}

pub fn record(r: ReadRecord) -> pb::Record {
    pb::Record {
        sequence_number: r.sequence_number.to_string(),
        approximate_arrival_timestamp_ms: r.arrival_ms,
        partition_key: r.partition_key,
        data: r.data,
        explicit_hash_key: r.explicit_hash_key.map(|k| k.to_string()),
        encrypted: r.encrypted,
    }
}

pub fn stream_description(d: StreamDescription) -> pb::StreamDescription {
    pb::StreamDescription {
        stream_name: d.name,
        stream_arn: d.arn,
        status: match d.status {
            StreamStatus::Creating => pb::StreamStatus::Creating,
            StreamStatus::Active => pb::StreamStatus::Active,
            StreamStatus::Updating => pb::StreamStatus::Updating,
            StreamStatus::Deleting => pb::StreamStatus::Deleting,
        } as i32,
        mode: match d.mode {
            StreamMode::Provisioned => pb::StreamMode::Provisioned,
            StreamMode::OnDemand => pb::StreamMode::OnDemand,
        } as i32,
        retention_period_hours: d.retention_hours,
        creation_timestamp_ms: d.created_ms,
        open_shard_count: d.open_shard_count,
        max_record_size_kib: d.max_record_size_kib,
        encryption_key_id: d.encryption_key_id,
        tags: d.tags.into_iter().collect(),
        shards: d
            .shards
            .into_iter()
            .map(|s| pb::Shard {
                shard_id: s.shard_id.to_string(),
                parent_shard_id: s.parent.map(|p| p.to_string()).unwrap_or_default(),
                adjacent_parent_shard_id: s.adjacent_parent.map(|p| p.to_string()).unwrap_or_default(),
                hash_key_range: Some(pb::HashKeyRange {
                    starting_hash_key: s.range.start.to_string(),
                    ending_hash_key: s.range.end.to_string(),
                }),
                starting_sequence_number: s.starting_sequence_number.to_string(),
                ending_sequence_number: s
                    .ending_sequence_number
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                replicas: s.replicas,
                leader: s.leader.unwrap_or(0),
            })
            .collect(),
    }
}

pub fn child_shard(c: &ChildShard) -> pb::ChildShard {
    pb::ChildShard {
        shard_id: c.shard_id.to_string(),
        parent_shards: c.parent_shards.iter().map(|p| p.to_string()).collect(),
        hash_key_range: Some(pb::HashKeyRange {
            starting_hash_key: c.range.start.to_string(),
            ending_hash_key: c.range.end.to_string(),
        }),
    }
}
