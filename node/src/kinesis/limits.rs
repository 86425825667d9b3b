//! DescribeLimits, DescribeAccountSettings and UpdateStreamMode.

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::stream_of;
use crate::service::document::Doc;

pub(super) fn describe_limits(api: &KinesisApi) -> Result<Doc, ApiError> {
    let l = api.service().describe_limits();
    Ok(Out::new()
        .put("ShardLimit", l.shard_limit)
        .put("OpenShardCount", l.open_shard_count)
        .put("OnDemandStreamCount", l.on_demand_stream_count)
        .put("OnDemandStreamCountLimit", l.on_demand_stream_count_limit)
        .doc())
}

/// No minimum-throughput billing commitment exists on a self-hosted node.
pub(super) fn describe_account_settings() -> Result<Doc, ApiError> {
    Ok(Out::new()
        .put(
            "MinimumThroughputBillingCommitment",
            Out::new().put("Status", "DISABLED"),
        )
        .doc())
}

/// UpdateMaxRecordSize (by StreamARN, as the API takes it): an empty answer.
pub(super) async fn update_max_record_size(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    let kib = doc
        .int("MaxRecordSizeInKiB")
        .map_or(0, |k| u32::try_from(k.max(0)).unwrap_or(u32::MAX));
    api.service().update_max_record_size(&name, kib).await?;
    Ok(Out::new().doc())
}

pub(super) async fn update_stream_mode(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    if doc.get("WarmThroughputMiBps").is_some() {
        return Err(ApiError::new(
            "InvalidArgumentException",
            "WarmThroughputMiBps is not supported by this Runnel build.",
        ));
    }
    let name = stream_of(api, &doc)?;
    let on_demand = doc
        .get("StreamModeDetails")
        .and_then(|d| d.str("StreamMode"))
        .is_some_and(|m| m == "ON_DEMAND");
    api.service().update_stream_mode(&name, on_demand).await?;
    Ok(Out::new().doc())
}
