//! Admission at a shard's leader: the per-shard write and read budgets (`throughput`), the
//! per-shard limit of GetShardIterator and SubscribeToShard's per-consumer-and-shard limit
//! (`api_limits`) and the subscriptions' leases (`subscription_leases`), decided by the node
//! leading the shard,
//! which sees every append and read of it whichever node took the request. The node that took
//! the request says what to admit (it knows the stream's mode and the call); the leader holds
//! the buckets and answers what passed. Pure: time is an argument, the shard router does the
//! I/O.

use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;

use super::api_limits::ApiCall;
use super::api_limits::ApiLimiter;
use super::api_limits::ApiLimits;
use super::api_limits::Scope;
use super::subscription_leases::Holder;
use super::subscription_leases::LeaseAnswer;
use super::subscription_leases::LeaseKey;
use super::subscription_leases::LeaseOp;
use super::subscription_leases::StaleTerm;
use super::subscription_leases::SubscriptionLeases;
use super::throughput::ShardLimits;
use super::throughput::ShardThrottle;
use crate::model::batch::BatchDecodeError;
use crate::model::batch::batch_prefix;
use crate::model::batch::record_spans;

/// What a read of a shard asks its leader to admit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadAdmission {
    /// Nothing: the stream is not throttled, or the read is not a client call (subscriptions,
    /// the start of a subscription).
    #[default]
    Unlimited,
    /// A read of a GetRecords call, which takes up to `records` records of what it reads. The
    /// call's `first` read takes one of the shard's GetRecords calls (refused while the read
    /// bytes are in debt); every read is charged the bytes of the records it returns.
    GetRecords { first: bool, records: usize },
    /// GetShardIterator: one of the shard's GetShardIterator calls.
    GetShardIterator,
}

/// What the leader admitted of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchAdmission {
    /// Every record.
    All,
    /// Only the first `count` records (at least one, fewer than all), re-encoded as `batch`.
    Prefix { batch: Bytes, count: usize },
    /// None: the first record is already over the budget.
    None,
}

/// The buckets of the shards this node leads.
#[derive(Debug)]
pub struct ShardAdmission {
    throughput: ShardThrottle,
    calls: ApiLimiter,
    leases: Mutex<SubscriptionLeases>,
}

impl ShardAdmission {
    /// `lease_grace`: how long a new leader grants no subscription lease that no live holder
    /// renewed ([`LEADER_GRACE`](super::subscription_leases::LEADER_GRACE) in a cluster, zero
    /// standalone).
    pub fn new(shard_limits: ShardLimits, api_limits: ApiLimits, lease_grace: Duration) -> ShardAdmission {
        ShardAdmission {
            throughput: ShardThrottle::new(shard_limits),
            calls: ApiLimiter::new(api_limits),
            leases: Mutex::new(SubscriptionLeases::new(lease_grace)),
        }
    }

    pub fn limits(&self) -> &ShardLimits {
        self.throughput.limits()
    }

    /// Admits the longest prefix of an encoded batch that fits the shard's write budget
    /// (`ShardBuckets::admit_writes`): records after a refused one are refused too, so a
    /// producer retrying them never has a later record ahead of an earlier one.
    pub fn admit_batch(
        &self,
        group: u64,
        batch: &Bytes,
        now: Instant,
    ) -> Result<BatchAdmission, BatchDecodeError> {
        let spans = record_spans(batch)?;
        let admitted = self
            .throughput
            .admit_writes(group, spans.iter().map(|s| s.size), now);
        Ok(match admitted {
            n if n >= spans.len() => BatchAdmission::All,
            0 => BatchAdmission::None,
            count => BatchAdmission::Prefix {
                batch: batch_prefix(batch, &spans, count),
                count,
            },
        })
    }

    /// Whether a read may go ahead; takes the call it counts as, if any.
    pub fn admit_read(&self, group: u64, admission: ReadAdmission, now: Instant) -> bool {
        match admission {
            ReadAdmission::Unlimited | ReadAdmission::GetRecords { first: false, .. } => true,
            ReadAdmission::GetRecords { first: true, .. } => self.throughput.admit_read(group, now),
            ReadAdmission::GetShardIterator => {
                self.calls
                    .admit(ApiCall::GetShardIterator, Scope::Shard(group), now)
            }
        }
    }

    /// Charges the bytes an admitted GetRecords read returns to the shard's read budget.
    pub fn charge_read(&self, group: u64, bytes: usize, now: Instant) {
        self.throughput.charge_read(group, bytes, now);
    }

    /// Applies `op` to a subscription's lease, as the group's leader in `term` (confirmed just
    /// before). An acquire retried by the subscription that already holds the lease (its first
    /// answer was lost) or waits for it is answered again without taking another
    /// SubscribeToShard call. A serving node that cannot wait is refused where it would wait
    /// (the current holder is still told to end when it is being taken over).
    pub fn subscription_lease(
        &self,
        key: &LeaseKey,
        holder: Holder,
        op: LeaseOp,
        term: u64,
        now: Instant,
    ) -> Result<LeaseAnswer, StaleTerm> {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        match op {
            LeaseOp::Acquire { limit_rate, waits } => {
                let first = !leases.asked_before(key, holder, term, now)?;
                let scope = Scope::ConsumerShard(key.consumer.clone(), key.group);
                if first && limit_rate && !self.calls.admit(ApiCall::SubscribeToShard, scope, now) {
                    return Ok(LeaseAnswer::RateExceeded);
                }
                Ok(match leases.acquire(key, holder, term, now)? {
                    LeaseAnswer::Wait(_) if !waits => LeaseAnswer::InUse,
                    answer => answer,
                })
            }
            LeaseOp::Renew { age } => leases.renew(key, holder, age, term, now),
            LeaseOp::Release => {
                leases.release(key, holder, term, now)?;
                Ok(LeaseAnswer::Held)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::capacity::api_limits::RateSetting;
    use crate::model::Record;
    use crate::model::RecordBatch;

    fn batch(sizes: &[usize]) -> Bytes {
        RecordBatch {
            records: sizes
                .iter()
                .map(|&n| Record {
                    partition_key: "k".into(),
                    explicit_hash_key: None,
                    data: Bytes::from(vec![0u8; n.saturating_sub(1)]),
                })
                .collect(),
        }
        .encode()
    }

    fn admission(records_per_sec: u64) -> ShardAdmission {
        let limits = ShardLimits {
            write_records_per_sec: records_per_sec,
            read_calls_per_sec: 2,
            read_bytes_per_sec: 100,
            ..ShardLimits::default()
        };
        let calls = ApiLimits::new(
            &[RateSetting {
                call: ApiCall::GetShardIterator,
                count: 1,
            }],
            Duration::from_secs(1),
        );
        ShardAdmission::new(limits, calls, Duration::ZERO)
    }

    #[test]
    fn a_batch_is_admitted_whole_as_a_prefix_or_not_at_all() {
        let t = Instant::now();
        let a = admission(5);
        assert_eq!(a.admit_batch(1, &batch(&[10, 10]), t), Ok(BatchAdmission::All));
        let Ok(BatchAdmission::Prefix { batch: prefix, count }) = a.admit_batch(1, &batch(&[10; 5]), t)
        else {
            panic!("expected a prefix");
        };
        assert_eq!(count, 3);
        assert_eq!(prefix, batch(&[10; 3]));
        assert_eq!(a.admit_batch(1, &batch(&[10]), t), Ok(BatchAdmission::None));
        // Another shard has its own budget; a malformed batch is an error, not an admission.
        assert_eq!(a.admit_batch(2, &batch(&[10; 5]), t), Ok(BatchAdmission::All));
        assert!(a.admit_batch(3, &Bytes::from_static(b"\x01\x00"), t).is_err());
    }

    #[test]
    fn the_first_read_of_a_call_takes_a_call_and_every_read_pays_its_bytes() {
        let t = Instant::now();
        let a = admission(5);
        let first = ReadAdmission::GetRecords {
            first: true,
            records: 10,
        };
        let more = ReadAdmission::GetRecords {
            first: false,
            records: 10,
        };
        assert!(a.admit_read(1, first, t));
        assert!(a.admit_read(1, first, t));
        assert!(!a.admit_read(1, first, t), "2 calls/s");
        // Later reads of an admitted call are not calls.
        assert!(a.admit_read(1, more, t));
        // 1 s later two calls are back, unless the bytes are in debt (100 B/s, 500 B read).
        let later = t + Duration::from_secs(1);
        a.charge_read(1, 500, later);
        assert!(!a.admit_read(1, first, later));
        assert!(a.admit_read(1, first, t + Duration::from_secs(5)));
        assert!(a.admit_read(1, ReadAdmission::Unlimited, t));
    }

    #[test]
    fn get_shard_iterator_is_limited_per_shard() {
        let t = Instant::now();
        let a = admission(5);
        assert!(a.admit_read(1, ReadAdmission::GetShardIterator, t));
        assert!(!a.admit_read(1, ReadAdmission::GetShardIterator, t));
        assert!(a.admit_read(2, ReadAdmission::GetShardIterator, t));
        assert!(a.admit_read(1, ReadAdmission::GetShardIterator, t + Duration::from_secs(1)));
    }
}

#[cfg(test)]
mod subscription_tests {
    use std::time::Duration;

    use super::*;
    use crate::capacity::api_limits::RateSetting;
    use crate::capacity::subscription_leases::Waiting;

    #[test]
    fn subscribe_calls_are_limited_per_consumer_and_shard_and_retries_are_free() {
        let calls = ApiLimits::new(
            &[RateSetting {
                call: ApiCall::SubscribeToShard,
                count: 1,
            }],
            Duration::from_secs(1),
        );
        let a = ShardAdmission::new(ShardLimits::default(), calls, Duration::ZERO);
        let t = Instant::now();
        let key = |consumer: &str| LeaseKey {
            group: 1,
            consumer: consumer.into(),
        };
        let holder = |node| Holder {
            node,
            subscription: 1,
        };
        let (h1, h2, h3) = (holder(1), holder(2), holder(3));
        let lease = |k: &str, h, op, at| a.subscription_lease(&key(k), h, op, 1, at).unwrap();
        let limited = LeaseOp::Acquire {
            limit_rate: true,
            waits: true,
        };
        assert_eq!(lease("c", h1, limited, t), LeaseAnswer::Held);
        // The same acquire again (a lost answer): held, not a second call.
        assert_eq!(lease("c", h1, limited, t), LeaseAnswer::Held);
        // A second call within the second is over the limit, before the lease is looked at.
        assert_eq!(lease("c", h2, limited, t), LeaseAnswer::RateExceeded);
        // Without the limit it meets the lease.
        let unlimited = LeaseOp::Acquire {
            limit_rate: false,
            waits: true,
        };
        assert_eq!(lease("c", h2, unlimited, t), LeaseAnswer::InUse);
        // Another consumer has its own calls.
        assert_eq!(lease("d", h2, limited, t), LeaseAnswer::Held);
        // A takeover 5 s later waits (h1 renewed meanwhile); its repeated asks are one call.
        let renewal = |secs| LeaseOp::Renew {
            age: Duration::from_secs(secs),
        };
        assert_eq!(
            lease("c", h1, renewal(4), t + Duration::from_secs(4)),
            LeaseAnswer::Held
        );
        let later = t + Duration::from_secs(5);
        let waiting = LeaseAnswer::Wait(Waiting::TakingOver);
        assert_eq!(lease("c", h2, limited, later), waiting);
        assert_eq!(lease("c", h2, limited, later), waiting);
        // Released: the waiting one gets it.
        assert_eq!(lease("c", h1, LeaseOp::Release, later), LeaseAnswer::Held);
        assert_eq!(lease("c", h2, limited, later), LeaseAnswer::Held);
        // A serving node that cannot wait is refused instead (and the holder still ends).
        let old_node = LeaseOp::Acquire {
            limit_rate: false,
            waits: false,
        };
        let much_later = later + Duration::from_secs(5);
        assert_eq!(
            lease("c", h2, renewal(4), much_later - Duration::from_secs(1)),
            LeaseAnswer::Held
        );
        assert_eq!(lease("c", h3, old_node, much_later), LeaseAnswer::InUse);
        assert_eq!(lease("c", h2, renewal(5), much_later), LeaseAnswer::TakenOver);
        // A request confirmed under an older term is not applied.
        assert!(
            a.subscription_lease(&key("c"), h2, renewal(5), 2, much_later)
                .is_ok()
        );
        assert!(
            a.subscription_lease(&key("c"), h2, renewal(5), 1, much_later)
                .is_err()
        );
    }
}
