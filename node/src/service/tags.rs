//! Stream tags: AddTagsToStream, RemoveTagsFromStream, ListTagsForStream and their
//! resource-ARN forms (TagResource, UntagResource, ListTagsForResource).

use std::collections::BTreeMap;

use super::ServiceError;
use super::StreamService;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::StreamStatus;

/// Most tags one stream may carry.
pub const MAX_TAGS_PER_STREAM: usize = 50;

#[derive(Clone, Debug)]
pub struct ListTagsOutput {
    pub tags: Vec<(String, String)>,
    pub has_more: bool,
}

impl StreamService {
    /// The stream named by a resource ARN (TagResource and friends) when it is a stream ARN;
    /// `None` for a consumer ARN.
    fn stream_of_resource(&self, arn: &str) -> Result<Option<String>, ServiceError> {
        if arn.contains(":stream/") && !arn.contains("/consumer/") {
            return self.stream_identity(None, Some(arn)).map(Some);
        }
        if arn.contains("/consumer/") {
            return Ok(None);
        }
        Err(ServiceError::ResourceNotFound(format!(
            "Resource {arn} under account {} not found.",
            self.config().account
        )))
    }

    /// TagResource: a stream ARN or a consumer ARN.
    pub async fn tag_resource(&self, arn: &str, tags: BTreeMap<String, String>) -> Result<(), ServiceError> {
        match self.stream_of_resource(arn)? {
            Some(name) => self.add_tags(&name, tags).await,
            None => self.set_consumer_tags(arn, tags, Vec::new()).await,
        }
    }

    /// UntagResource: a stream ARN or a consumer ARN.
    pub async fn untag_resource(&self, arn: &str, keys: Vec<String>) -> Result<(), ServiceError> {
        match self.stream_of_resource(arn)? {
            Some(name) => self.remove_tags(&name, keys).await,
            None => self.set_consumer_tags(arn, BTreeMap::new(), keys).await,
        }
    }

    /// ListTagsForResource: a stream ARN or a consumer ARN, all tags in key order.
    pub fn list_resource_tags(&self, arn: &str) -> Result<Vec<(String, String)>, ServiceError> {
        match self.stream_of_resource(arn)? {
            Some(name) => Ok(self.list_tags(&name, None, None)?.tags),
            None => Ok(self.consumer_tags(arn)?.into_iter().collect()),
        }
    }

    fn taggable(&self, name: &str) -> Result<BTreeMap<String, String>, ServiceError> {
        let record = self.stream_record(name)?;
        if record.status == StreamStatus::Deleting {
            return Err(ServiceError::ResourceInUse(format!(
                "Stream {name} under account {} not ACTIVE, instead in state DELETING",
                self.config().account
            )));
        }
        Ok(record.tags)
    }

    pub async fn add_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<(), ServiceError> {
        let current = self.taggable(name)?;
        let total = current.len() + tags.keys().filter(|k| !current.contains_key(*k)).count();
        if total > MAX_TAGS_PER_STREAM {
            return Err(ServiceError::InvalidArgument(format!(
                "Failed to add tags to stream {name} under account {} because a given stream cannot have more than {MAX_TAGS_PER_STREAM} tags.",
                self.config().account
            )));
        }
        self.set_tags(name, tags, Vec::new()).await
    }

    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<(), ServiceError> {
        self.taggable(name)?;
        self.set_tags(name, BTreeMap::new(), keys).await
    }

    async fn set_tags(
        &self,
        name: &str,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> Result<(), ServiceError> {
        match self
            .propose(CatalogCommand::SetTags {
                name: name.into(),
                add,
                remove,
            })
            .await?
        {
            CatalogReply::NotFound => Err(self.not_found(name)),
            _ => Ok(()),
        }
    }

    /// Tags in key order, starting after `exclusive_start`, at most `limit` (all when `None`).
    pub fn list_tags(
        &self,
        name: &str,
        exclusive_start: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ListTagsOutput, ServiceError> {
        let tags = self.stream_record(name)?.tags;
        let after: Vec<(String, String)> = tags
            .into_iter()
            .filter(|(k, _)| exclusive_start.is_none_or(|s| k.as_str() > s))
            .collect();
        let limit = limit.unwrap_or(usize::MAX);
        let has_more = after.len() > limit;
        Ok(ListTagsOutput {
            tags: after.into_iter().take(limit).collect(),
            has_more,
        })
    }
}
