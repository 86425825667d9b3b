//! Enhanced fan-out consumers: RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer, and the consumer side of DeleteStream and
//! the resource-ARN tag operations. Consumers live in the replicated catalog.

use std::collections::BTreeMap;

use base64::Engine;

use super::ServiceError;
use super::StreamService;
use super::call_limits::CallTarget;
use crate::capacity::api_limits::ApiCall;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::ConsumerArn;
use crate::catalog::ConsumerRecord;
use crate::catalog::ConsumerStatus;
use crate::catalog::StreamStatus;
use crate::clock;

/// ListStreamConsumers tokens expire after this long, as AWS's do.
const NEXT_TOKEN_TTL_MS: i64 = 300_000;
/// ListStreamConsumers returns at most this many consumers per call.
const MAX_LIST_RESULTS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerDescription {
    pub name: String,
    pub arn: String,
    pub status: ConsumerStatus,
    pub created_ms: i64,
    pub stream_arn: String,
}

#[derive(Clone, Debug)]
pub struct ListConsumersOutput {
    pub consumers: Vec<ConsumerDescription>,
    pub next_token: Option<String>,
}

/// A consumer a request names, resolved against the catalog.
#[derive(Clone, Debug)]
pub(super) struct ResolvedConsumer {
    pub stream: String,
    pub record: ConsumerRecord,
}

/// The paging state of ListStreamConsumers: the stream, the last name returned, when issued.
fn encode_token(stream: &str, after: &str, issued_ms: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{stream}\n{after}\n{issued_ms}"))
}

fn decode_token(token: &str) -> Option<(String, String, i64)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, '\n');
    let stream = parts.next()?.to_owned();
    let after = parts.next()?.to_owned();
    let issued = parts.next()?.parse().ok()?;
    Some((stream, after, issued))
}

impl StreamService {
    pub fn consumer_arn(&self, stream: &str, c: &ConsumerRecord) -> String {
        let cfg = self.config();
        ConsumerArn::format(&cfg.region, &cfg.account, stream, &c.name, c.created_secs())
    }

    fn consumer_description(&self, stream: &str, c: &ConsumerRecord) -> ConsumerDescription {
        ConsumerDescription {
            name: c.name.clone(),
            arn: self.consumer_arn(stream, c),
            status: c.status,
            created_ms: c.created_ms,
            stream_arn: self.arn(stream),
        }
    }

    fn consumer_not_found(&self, what: &str) -> ServiceError {
        ServiceError::ResourceNotFound(format!(
            "Consumer {what} under account {} not found.",
            self.config().account
        ))
    }

    /// The consumer a ConsumerARN names (region, account, stream, name and creation time must
    /// all match).
    pub(super) fn consumer_by_arn(&self, arn: &str) -> Result<ResolvedConsumer, ServiceError> {
        let cfg = self.config();
        let parsed = ConsumerArn::parse(arn)
            .ok_or_else(|| ServiceError::InvalidArgument(format!("Invalid ConsumerARN {arn}.")))?;
        if parsed.region != cfg.region || parsed.account != cfg.account {
            return Err(self.consumer_not_found(arn));
        }
        let record = self
            .inner
            .view
            .read(|c| {
                c.stream(&parsed.stream)
                    .and_then(|s| s.consumers.get(&parsed.consumer))
                    .cloned()
            })
            .filter(|c| c.created_secs() == parsed.created_secs)
            .ok_or_else(|| self.consumer_not_found(arn))?;
        Ok(ResolvedConsumer {
            stream: parsed.stream,
            record,
        })
    }

    /// The consumer of DescribeStreamConsumer and DeregisterStreamConsumer: its ARN, or its
    /// stream's ARN and its name (AWS requires one of the two forms).
    pub(super) fn consumer_of(
        &self,
        stream_arn: Option<&str>,
        name: Option<&str>,
        consumer_arn: Option<&str>,
    ) -> Result<ResolvedConsumer, ServiceError> {
        match (consumer_arn, stream_arn, name) {
            (Some(arn), _, _) => {
                let found = self.consumer_by_arn(arn)?;
                let stream_differs = stream_arn
                    .map(|a| self.stream_identity(None, Some(a)))
                    .transpose()?
                    .is_some_and(|s| s != found.stream);
                if stream_differs || name.is_some_and(|n| n != found.record.name) {
                    return Err(ServiceError::InvalidArgument(format!(
                        "ConsumerARN {arn} does not name the consumer given by StreamARN and ConsumerName."
                    )));
                }
                Ok(found)
            }
            (None, Some(stream_arn), Some(name)) => {
                let stream = self.stream_identity(None, Some(stream_arn))?;
                let record = self
                    .inner
                    .view
                    .read(|c| c.stream(&stream).and_then(|s| s.consumers.get(name)).cloned())
                    .ok_or_else(|| self.consumer_not_found(&format!("{name} of stream {stream_arn}")))?;
                Ok(ResolvedConsumer { stream, record })
            }
            _ => Err(ServiceError::InvalidArgument(
                "Either ConsumerARN or both StreamARN and ConsumerName must be provided.".into(),
            )),
        }
    }

    pub async fn register_consumer(
        &self,
        stream_arn: &str,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<ConsumerDescription, ServiceError> {
        let stream = self.stream_identity(None, Some(stream_arn))?;
        self.admit_call(ApiCall::RegisterStreamConsumer, CallTarget::stream(&stream))?;
        let record = self.stream_record(&stream)?;
        let cfg = self.config();
        if !matches!(record.status, StreamStatus::Active | StreamStatus::Updating) {
            return Err(ServiceError::ResourceInUse(format!(
                "Stream {stream} under account {} not ACTIVE, instead in state {}",
                cfg.account,
                record.status.aws_name()
            )));
        }
        if record.consumers.contains_key(name) {
            return Err(self.consumer_exists(&stream, name));
        }
        let creating = self.inner.view.read(|c| {
            c.streams
                .values()
                .flat_map(|s| s.consumers.values())
                .filter(|c| c.status == ConsumerStatus::Creating)
                .count()
        });
        if creating >= cfg.max_creating_consumers as usize {
            return Err(ServiceError::LimitExceeded(format!(
                "This request would exceed the limit of {} consumers in CREATING state for account {}.",
                cfg.max_creating_consumers, cfg.account
            )));
        }
        if tags.len() > super::tags::MAX_TAGS_PER_STREAM {
            return Err(ServiceError::InvalidArgument(format!(
                "A consumer cannot have more than {} tags.",
                super::tags::MAX_TAGS_PER_STREAM
            )));
        }
        let now_ms = clock::now_ms();
        let reply = self
            .propose(CatalogCommand::RegisterConsumer {
                stream: stream.clone(),
                name: name.to_owned(),
                tags,
                limit: cfg.max_consumers_per_stream,
                now_ms,
            })
            .await?;
        match reply {
            CatalogReply::Done => {}
            CatalogReply::AlreadyExists => return Err(self.consumer_exists(&stream, name)),
            CatalogReply::NotFound => return Err(self.not_found(&stream)),
            CatalogReply::Lease(_) | CatalogReply::Held(_) => {
                return Err(ServiceError::internal(
                    "unexpected catalog reply to RegisterConsumer",
                ));
            }
            CatalogReply::Conflict(_) => {
                let status = self.stream_record(&stream)?.status;
                if !matches!(status, StreamStatus::Active | StreamStatus::Updating) {
                    return Err(ServiceError::ResourceInUse(format!(
                        "Stream {stream} under account {} not ACTIVE, instead in state {}",
                        cfg.account,
                        status.aws_name()
                    )));
                }
                return Err(ServiceError::LimitExceeded(format!(
                    "Stream {stream_arn} already has the maximum number of {} registered consumers.",
                    cfg.max_consumers_per_stream
                )));
            }
        }
        let record = ConsumerRecord {
            name: name.to_owned(),
            status: ConsumerStatus::Creating,
            created_ms: now_ms,
            tags: BTreeMap::new(),
        };
        self.spawn_consumer_transition(stream.clone(), name.to_owned(), now_ms);
        Ok(self.consumer_description(&stream, &record))
    }

    fn consumer_exists(&self, stream: &str, name: &str) -> ServiceError {
        ServiceError::ResourceInUse(format!(
            "Consumer {name} under stream {stream} already exists for account {}.",
            self.config().account
        ))
    }

    pub fn describe_consumer(
        &self,
        stream_arn: Option<&str>,
        name: Option<&str>,
        consumer_arn: Option<&str>,
    ) -> Result<ConsumerDescription, ServiceError> {
        let found = self.consumer_of(stream_arn, name, consumer_arn)?;
        self.admit_call(ApiCall::DescribeStreamConsumer, CallTarget::stream(&found.stream))?;
        Ok(self.consumer_description(&found.stream, &found.record))
    }

    pub fn list_consumers(
        &self,
        stream_arn: &str,
        next_token: Option<&str>,
        max_results: Option<u32>,
        stream_created_ms: Option<i64>,
    ) -> Result<ListConsumersOutput, ServiceError> {
        let stream = self.stream_identity(None, Some(stream_arn))?;
        self.admit_call(ApiCall::ListStreamConsumers, CallTarget::stream(&stream))?;
        let after = match next_token {
            None => None,
            Some(token) => {
                if stream_created_ms.is_some() {
                    return Err(ServiceError::InvalidArgument(
                        "NextToken and StreamCreationTimestamp cannot be provided together.".into(),
                    ));
                }
                // A token of another stream is as invalid as a malformed one.
                let (_, after, issued) = decode_token(token)
                    .filter(|(s, _, _)| *s == stream)
                    .ok_or_else(|| ServiceError::InvalidArgument(format!("Invalid NextToken: {token}")))?;
                if clock::now_ms() - issued > NEXT_TOKEN_TTL_MS {
                    return Err(ServiceError::ExpiredNextToken(format!(
                        "The NextToken has expired: {token}"
                    )));
                }
                Some(after)
            }
        };
        let record = self.stream_record(&stream)?;
        if stream_created_ms.is_some_and(|t| t != record.created_ms) {
            return Err(self.not_found(&stream));
        }
        let limit = max_results.map_or(MAX_LIST_RESULTS, |m| (m as usize).min(MAX_LIST_RESULTS));
        let mut page: Vec<ConsumerDescription> = record
            .consumers
            .values()
            .filter(|c| after.as_deref().is_none_or(|a| c.name.as_str() > a))
            .take(limit + 1)
            .map(|c| self.consumer_description(&stream, c))
            .collect();
        let next_token = if page.len() > limit {
            page.truncate(limit);
            page.last()
                .map(|last| encode_token(&stream, &last.name, clock::now_ms()))
        } else {
            None
        };
        Ok(ListConsumersOutput {
            consumers: page,
            next_token,
        })
    }

    pub async fn deregister_consumer(
        &self,
        stream_arn: Option<&str>,
        name: Option<&str>,
        consumer_arn: Option<&str>,
    ) -> Result<(), ServiceError> {
        let found = self.consumer_of(stream_arn, name, consumer_arn)?;
        self.admit_call(
            ApiCall::DeregisterStreamConsumer,
            CallTarget::stream(&found.stream),
        )?;
        if found.record.status == ConsumerStatus::Deleting {
            return Ok(());
        }
        let reply = self
            .propose(CatalogCommand::SetConsumerStatus {
                stream: found.stream.clone(),
                name: found.record.name.clone(),
                created_ms: found.record.created_ms,
                status: ConsumerStatus::Deleting,
            })
            .await?;
        if reply == CatalogReply::NotFound {
            return Err(self.consumer_not_found(&found.record.name));
        }
        self.cut_subscriptions_of(&found.stream, &found.record);
        self.spawn_consumer_transition(found.stream, found.record.name, found.record.created_ms);
        Ok(())
    }

    /// The consumers registered with a stream (DescribeStreamSummary's ConsumerCount).
    pub fn consumer_count(&self, stream: &str) -> u32 {
        self.inner
            .view
            .read(|c| c.stream(stream).map_or(0, |s| s.consumers.len() as u32))
    }

    /// Completes CREATING → ACTIVE or DELETING → gone after the configured delay.
    fn spawn_consumer_transition(&self, stream: String, name: String, created_ms: i64) {
        let svc = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(svc.config().transition_delay).await;
            if let Err(e) = svc.complete_consumer_transition(&stream, &name, created_ms).await {
                tracing::error!(stream = %stream, consumer = %name, error = %e, "consumer transition failed");
            }
        });
    }

    async fn complete_consumer_transition(
        &self,
        stream: &str,
        name: &str,
        created_ms: i64,
    ) -> Result<(), ServiceError> {
        let status = self.inner.view.read(|c| {
            c.stream(stream)
                .and_then(|s| s.consumers.get(name))
                .filter(|c| c.created_ms == created_ms)
                .map(|c| c.status)
        });
        let cmd = match status {
            Some(ConsumerStatus::Creating) => CatalogCommand::SetConsumerStatus {
                stream: stream.into(),
                name: name.into(),
                created_ms,
                status: ConsumerStatus::Active,
            },
            Some(ConsumerStatus::Deleting) => CatalogCommand::RemoveConsumer {
                stream: stream.into(),
                name: name.into(),
                created_ms,
            },
            Some(ConsumerStatus::Active) | None => return Ok(()),
        };
        self.propose(cmd).await?;
        Ok(())
    }

    /// Finishes consumer transitions interrupted by a restart.
    pub(super) async fn resume_consumer_transitions(&self) -> Result<(), ServiceError> {
        let pending: Vec<(String, String, i64)> = self.inner.view.read(|c| {
            c.streams
                .values()
                .flat_map(|s| {
                    s.consumers
                        .values()
                        .filter(|c| c.status != ConsumerStatus::Active)
                        .map(|c| (s.name.clone(), c.name.clone(), c.created_ms))
                })
                .collect()
        });
        for (stream, name, created_ms) in pending {
            self.complete_consumer_transition(&stream, &name, created_ms)
                .await?;
        }
        Ok(())
    }

    /// DeleteStream refuses a stream with consumers unless EnforceConsumerDeletion is set.
    pub(super) fn check_consumers_before_delete(
        &self,
        stream: &str,
        enforce: bool,
    ) -> Result<(), ServiceError> {
        if enforce || self.consumer_count(stream) == 0 {
            return Ok(());
        }
        Err(ServiceError::ResourceInUse(format!(
            "Stream {stream} under account {} has registered consumers. Deregister them or set EnforceConsumerDeletion to true.",
            self.config().account
        )))
    }

    /// Tags of a consumer (ListTagsForResource on a consumer ARN).
    pub(super) fn consumer_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, ServiceError> {
        Ok(self.consumer_by_arn(arn)?.record.tags)
    }

    /// TagResource / UntagResource on a consumer ARN.
    pub(super) async fn set_consumer_tags(
        &self,
        arn: &str,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> Result<(), ServiceError> {
        let found = self.consumer_by_arn(arn)?;
        let current = &found.record.tags;
        let total = current.len() + add.keys().filter(|k| !current.contains_key(*k)).count();
        if total > super::tags::MAX_TAGS_PER_STREAM {
            return Err(ServiceError::InvalidArgument(format!(
                "Failed to add tags to consumer {arn} under account {} because a given resource cannot have more than {} tags.",
                self.config().account,
                super::tags::MAX_TAGS_PER_STREAM
            )));
        }
        match self
            .propose(CatalogCommand::SetConsumerTags {
                stream: found.stream,
                name: found.record.name,
                add,
                remove,
            })
            .await?
        {
            CatalogReply::NotFound => Err(self.consumer_not_found(arn)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn list_tokens_round_trip() {
        let t = encode_token("s-1", "app.b", 1_700_000_000_123);
        assert_eq!(
            decode_token(&t),
            Some(("s-1".into(), "app.b".into(), 1_700_000_000_123))
        );
        assert_eq!(decode_token("!!"), None);
        assert_eq!(
            decode_token(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s\nx")),
            None
        );
    }
}
