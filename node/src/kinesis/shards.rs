//! ListShards, and the shard shape DescribeStream shares.

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use crate::service::ListShardsInput;
use crate::service::ServiceError;
use crate::service::ShardDescription;
use crate::service::ShardFilter;
use crate::service::document::Doc;

pub(super) fn shard_doc(s: &ShardDescription) -> Doc {
    Out::new()
        .put("ShardId", s.shard_id.to_string())
        .opt("ParentShardId", s.parent.map(|p| p.to_string()))
        .opt("AdjacentParentShardId", s.adjacent_parent.map(|p| p.to_string()))
        .put(
            "HashKeyRange",
            Out::new()
                .put("StartingHashKey", s.range.start.to_string())
                .put("EndingHashKey", s.range.end.to_string()),
        )
        .put(
            "SequenceNumberRange",
            Out::new()
                .put("StartingSequenceNumber", s.starting_sequence_number.to_string())
                .opt(
                    "EndingSequenceNumber",
                    s.ending_sequence_number.map(|e| e.to_string()),
                ),
        )
        .doc()
}

fn filter(d: &Doc) -> Result<ShardFilter, ApiError> {
    let kind = d.str("Type").unwrap_or_default();
    let need_ts = |ts: Option<i64>| {
        ts.ok_or_else(|| {
            ApiError::from(ServiceError::InvalidArgument(format!(
                "Timestamp must be specified for ShardFilter type {kind}."
            )))
        })
    };
    Ok(match kind {
        "AFTER_SHARD_ID" => ShardFilter::AfterShardId(
            d.str("ShardId")
                .ok_or_else(|| {
                    ApiError::from(ServiceError::InvalidArgument(
                        "ShardId must be specified for ShardFilter type AFTER_SHARD_ID.".into(),
                    ))
                })?
                .to_string(),
        ),
        "AT_TRIM_HORIZON" => ShardFilter::AtTrimHorizon,
        "FROM_TRIM_HORIZON" => ShardFilter::FromTrimHorizon,
        "AT_LATEST" => ShardFilter::AtLatest,
        "AT_TIMESTAMP" => ShardFilter::AtTimestamp(need_ts(d.timestamp_ms("Timestamp"))?),
        "FROM_TIMESTAMP" => ShardFilter::FromTimestamp(need_ts(d.timestamp_ms("Timestamp"))?),
        other => {
            return Err(ServiceError::InvalidArgument(format!("Invalid ShardFilter type {other}.")).into());
        }
    })
}

pub(super) fn list_shards(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let stream_name = match (doc.str("StreamName"), doc.str("StreamARN")) {
        (None, None) => None,
        (n, a) => Some(api.service().stream_identity(n, a)?),
    };
    let input = ListShardsInput {
        stream_name,
        next_token: doc.str("NextToken").map(str::to_string),
        exclusive_start_shard_id: doc.str("ExclusiveStartShardId").map(str::to_string),
        max_results: doc.int("MaxResults").map(|m| m.max(0) as usize),
        stream_creation_ms: doc.timestamp_ms("StreamCreationTimestamp"),
        filter: doc.get("ShardFilter").map(filter).transpose()?,
    };
    let out = api.service().list_shards(input)?;
    Ok(Out::new()
        .put("Shards", out.shards.iter().map(shard_doc).collect::<Vec<_>>())
        .opt("NextToken", out.next_token)
        .doc())
}
