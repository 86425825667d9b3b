//! AddTagsToStream, RemoveTagsFromStream, ListTagsForStream, TagResource, UntagResource,
//! ListTagsForResource.

use std::collections::BTreeMap;

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::stream_of;
use crate::service::document::Doc;

/// The `Tags` map of a request.
pub(super) fn tag_map(doc: &Doc) -> BTreeMap<String, String> {
    doc.entries("Tags")
        .iter()
        .filter_map(|(k, v)| match v {
            Doc::Str(s) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

fn tag_list(tags: Vec<(String, String)>) -> Vec<Doc> {
    tags.into_iter()
        .map(|(k, v)| Out::new().put("Key", k).put("Value", v).doc())
        .collect()
}

fn resource(doc: &Doc) -> &str {
    doc.str("ResourceARN").unwrap_or_default()
}

pub(super) async fn add_tags_to_stream(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service().add_tags(&name, tag_map(&doc)).await?;
    Ok(Out::new().doc())
}

pub(super) async fn remove_tags_from_stream(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service().remove_tags(&name, doc.strings("TagKeys")).await?;
    Ok(Out::new().doc())
}

pub(super) fn list_tags_for_stream(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    // AWS returns at most 50 tags when no Limit is given (a stream has at most 50).
    let limit = doc.int("Limit").map_or(50, |l| l.max(0) as usize);
    let out = api
        .service()
        .list_tags(&name, doc.str("ExclusiveStartTagKey"), Some(limit))?;
    Ok(Out::new()
        .put("Tags", tag_list(out.tags))
        .put("HasMoreTags", out.has_more)
        .doc())
}

pub(super) async fn tag_resource(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    api.service().tag_resource(resource(&doc), tag_map(&doc)).await?;
    Ok(Out::new().doc())
}

pub(super) async fn untag_resource(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    api.service()
        .untag_resource(resource(&doc), doc.strings("TagKeys"))
        .await?;
    Ok(Out::new().doc())
}

pub(super) fn list_tags_for_resource(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let tags = api.service().list_resource_tags(resource(&doc))?;
    Ok(Out::new().put("Tags", tag_list(tags)).doc())
}
