//! SplitShard, MergeShards and UpdateShardCount.

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::stream_of;
use crate::service::document::Doc;

pub(super) async fn split_shard(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service()
        .split_shard(
            &name,
            doc.str("ShardToSplit").unwrap_or_default(),
            doc.str("NewStartingHashKey").unwrap_or_default(),
        )
        .await?;
    Ok(Out::new().doc())
}

pub(super) async fn merge_shards(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service()
        .merge_shards(
            &name,
            doc.str("ShardToMerge").unwrap_or_default(),
            doc.str("AdjacentShardToMerge").unwrap_or_default(),
        )
        .await?;
    Ok(Out::new().doc())
}

pub(super) async fn update_shard_count(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    // The model allows only UNIFORM_SCALING, which validation has checked.
    let target = doc
        .int("TargetShardCount")
        .map_or(0, |t| u32::try_from(t.max(0)).unwrap_or(u32::MAX));
    let out = api.service().update_shard_count(&name, target).await?;
    Ok(Out::new()
        .put("StreamName", name.as_str())
        .put("StreamARN", api.service().arn(&name))
        .put("CurrentShardCount", out.current_shard_count)
        .put("TargetShardCount", out.target_shard_count)
        .doc())
}
