//! CreateStream, DeleteStream, DescribeStream, DescribeStreamSummary, ListStreams and the
//! retention-period operations.

use super::records::encryption_type;
use base64::Engine;

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::protocol::timestamp;
use super::shards::shard_doc;
use super::stream_of;
use super::tags::tag_map;
use crate::capacity::api_limits::ApiCall;
use crate::catalog::StreamMode;
use crate::service::CallTarget;
use crate::service::CreateStreamInput;
use crate::service::ServiceError;
use crate::service::StreamDescription;
use crate::service::document::Doc;

pub(super) fn mode_name(m: StreamMode) -> &'static str {
    match m {
        StreamMode::Provisioned => "PROVISIONED",
        StreamMode::OnDemand => "ON_DEMAND",
    }
}

fn mode_details(m: StreamMode) -> Doc {
    Out::new().put("StreamMode", mode_name(m)).doc()
}

fn enhanced_monitoring() -> Doc {
    Doc::List(vec![Out::new().put("ShardLevelMetrics", Doc::List(vec![])).doc()])
}

fn not_supported(param: &str) -> ApiError {
    ApiError::new(
        "InvalidArgumentException",
        format!("{param} is not supported by this Runnel build."),
    )
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

pub(super) async fn create_stream(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    for p in ["WarmThroughputMiBps", "RecordDistributionStrategy"] {
        if doc.get(p).is_some() {
            return Err(not_supported(p));
        }
    }
    let on_demand = doc
        .get("StreamModeDetails")
        .and_then(|d| d.str("StreamMode"))
        .is_some_and(|m| m == "ON_DEMAND");
    let tags = tag_map(&doc);
    let input = CreateStreamInput {
        stream_name: doc.str("StreamName").unwrap_or_default().to_string(),
        shard_count: doc.int("ShardCount").map(u32_of),
        on_demand,
        retention_hours: None,
        tags,
        max_record_size_kib: doc.int("MaxRecordSizeInKiB").map(u32_of),
    };
    api.service().create_stream(input).await?;
    Ok(Out::new().doc())
}

pub(super) async fn delete_stream(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    let enforce = doc.bool("EnforceConsumerDeletion").unwrap_or(false);
    api.service().delete_stream(&name, enforce).await?;
    Ok(Out::new().doc())
}

fn description_doc(d: &StreamDescription, has_more: bool) -> Doc {
    Out::new()
        .put("StreamName", d.name.as_str())
        .put("StreamARN", d.arn.as_str())
        .put("StreamStatus", d.status.aws_name())
        .put("StreamModeDetails", mode_details(d.mode))
        .put("Shards", d.shards.iter().map(shard_doc).collect::<Vec<_>>())
        .put("HasMoreShards", has_more)
        .put("RetentionPeriodHours", d.retention_hours)
        .put("StreamCreationTimestamp", timestamp(d.created_ms))
        .put("EnhancedMonitoring", enhanced_monitoring())
        .put("EncryptionType", encryption_type(d.encryption_key_id.is_some()))
        .opt("KeyId", d.encryption_key_id.as_deref())
        .doc()
}

pub(super) fn describe_stream(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    let limit = doc.int("Limit").map(|l| l.max(0) as usize);
    let (d, more) = api
        .service()
        .describe_stream_page(&name, limit, doc.str("ExclusiveStartShardId"))?;
    Ok(Out::new()
        .put("StreamDescription", description_doc(&d, more))
        .doc())
}

pub(super) fn describe_stream_summary(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service()
        .admit_call(ApiCall::DescribeStreamSummary, CallTarget::stream(&name))?;
    let d = api.service().describe_stream(&name)?;
    let summary = Out::new()
        .put("StreamName", d.name.as_str())
        .put("StreamARN", d.arn.as_str())
        .put("StreamStatus", d.status.aws_name())
        .put("StreamModeDetails", mode_details(d.mode))
        .put("RetentionPeriodHours", d.retention_hours)
        .put("StreamCreationTimestamp", timestamp(d.created_ms))
        .put("EnhancedMonitoring", enhanced_monitoring())
        .put("EncryptionType", encryption_type(d.encryption_key_id.is_some()))
        .opt("KeyId", d.encryption_key_id.as_deref())
        .put("OpenShardCount", d.open_shard_count)
        .put("ConsumerCount", api.service().consumer_count(&name))
        .put("MaxRecordSizeInKiB", d.max_record_size_kib);
    Ok(Out::new().put("StreamDescriptionSummary", summary).doc())
}

fn encode_list_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

pub(super) fn list_streams(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    api.service()
        .admit_call(ApiCall::ListStreams, CallTarget::account())?;
    let token = match doc.str("NextToken") {
        None => None,
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::from(ServiceError::InvalidArgument(format!("Invalid NextToken: {t}.")))
                })?,
        ),
    };
    let start = token.as_deref().or(doc.str("ExclusiveStartStreamName"));
    let limit = doc.int("Limit").map(u32_of);
    let out = api.service().list_streams(start, limit)?;
    let mut summaries = Vec::new();
    for name in &out.names {
        // A stream deleted between listing and describing is left out.
        if let Ok(d) = api.service().describe_stream(name) {
            summaries.push(
                Out::new()
                    .put("StreamName", d.name.as_str())
                    .put("StreamARN", d.arn.as_str())
                    .put("StreamStatus", d.status.aws_name())
                    .put("StreamModeDetails", mode_details(d.mode))
                    .put("StreamCreationTimestamp", timestamp(d.created_ms))
                    .doc(),
            );
        }
    }
    let next = match (out.has_more, out.names.last()) {
        (true, Some(last)) => Some(encode_list_token(last)),
        _ => None,
    };
    Ok(Out::new()
        .put(
            "StreamNames",
            out.names.iter().map(|n| Doc::Str(n.clone())).collect::<Vec<_>>(),
        )
        .put("HasMoreStreams", out.has_more)
        .opt("NextToken", next)
        .put("StreamSummaries", summaries)
        .doc())
}

pub(super) async fn retention(api: &KinesisApi, doc: Doc, increase: bool) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    let hours = doc.int("RetentionPeriodHours").unwrap_or(0);
    let hours = u32::try_from(hours.max(0)).unwrap_or(u32::MAX);
    if increase {
        api.service().increase_retention(&name, hours).await?;
    } else {
        api.service().decrease_retention(&name, hours).await?;
    }
    Ok(Out::new().doc())
}
