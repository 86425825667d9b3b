//! Per-second limits of API calls (`capacity::api_limits`): the service layer's hook and the
//! errors AWS answers with. They apply to every stream, whatever its capacity mode (AWS's API
//! limits do not depend on it), unless `--throttling off`.

use std::time::Instant;

use super::ServiceError;
use super::StreamService;
use super::admission::write_throttled_message;
use crate::capacity::api_limits::ApiCall;
use crate::capacity::api_limits::Scope;
use crate::capacity::api_limits::ScopeKind;
use crate::capacity::throughput::Throttling;
use crate::catalog::ShardRecord;
use crate::model::ShardId;

/// What a call is about: the stream it names, the shard and the consumer where it has them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallTarget<'a> {
    pub stream: Option<&'a str>,
    pub shard: Option<&'a ShardRecord>,
    pub consumer: Option<&'a str>,
}

impl<'a> CallTarget<'a> {
    pub fn account() -> CallTarget<'a> {
        CallTarget::default()
    }

    pub fn stream(stream: &'a str) -> CallTarget<'a> {
        CallTarget {
            stream: Some(stream),
            ..CallTarget::default()
        }
    }

    fn scope(&self, kind: ScopeKind) -> Scope {
        match (kind, self.stream, self.shard, self.consumer) {
            (ScopeKind::Stream, Some(stream), _, _) => Scope::Stream(stream.to_owned()),
            (ScopeKind::Shard, _, Some(shard), _) => Scope::Shard(shard.group),
            (ScopeKind::ConsumerShard, _, Some(shard), Some(consumer)) => {
                Scope::ConsumerShard(consumer.to_owned(), shard.group)
            }
            // A call without what its scope needs (not expected) counts against the account.
            _ => Scope::Account,
        }
    }
}

/// The error of a call refused by its limit, worded as AWS words it where known:
/// GetShardIterator answers ProvisionedThroughputExceededException with the message of a
/// throttled write; the control-plane calls LimitExceededException "Rate exceeded for stream
/// … under account …." (as DescribeStream on AWS).
pub fn call_throttled_error(call: ApiCall, target: &CallTarget<'_>, account: &str) -> ServiceError {
    match (call, target.stream, target.shard) {
        (ApiCall::GetShardIterator, Some(stream), Some(shard)) => {
            ServiceError::ProvisionedThroughputExceeded(write_throttled_message(shard.index, stream, account))
        }
        (ApiCall::SubscribeToShard, _, Some(shard)) => ServiceError::LimitExceeded(format!(
            "Rate exceeded for consumer {} and shard {} under account {account}.",
            target.consumer.unwrap_or_default(),
            ShardId(shard.index)
        )),
        (_, Some(stream), _) => ServiceError::LimitExceeded(format!(
            "Rate exceeded for stream {stream} under account {account}."
        )),
        _ => ServiceError::LimitExceeded(format!("Rate exceeded for account {account}.")),
    }
}

impl StreamService {
    /// Admits one `call` against its per-second limit in the scope AWS counts it in, on this
    /// node (GetShardIterator's per-shard limit is applied by the shard's leader instead).
    pub fn admit_call(&self, call: ApiCall, target: CallTarget<'_>) -> Result<(), ServiceError> {
        let config = &self.inner.config;
        if config.throttling == Throttling::Off {
            return Ok(());
        }
        let scope = target.scope(call.aws_limit().1);
        if self.inner.api_limiter.admit(call, scope, Instant::now()) {
            return Ok(());
        }
        Err(self.call_refused(call, &target))
    }

    /// The error of a `call` refused by its limit (here or by the shard's leader), counted in
    /// `runnel_api_calls_throttled_total`.
    pub(super) fn call_refused(&self, call: ApiCall, target: &CallTarget<'_>) -> ServiceError {
        self.inner
            .metrics
            .streams
            .api_calls_throttled
            .with_label_values(&[call.name()])
            .inc();
        call_throttled_error(call, target, &self.inner.config.account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> ShardRecord {
        ShardRecord::fixture(3, 17)
    }

    #[test]
    fn errors_carry_aws_types_and_messages() {
        let s = shard();
        let shard_target = CallTarget {
            stream: Some("orders"),
            shard: Some(&s),
            consumer: None,
        };
        let e = call_throttled_error(ApiCall::GetShardIterator, &shard_target, "111111111111");
        assert_eq!(e.aws_type(), "ProvisionedThroughputExceededException");
        assert_eq!(
            e.to_string(),
            "Rate exceeded for shard shardId-000000000003 in stream orders under account 111111111111."
        );
        let e = call_throttled_error(
            ApiCall::DescribeStream,
            &CallTarget::stream("orders"),
            "111111111111",
        );
        assert_eq!(e.aws_type(), "LimitExceededException");
        assert_eq!(
            e.to_string(),
            "Rate exceeded for stream orders under account 111111111111."
        );
        let e = call_throttled_error(ApiCall::ListStreams, &CallTarget::account(), "111111111111");
        assert_eq!(e.to_string(), "Rate exceeded for account 111111111111.");
        let consumer = CallTarget {
            consumer: Some("arn:c"),
            ..shard_target
        };
        let e = call_throttled_error(ApiCall::SubscribeToShard, &consumer, "111111111111");
        assert_eq!(e.aws_type(), "LimitExceededException");
        assert_eq!(
            e.to_string(),
            "Rate exceeded for consumer arn:c and shard shardId-000000000003 under account 111111111111."
        );
    }

    #[test]
    fn scopes_follow_the_calls_kind() {
        let s = shard();
        let t = CallTarget {
            stream: Some("orders"),
            shard: Some(&s),
            consumer: Some("arn:c"),
        };
        assert_eq!(t.scope(ScopeKind::Account), Scope::Account);
        assert_eq!(t.scope(ScopeKind::Stream), Scope::Stream("orders".into()));
        assert_eq!(t.scope(ScopeKind::Shard), Scope::Shard(17));
        assert_eq!(
            t.scope(ScopeKind::ConsumerShard),
            Scope::ConsumerShard("arn:c".into(), 17)
        );
        assert_eq!(CallTarget::account().scope(ScopeKind::Shard), Scope::Account);
    }
}
