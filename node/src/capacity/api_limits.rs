//! Per-second limits of API calls, each counted in the scope AWS documents for it (the account,
//! a stream, an open shard, or a consumer on a shard), enforced with token buckets.
//!
//! A Runnel cluster is one account. Every limit is `count` calls per `window` (one second by
//! default; a test can stretch it to make a refusal independent of the machine's speed), and
//! the bucket holds the whole window's allowance, so an idle caller may spend it at once.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use std::time::Instant;

use super::throughput::KeyedBuckets;
use super::throughput::TokenBucket;

/// An API operation with a rate limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiCall {
    GetShardIterator,
    SubscribeToShard,
    RegisterStreamConsumer,
    DeregisterStreamConsumer,
    DescribeStreamConsumer,
    ListStreamConsumers,
    DescribeStream,
    DescribeStreamSummary,
    ListShards,
    ListStreams,
}

/// What one limit counts calls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    Account,
    Stream,
    Shard,
    ConsumerShard,
}

impl ApiCall {
    pub const ALL: [ApiCall; 10] = [
        ApiCall::GetShardIterator,
        ApiCall::SubscribeToShard,
        ApiCall::RegisterStreamConsumer,
        ApiCall::DeregisterStreamConsumer,
        ApiCall::DescribeStreamConsumer,
        ApiCall::ListStreamConsumers,
        ApiCall::DescribeStream,
        ApiCall::DescribeStreamSummary,
        ApiCall::ListShards,
        ApiCall::ListStreams,
    ];

    /// The AWS operation name.
    pub fn name(self) -> &'static str {
        match self {
            ApiCall::GetShardIterator => "GetShardIterator",
            ApiCall::SubscribeToShard => "SubscribeToShard",
            ApiCall::RegisterStreamConsumer => "RegisterStreamConsumer",
            ApiCall::DeregisterStreamConsumer => "DeregisterStreamConsumer",
            ApiCall::DescribeStreamConsumer => "DescribeStreamConsumer",
            ApiCall::ListStreamConsumers => "ListStreamConsumers",
            ApiCall::DescribeStream => "DescribeStream",
            ApiCall::DescribeStreamSummary => "DescribeStreamSummary",
            ApiCall::ListShards => "ListShards",
            ApiCall::ListStreams => "ListStreams",
        }
    }

    /// The limit and its scope as the Kinesis API reference states them.
    pub fn aws_limit(self) -> (u64, ScopeKind) {
        match self {
            // "five transactions per second per account per open shard"
            ApiCall::GetShardIterator => (5, ScopeKind::Shard),
            // "one call to SubscribeToShard per second per registered consumer per shard"
            ApiCall::SubscribeToShard => (1, ScopeKind::ConsumerShard),
            // "five transactions per second per account"
            ApiCall::RegisterStreamConsumer => (5, ScopeKind::Account),
            ApiCall::DeregisterStreamConsumer => (5, ScopeKind::Account),
            // "20 transactions per second per stream"
            ApiCall::DescribeStreamConsumer => (20, ScopeKind::Stream),
            // "5 transactions per second per stream"
            ApiCall::ListStreamConsumers => (5, ScopeKind::Stream),
            // "10 transactions per second per account"
            ApiCall::DescribeStream => (10, ScopeKind::Account),
            // "20 transactions per second per account"
            ApiCall::DescribeStreamSummary => (20, ScopeKind::Account),
            // "1000 transactions per second (TPS) per data stream"
            ApiCall::ListShards => (1000, ScopeKind::Stream),
            // "five transactions per second per account"
            ApiCall::ListStreams => (5, ScopeKind::Account),
        }
    }
}

impl fmt::Display for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The key one call is counted under; the caller builds it for the call's [`ScopeKind`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Account,
    /// By stream name.
    Stream(String),
    /// By the shard's Raft group id (never reused).
    Shard(u64),
    /// By consumer ARN and the shard's Raft group id.
    ConsumerShard(String, u64),
}

/// One `--api-rate-limit` setting: `Operation=count` (count 0 turns that limit off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateSetting {
    pub call: ApiCall,
    pub count: u64,
}

impl FromStr for RateSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, count) = s
            .split_once('=')
            .ok_or_else(|| format!("expected Operation=count, got {s:?}"))?;
        let call = ApiCall::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = ApiCall::ALL.iter().map(|c| c.name()).collect();
                format!("unknown operation {name:?}; one of {}", names.join(", "))
            })?;
        let count = count
            .trim()
            .parse()
            .map_err(|e| format!("count of {name}: {e}"))?;
        Ok(RateSetting { call, count })
    }
}

/// How many calls of each operation one scope may make per `window`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    counts: BTreeMap<ApiCall, u64>,
    pub window: Duration,
}

impl Default for ApiLimits {
    /// AWS's limits, per second.
    fn default() -> Self {
        ApiLimits {
            counts: ApiCall::ALL.iter().map(|&c| (c, c.aws_limit().0)).collect(),
            window: Duration::from_secs(1),
        }
    }
}

impl ApiLimits {
    /// AWS's limits with `overrides` applied, counted per `window`.
    pub fn new(overrides: &[RateSetting], window: Duration) -> ApiLimits {
        let mut limits = ApiLimits {
            window,
            ..ApiLimits::default()
        };
        for o in overrides {
            limits.counts.insert(o.call, o.count);
        }
        limits
    }

    /// Calls of `call` allowed per window (0: unlimited).
    pub fn count(&self, call: ApiCall) -> u64 {
        self.counts.get(&call).copied().unwrap_or(0)
    }
}

/// The buckets of the calls this node served, by operation and scope.
#[derive(Debug)]
pub struct ApiLimiter {
    limits: ApiLimits,
    buckets: KeyedBuckets<(ApiCall, Scope), TokenBucket>,
}

impl ApiLimiter {
    pub fn new(limits: ApiLimits) -> ApiLimiter {
        ApiLimiter {
            limits,
            buckets: KeyedBuckets::default(),
        }
    }

    pub fn limits(&self) -> &ApiLimits {
        &self.limits
    }

    /// Whether one more `call` in `scope` is allowed now; takes it if so.
    pub fn admit(&self, call: ApiCall, scope: Scope, now: Instant) -> bool {
        let count = self.limits.count(call);
        if count == 0 {
            return true;
        }
        let window = self.limits.window;
        self.buckets.with(
            (call, scope),
            now,
            || TokenBucket::per_window(count, window, now),
            |b| b.try_take(1.0, now),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_by_operation_name() {
        assert_eq!(
            "GetShardIterator=2".parse::<RateSetting>(),
            Ok(RateSetting {
                call: ApiCall::GetShardIterator,
                count: 2
            })
        );
        assert_eq!(
            " listshards = 0 "
                .parse::<RateSetting>()
                .map(|s| (s.call, s.count)),
            Ok((ApiCall::ListShards, 0))
        );
        assert!("GetRecords=5".parse::<RateSetting>().is_err());
        assert!("DescribeStream".parse::<RateSetting>().is_err());
        assert!("DescribeStream=-1".parse::<RateSetting>().is_err());
    }

    #[test]
    fn defaults_are_aws_limits_and_overrides_replace_them() {
        let d = ApiLimits::default();
        assert_eq!(d.count(ApiCall::GetShardIterator), 5);
        assert_eq!(d.count(ApiCall::SubscribeToShard), 1);
        assert_eq!(d.count(ApiCall::DescribeStream), 10);
        assert_eq!(d.count(ApiCall::ListShards), 1000);
        assert_eq!(d.window, Duration::from_secs(1));
        let l = ApiLimits::new(
            &[RateSetting {
                call: ApiCall::DescribeStream,
                count: 0,
            }],
            Duration::from_secs(60),
        );
        assert_eq!(l.count(ApiCall::DescribeStream), 0);
        assert_eq!(l.count(ApiCall::ListShards), 1000);
    }

    #[test]
    fn each_scope_has_its_own_allowance_which_refills_over_the_window() {
        let t = Instant::now();
        let limiter = ApiLimiter::new(ApiLimits::new(
            &[RateSetting {
                call: ApiCall::GetShardIterator,
                count: 2,
            }],
            Duration::from_secs(8),
        ));
        let gsi = ApiCall::GetShardIterator;
        assert!(limiter.admit(gsi, Scope::Shard(1), t));
        assert!(limiter.admit(gsi, Scope::Shard(1), t));
        assert!(!limiter.admit(gsi, Scope::Shard(1), t));
        // Another shard, another operation: their own buckets.
        assert!(limiter.admit(gsi, Scope::Shard(2), t));
        assert!(limiter.admit(ApiCall::DescribeStream, Scope::Account, t));
        // 2 per 8 s: one call back after 4 s, not before.
        assert!(!limiter.admit(gsi, Scope::Shard(1), t + Duration::from_secs(3)));
        assert!(limiter.admit(gsi, Scope::Shard(1), t + Duration::from_secs(4)));
        assert!(!limiter.admit(gsi, Scope::Shard(1), t + Duration::from_secs(4)));
        // Refused calls cost nothing: after a whole window both are back.
        assert!(limiter.admit(gsi, Scope::Shard(1), t + Duration::from_secs(12)));
        assert!(limiter.admit(gsi, Scope::Shard(1), t + Duration::from_secs(12)));
        assert!(!limiter.admit(gsi, Scope::Shard(1), t + Duration::from_secs(12)));
    }

    #[test]
    fn a_zero_count_is_unlimited_and_idle_buckets_are_dropped() {
        let t = Instant::now();
        let limiter = ApiLimiter::new(ApiLimits::new(
            &[RateSetting {
                call: ApiCall::ListStreams,
                count: 0,
            }],
            Duration::from_secs(1),
        ));
        for _ in 0..10_000 {
            assert!(limiter.admit(ApiCall::ListStreams, Scope::Account, t));
        }
        assert!(limiter.buckets.is_empty(), "no bucket for an unlimited call");
        for shard in 0..100 {
            limiter.admit(ApiCall::GetShardIterator, Scope::Shard(shard), t);
        }
        assert_eq!(limiter.buckets.len(), 100);
        let later = t + Duration::from_secs(61);
        limiter.admit(ApiCall::DescribeStream, Scope::Account, later);
        assert_eq!(limiter.buckets.len(), 1, "only the bucket just used is left");
    }
}
