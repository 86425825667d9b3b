//! PutRecord, PutRecords, GetShardIterator and GetRecords.

use bytes::Bytes;

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::protocol::timestamp;
use super::stream_of;
use crate::clock;
use crate::service::ChildShard;
use crate::service::GetRecordsInput;
use crate::service::IteratorPosition;
use crate::service::KMS_NOT_FOUND;
use crate::service::PositionInput;
use crate::service::PutEntryInput;
use crate::service::PutEntryResult;
use crate::service::PutRecordsInput;
use crate::service::ServiceError;
use crate::service::StreamService;
use crate::service::document::Doc;
use crate::shard::ReadRecord;

/// The Kinesis `EncryptionType` of stored records.
pub(super) fn encryption_type(encrypted: bool) -> &'static str {
    if encrypted { "KMS" } else { "NONE" }
}

fn entry(d: &Doc) -> PutEntryInput {
    PutEntryInput {
        partition_key: d.str("PartitionKey").unwrap_or_default().to_string(),
        data: d.blob("Data").cloned().unwrap_or_else(Bytes::new),
        explicit_hash_key: d.str("ExplicitHashKey").map(str::to_string),
    }
}

pub(super) async fn put_record(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    // SequenceNumberForOrdering: sequence numbers always increase within a shard here, so the
    // ordering it asks for holds without it (its pattern is checked by the model).
    let input = PutRecordsInput {
        stream_name: stream_of(api, &doc)?,
        records: vec![entry(&doc)],
    };
    let result = api.service().put_records(input).await?;
    match result.into_iter().next() {
        Some(PutEntryResult::Ok {
            shard_id,
            sequence_number,
            encrypted,
        }) => Ok(Out::new()
            .put("ShardId", shard_id.to_string())
            .put("SequenceNumber", sequence_number.to_string())
            .put("EncryptionType", encryption_type(encrypted))
            .doc()),
        Some(PutEntryResult::Failed {
            error_code,
            error_message,
        }) => Err(match error_code.as_str() {
            "ProvisionedThroughputExceededException" => {
                ServiceError::ProvisionedThroughputExceeded(error_message)
            }
            KMS_NOT_FOUND => ServiceError::KmsNotFound(error_message),
            _ => ServiceError::Internal(error_message),
        }
        .into()),
        None => Err(ServiceError::internal("no result for the record").into()),
    }
}

pub(super) async fn put_records(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let input = PutRecordsInput {
        stream_name: stream_of(api, &doc)?,
        records: doc.list("Records").iter().map(entry).collect(),
    };
    let results = api.service().put_records(input).await?;
    let mut failed = 0i64;
    // One type for the call: KMS when every stored record was encrypted (a call racing
    // StartStreamEncryption or StopStreamEncryption may store some of each).
    let stored: Vec<bool> = results
        .iter()
        .filter_map(|r| match r {
            PutEntryResult::Ok { encrypted, .. } => Some(*encrypted),
            PutEntryResult::Failed { .. } => None,
        })
        .collect();
    let encrypted = !stored.is_empty() && stored.iter().all(|e| *e);
    let records: Vec<Doc> = results
        .into_iter()
        .map(|r| match r {
            PutEntryResult::Ok {
                shard_id,
                sequence_number,
                ..
            } => Out::new()
                .put("SequenceNumber", sequence_number.to_string())
                .put("ShardId", shard_id.to_string())
                .doc(),
            PutEntryResult::Failed {
                error_code,
                error_message,
            } => {
                failed += 1;
                Out::new()
                    .put("ErrorCode", error_code)
                    .put("ErrorMessage", error_message)
                    .doc()
            }
        })
        .collect();
    Ok(Out::new()
        .put("FailedRecordCount", failed)
        .put("Records", records)
        .put("EncryptionType", encryption_type(encrypted))
        .doc())
}

pub(super) async fn get_shard_iterator(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    let position = StreamService::iterator_request(
        doc.str("ShardIteratorType").unwrap_or_default(),
        doc.str("StartingSequenceNumber"),
        doc.timestamp_ms("Timestamp"),
    )?;
    let pos = api
        .service()
        .shard_iterator_position(&name, doc.str("ShardId").unwrap_or_default(), position)
        .await?;
    Ok(Out::new()
        .put("ShardIterator", api.iterators().encode(&pos, clock::now_ms()))
        .doc())
}

pub(super) async fn get_records(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let token = doc.str("ShardIterator").unwrap_or_default();
    let pos = api.iterators().decode(token, clock::now_ms())?;
    if let Some(arn) = doc.str("StreamARN") {
        let named = api.service().stream_identity(None, Some(arn))?;
        if named != pos.stream_name {
            return Err(ServiceError::InvalidArgument(format!(
                "StreamARN {arn} does not match the stream of the ShardIterator."
            ))
            .into());
        }
    }
    api.service().check_iterator_target(&pos)?;
    let out = api
        .service()
        .get_records(GetRecordsInput {
            stream_name: pos.stream_name.clone(),
            shard_id: crate::model::ShardId(pos.shard_index).to_string(),
            position: PositionInput::Cursor(pos.cursor),
            limit: doc
                .int("Limit")
                .map(|l| u32::try_from(l.max(0)).unwrap_or(u32::MAX)),
        })
        .await?;
    let records: Vec<Doc> = out.records.iter().map(record_doc).collect();
    let next = out.next.map(|cursor| {
        let next = IteratorPosition {
            cursor,
            ..pos.clone()
        };
        api.iterators().encode(&next, clock::now_ms())
    });
    let children: Vec<Doc> = out.child_shards.iter().map(child_shard_doc).collect();
    Ok(Out::new()
        .put("Records", records)
        .opt("NextShardIterator", next)
        .put("MillisBehindLatest", out.millis_behind_latest)
        .opt("ChildShards", Some(children).filter(|c| !c.is_empty()))
        .doc())
}

/// A Record of GetRecords (and SubscribeToShard events).
pub(super) fn record_doc(r: &ReadRecord) -> Doc {
    Out::new()
        .put("SequenceNumber", r.sequence_number.to_string())
        .put("ApproximateArrivalTimestamp", timestamp(r.arrival_ms))
        .put("Data", Doc::Blob(r.data.clone()))
        .put("PartitionKey", r.partition_key.as_str())
        .opt("EncryptionType", r.encrypted.then_some("KMS"))
        .doc()
}

/// A ChildShard of GetRecords (and SubscribeToShard events).
pub(super) fn child_shard_doc(c: &ChildShard) -> Doc {
    Out::new()
        .put("ShardId", c.shard_id.to_string())
        .put(
            "ParentShards",
            c.parent_shards
                .iter()
                .map(|p| Doc::from(p.to_string()))
                .collect::<Vec<_>>(),
        )
        .put(
            "HashKeyRange",
            Out::new()
                .put("StartingHashKey", c.range.start.to_string())
                .put("EndingHashKey", c.range.end.to_string()),
        )
        .doc()
}
