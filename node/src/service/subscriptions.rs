//! SubscribeToShard for registered consumers (enhanced fan-out): one subscription per consumer
//! and shard, a limited lifetime, and a read rate per consumer and shard that is independent of
//! other consumers and of the shard's shared GetRecords budget.
//!
//! AWS: a second SubscribeToShard of the same consumer and shard within 5 seconds of a
//! successful one fails with ResourceInUseException; 5 seconds or more after, it takes over and
//! the older subscription ends with a ResourceInUseException event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::ServiceError;
use super::StreamService;
use super::SubscribeEvent;
use super::call_limits::CallTarget;
use super::records::PositionInput;
use crate::capacity::api_limits::ApiCall;
use crate::capacity::throughput::TokenBucket;
use crate::catalog::ConsumerRecord;
use crate::catalog::ConsumerStatus;

/// How long after a successful subscription a second one is refused rather than taking over.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);

/// (stream, consumer, consumer creation ms, shard id)
type Key = (String, String, i64, String);

struct Lease {
    id: u64,
    started: Instant,
    /// Ends the subscription (a newer one took over, or the consumer is going away).
    cut: Option<oneshot::Sender<String>>,
}

/// The subscriptions this node serves and the read budget of each consumer and shard.
#[derive(Default)]
pub(super) struct Subscriptions {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    leases: HashMap<Key, Lease>,
    buckets: HashMap<Key, TokenBucket>,
}

/// What a new subscription may do: go ahead (after cutting an older one) or not.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    Admitted(u64),
    InUse,
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a subscription for `key` at `now`; an older one started at least
    /// [`TAKEOVER_AFTER`] ago is cut with `reason`.
    fn admit(&self, key: &Key, now: Instant, cut: oneshot::Sender<String>, reason: String) -> Admission {
        let mut st = self.lock();
        if let Some(old) = st.leases.get_mut(key) {
            if now.saturating_duration_since(old.started) < TAKEOVER_AFTER {
                return Admission::InUse;
            }
            if let Some(tx) = old.cut.take() {
                let _ = tx.send(reason);
            }
        }
        st.next_id += 1;
        let id = st.next_id;
        st.leases.insert(
            key.clone(),
            Lease {
                id,
                started: now,
                cut: Some(cut),
            },
        );
        Admission::Admitted(id)
    }

    fn release(&self, key: &Key, id: u64, now: Instant) {
        let mut st = self.lock();
        if st.leases.get(key).is_some_and(|l| l.id == id) {
            st.leases.remove(key);
            // A full bucket is no different from a new one.
            if st.buckets.get_mut(key).is_some_and(|b| b.is_full(now)) {
                st.buckets.remove(key);
            }
        }
    }

    /// Charges `bytes` to the consumer's budget on the shard and says how long to wait before
    /// the next event (the budget is in debt until then).
    fn charge(&self, key: &Key, bytes: usize, rate: u64, burst: Duration, now: Instant) -> Duration {
        if rate == 0 {
            return Duration::ZERO;
        }
        let mut st = self.lock();
        let bucket = st
            .buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::full(rate, burst, now));
        bucket.charge(bytes as f64, now);
        let tokens = bucket.tokens(now);
        if tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens / rate as f64)
        }
    }

    fn cut_consumer(&self, stream: &str, consumer: &str, created_ms: i64, reason: &str) {
        let mut st = self.lock();
        for (k, lease) in st.leases.iter_mut() {
            if k.0 == stream
                && k.1 == consumer
                && k.2 == created_ms
                && let Some(tx) = lease.cut.take()
            {
                let _ = tx.send(reason.to_owned());
            }
        }
    }
}

impl StreamService {
    /// SubscribeToShard: the records of `shard_id` for the consumer named by `consumer_arn`,
    /// from `position`, for at most the configured subscription lifetime.
    pub fn subscribe_consumer(
        &self,
        consumer_arn: &str,
        shard_id: &str,
        position: PositionInput,
    ) -> Result<ReceiverStream<Result<SubscribeEvent, ServiceError>>, ServiceError> {
        let found = self.consumer_by_arn(consumer_arn)?;
        if found.record.status != ConsumerStatus::Active {
            return Err(ServiceError::ResourceInUse(format!(
                "Consumer {consumer_arn} under account {} is not ACTIVE, instead in state {}.",
                self.config().account,
                found.record.status.aws_name()
            )));
        }
        let stream = found.stream;
        let shard = self.read_target(&stream, shard_id)?;
        let target = CallTarget {
            stream: Some(&stream),
            shard: Some(&shard),
            consumer: Some(consumer_arn),
        };
        self.admit_call(ApiCall::SubscribeToShard, target)?;
        // Checks the shard and the position before taking the subscription slot.
        let mut events = self.subscribe(&stream, shard_id, position)?;
        let key: Key = (
            stream.clone(),
            found.record.name.clone(),
            found.record.created_ms,
            shard_id.to_owned(),
        );
        let (cut_tx, mut cut_rx) = oneshot::channel();
        let in_use =
            format!("Another subscription of consumer {consumer_arn} to shard {shard_id} is active.");
        let admission = self
            .inner
            .subscriptions
            .admit(&key, Instant::now(), cut_tx, in_use.clone());
        let id = match admission {
            Admission::Admitted(id) => id,
            Admission::InUse => return Err(ServiceError::ResourceInUse(in_use)),
        };
        let rate = if self.read_throttled(&stream) {
            self.config().consumer_read_bytes_per_sec
        } else {
            0
        };
        let burst = self.inner.config.shard_limits.burst;
        let lifetime = self.config().subscription_lifetime;
        let (tx, rx) = mpsc::channel(2);
        let svc = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::sleep(lifetime);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    biased;
                    reason = &mut cut_rx => {
                        if let Ok(reason) = reason {
                            let _ = tx.send(Err(ServiceError::ResourceInUse(reason))).await;
                        }
                        break;
                    }
                    _ = &mut deadline => break,
                    _ = tx.closed() => break,
                    event = events.next() => {
                        let Some(event) = event else { break };
                        let bytes = match &event {
                            Ok(e) => e.records.iter().map(|r| r.data.len() + r.partition_key.len()).sum(),
                            Err(_) => 0,
                        };
                        let last = !matches!(&event, Ok(e) if e.continuation.is_some());
                        if tx.send(event).await.is_err() || last {
                            break;
                        }
                        let wait = svc.inner.subscriptions.charge(&key, bytes, rate, burst, Instant::now());
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
            svc.inner.subscriptions.release(&key, id, Instant::now());
        });
        Ok(ReceiverStream::new(rx))
    }

    /// The native Subscribe of a consumer named by its ARN or by its name within `stream_name`
    /// (an ARN must belong to `stream_name` when that is given).
    pub fn subscribe_as_consumer(
        &self,
        stream_name: &str,
        consumer: &str,
        shard_id: &str,
        position: PositionInput,
    ) -> Result<ReceiverStream<Result<SubscribeEvent, ServiceError>>, ServiceError> {
        let arn = if consumer.starts_with("arn:") {
            let found = self.consumer_by_arn(consumer)?;
            if !stream_name.is_empty() && found.stream != stream_name {
                return Err(ServiceError::InvalidArgument(format!(
                    "Consumer {consumer} is not registered with stream {stream_name}."
                )));
            }
            consumer.to_owned()
        } else {
            let found = self.consumer_of(Some(&self.arn(stream_name)), Some(consumer), None)?;
            self.consumer_arn(&found.stream, &found.record)
        };
        self.subscribe_consumer(&arn, shard_id, position)
    }

    /// Ends the subscriptions of a consumer that is being deregistered.
    pub(super) fn cut_subscriptions_of(&self, stream: &str, c: &ConsumerRecord) {
        let reason = format!(
            "Consumer {} under account {} is being deleted.",
            self.consumer_arn(stream, c),
            self.config().account
        );
        self.inner
            .subscriptions
            .cut_consumer(stream, &c.name, c.created_ms, &reason);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn key(shard: &str) -> Key {
        ("s".into(), "c".into(), 1, shard.into())
    }

    #[test]
    fn a_second_subscription_is_refused_then_takes_over() {
        let subs = Subscriptions::default();
        let t0 = Instant::now();
        let (tx1, mut rx1) = oneshot::channel();
        assert_eq!(
            subs.admit(&key("a"), t0, tx1, "cut".into()),
            Admission::Admitted(1)
        );
        // Within the window: refused, and the first one keeps running.
        let (tx2, _rx2) = oneshot::channel();
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(subs.admit(&key("a"), soon, tx2, "cut".into()), Admission::InUse);
        assert!(rx1.try_recv().is_err());
        // Another shard of the same consumer is independent.
        let (tx3, _rx3) = oneshot::channel();
        assert_eq!(
            subs.admit(&key("b"), soon, tx3, "cut".into()),
            Admission::Admitted(2)
        );
        // After the window: the new one takes over and the old one is told why.
        let (tx4, _rx4) = oneshot::channel();
        let later = t0 + TAKEOVER_AFTER;
        assert_eq!(
            subs.admit(&key("a"), later, tx4, "cut".into()),
            Admission::Admitted(3)
        );
        assert_eq!(rx1.try_recv().unwrap(), "cut");
        // The old one ending does not release the new one's slot.
        subs.release(&key("a"), 1, later);
        let (tx5, _rx5) = oneshot::channel();
        assert_eq!(subs.admit(&key("a"), later, tx5, "cut".into()), Admission::InUse);
        subs.release(&key("a"), 3, later);
        let (tx6, _rx6) = oneshot::channel();
        assert_eq!(
            subs.admit(&key("a"), later, tx6, "cut".into()),
            Admission::Admitted(4)
        );
    }

    #[test]
    fn each_consumer_has_its_own_budget() {
        let subs = Subscriptions::default();
        let t0 = Instant::now();
        let rate = 2 << 20;
        let burst = Duration::from_secs(1);
        // A full burst passes; the next 2 MiB put the budget one second in debt.
        assert_eq!(subs.charge(&key("a"), 2 << 20, rate, burst, t0), Duration::ZERO);
        assert_eq!(
            subs.charge(&key("a"), 2 << 20, rate, burst, t0),
            Duration::from_secs(1)
        );
        // Another consumer-shard pair is not affected.
        let other: Key = ("s".into(), "d".into(), 1, "a".into());
        assert_eq!(subs.charge(&other, 1 << 20, rate, burst, t0), Duration::ZERO);
        // Unlimited when the rate is 0.
        assert_eq!(subs.charge(&key("a"), 1 << 30, 0, burst, t0), Duration::ZERO);
    }

    #[test]
    fn deregistering_cuts_every_shard_of_the_consumer() {
        let subs = Subscriptions::default();
        let t0 = Instant::now();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        subs.admit(&key("a"), t0, tx1, String::new());
        subs.admit(&key("b"), t0, tx2, String::new());
        subs.cut_consumer("s", "c", 1, "gone");
        assert_eq!(rx1.try_recv().unwrap(), "gone");
        assert_eq!(rx2.try_recv().unwrap(), "gone");
    }
}
