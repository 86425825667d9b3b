//! SubscribeToShard for registered consumers (enhanced fan-out): one subscription per consumer
//! and shard in the cluster, a limited lifetime, and a read rate per consumer and shard that is
//! independent of other consumers and of the shard's shared GetRecords budget.
//!
//! The one-subscription rule (AWS: a second subscription within 5 s of a successful one is
//! refused with ResourceInUseException, a later one takes over and the older one ends with a
//! ResourceInUseException event) and SubscribeToShard's calls per second per consumer and shard
//! are decided by the shard's leader, which keeps the subscriptions' leases
//! (`capacity::subscription_leases`, reached through the `ShardRouter` like reads): this node
//! acquires a subscription's lease before serving it, renews it every
//! [`RENEW_EVERY`](crate::capacity::subscription_leases::RENEW_EVERY) while it serves it and
//! releases it when it ends. A subscription taken over through another node ends at its next
//! renewal; one taken over through this node ends at once. The read budget of a consumer and
//! shard lives here, with the lease's holder: only one node holds it at a time.

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
use crate::capacity::subscription_leases::Holder;
use crate::capacity::subscription_leases::LeaseAnswer;
use crate::capacity::subscription_leases::LeaseKey;
use crate::capacity::subscription_leases::LeaseOp;
use crate::capacity::subscription_leases::LeaseRequest;
use crate::capacity::subscription_leases::RENEW_EVERY;
use crate::capacity::throughput::Throttling;
use crate::capacity::throughput::TokenBucket;
use crate::catalog::ConsumerRecord;
use crate::catalog::ConsumerStatus;
use crate::catalog::ShardRecord;

/// (stream, consumer, consumer creation ms, shard id)
type Key = (String, String, i64, String);

struct Serving {
    key: Key,
    /// Ends the subscription (a newer one took over, or the consumer is going away).
    cut: Option<oneshot::Sender<String>>,
}

/// The subscriptions this node serves and the read budget of each consumer and shard.
pub(super) struct Subscriptions {
    state: Mutex<State>,
}

struct State {
    next_id: u64,
    serving: HashMap<u64, Serving>,
    buckets: HashMap<Key, TokenBucket>,
}

impl Default for Subscriptions {
    fn default() -> Self {
        // Ids start anywhere: a restarted node's subscriptions are never taken for its
        // earlier ones by a leader that still holds their leases.
        let state = State {
            next_id: rand::random::<u64>() >> 1,
            serving: HashMap::new(),
            buckets: HashMap::new(),
        };
        Subscriptions {
            state: Mutex::new(state),
        }
    }
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An id for a new subscription.
    fn next_id(&self) -> u64 {
        let mut st = self.lock();
        st.next_id = st.next_id.wrapping_add(1);
        st.next_id
    }

    /// Serves subscription `id` of `key` (its lease is held); any other subscription of `key`
    /// this node serves was taken over and is cut with `reason`.
    fn start(&self, id: u64, key: Key, cut: oneshot::Sender<String>, reason: &str) {
        let mut st = self.lock();
        for old in st.serving.values_mut().filter(|s| s.key == key) {
            if let Some(tx) = old.cut.take() {
                let _ = tx.send(reason.to_owned());
            }
        }
        st.serving.insert(id, Serving { key, cut: Some(cut) });
    }

    /// Ends subscription `id` with `reason` (it no longer holds its lease).
    fn cut(&self, id: u64, reason: String) {
        if let Some(tx) = self.lock().serving.get_mut(&id).and_then(|s| s.cut.take()) {
            let _ = tx.send(reason);
        }
    }

    /// Subscription `id` ended.
    fn end(&self, id: u64, now: Instant) {
        let mut st = self.lock();
        let Some(ended) = st.serving.remove(&id) else {
            return;
        };
        let key = ended.key;
        // A full bucket is no different from a new one.
        if !st.serving.values().any(|s| s.key == key)
            && st.buckets.get_mut(&key).is_some_and(|b| b.is_full(now))
        {
            st.buckets.remove(&key);
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
        for s in st.serving.values_mut() {
            let k = &s.key;
            if k.0 == stream
                && k.1 == consumer
                && k.2 == created_ms
                && let Some(tx) = s.cut.take()
            {
                let _ = tx.send(reason.to_owned());
            }
        }
    }
}

/// A served subscription's lease at the shard's leader.
struct LeaseHandle {
    shard: ShardRecord,
    request: LeaseRequest,
    started: Instant,
    /// The message of the ResourceInUseException that ends a subscription taken over.
    in_use: String,
}

impl StreamService {
    /// SubscribeToShard: the records of `shard_id` for the consumer named by `consumer_arn`,
    /// from `position`, for at most the configured subscription lifetime.
    pub async fn subscribe_consumer(
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
        // Checks the shard and the position before taking the subscription slot.
        let mut events = self.subscribe(&stream, shard_id, position)?;
        let key: Key = (
            stream.clone(),
            found.record.name.clone(),
            found.record.created_ms,
            shard_id.to_owned(),
        );
        let in_use =
            format!("Another subscription of consumer {consumer_arn} to shard {shard_id} is active.");
        let subscriptions = &self.inner.subscriptions;
        let id = subscriptions.next_id();
        let lease = LeaseHandle {
            request: LeaseRequest {
                key: LeaseKey {
                    group: shard.group,
                    // The canonical ARN: every node names the consumer alike.
                    consumer: self.consumer_arn(&stream, &found.record),
                },
                holder: Holder {
                    node: self.inner.router.host().node_id(),
                    subscription: id,
                },
                op: LeaseOp::Acquire {
                    limit_rate: self.inner.config.throttling != Throttling::Off,
                },
            },
            shard: shard.clone(),
            started: Instant::now(),
            in_use: in_use.clone(),
        };
        let acquired = self
            .inner
            .router
            .subscription_lease(&shard, &lease.request, 0)
            .await;
        match acquired {
            Ok(LeaseAnswer::Held) => {}
            Ok(LeaseAnswer::InUse | LeaseAnswer::TakenOver) => {
                return Err(ServiceError::ResourceInUse(in_use));
            }
            Ok(LeaseAnswer::RateExceeded) => {
                let target = CallTarget {
                    stream: Some(&stream),
                    shard: Some(&shard),
                    consumer: Some(consumer_arn),
                };
                return Err(self.call_refused(ApiCall::SubscribeToShard, &target));
            }
            Err(e) => return Err(ServiceError::internal(e)),
        }
        let (cut_tx, mut cut_rx) = oneshot::channel();
        subscriptions.start(id, key.clone(), cut_tx, &in_use);
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        tokio::spawn(self.clone().keep_lease(lease, id, ended_rx));
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
            svc.inner.subscriptions.end(id, Instant::now());
            drop(ended_tx);
        });
        Ok(ReceiverStream::new(rx))
    }

    /// Renews subscription `id`'s lease every [`RENEW_EVERY`] until the subscription ends
    /// (`ended`), then releases it. Cuts the subscription when the leader answers that a newer
    /// one took over, or when this node's catalog no longer has the consumer ACTIVE (it was
    /// deregistered through another node). A renewal that fails (no leader during an election)
    /// leaves the subscription running; the next one tries again. Renewals and the release run
    /// one after the other, so a late renewal never takes a released lease again.
    async fn keep_lease(self, mut lease: LeaseHandle, id: u64, mut ended: oneshot::Receiver<()>) {
        let router = &self.inner.router;
        loop {
            tokio::select! {
                biased;
                _ = &mut ended => break,
                _ = tokio::time::sleep(RENEW_EVERY) => {}
            }
            let arn = &lease.request.key.consumer;
            let active = self
                .consumer_by_arn(arn)
                .is_ok_and(|c| c.record.status == ConsumerStatus::Active);
            if !active {
                let reason = format!(
                    "Consumer {arn} under account {} is being deleted.",
                    self.config().account
                );
                self.inner.subscriptions.cut(id, reason);
                continue;
            }
            lease.request.op = LeaseOp::Renew {
                age: lease.started.elapsed(),
            };
            match router.subscription_lease(&lease.shard, &lease.request, 0).await {
                Ok(LeaseAnswer::TakenOver) => {
                    tracing::debug!(consumer = %arn, group = lease.shard.group, "subscription taken over");
                    self.inner.subscriptions.cut(id, lease.in_use.clone());
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, consumer = %arn, "subscription lease not renewed"),
            }
        }
        lease.request.op = LeaseOp::Release;
        if let Err(e) = router.subscription_lease(&lease.shard, &lease.request, 0).await {
            // It expires at the leader instead.
            tracing::debug!(error = %e, "subscription lease not released");
        }
    }

    /// The native Subscribe of a consumer named by its ARN or by its name within `stream_name`
    /// (an ARN must belong to `stream_name` when that is given).
    pub async fn subscribe_as_consumer(
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
        self.subscribe_consumer(&arn, shard_id, position).await
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
    fn a_subscription_started_here_cuts_the_older_one_of_its_key() {
        let subs = Subscriptions::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        subs.start(1, key("a"), tx1, "cut");
        subs.start(2, key("b"), tx2, "cut");
        assert!(rx1.try_recv().is_err());
        // The leader let subscription 3 take over key a: subscription 1 ends at once.
        subs.start(3, key("a"), tx3, "taken over");
        assert_eq!(rx1.try_recv().unwrap(), "taken over");
        assert!(rx2.try_recv().is_err());
        // A renewal answered "taken over" cuts one subscription.
        subs.cut(3, "renewal".into());
        assert_eq!(rx3.try_recv().unwrap(), "renewal");
        assert!(rx2.try_recv().is_err());
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
        // A bucket in debt outlives its subscription (a new one pays the debt); a full one is
        // dropped.
        let (tx, _rx) = oneshot::channel();
        subs.start(1, key("a"), tx, "");
        subs.end(1, t0);
        assert_eq!(subs.charge(&key("a"), 0, rate, burst, t0), Duration::from_secs(1));
        let (tx, _rx) = oneshot::channel();
        subs.start(2, key("a"), tx, "");
        subs.end(2, t0 + Duration::from_secs(3));
        assert!(!subs.lock().buckets.contains_key(&key("a")));
    }

    #[test]
    fn deregistering_cuts_every_shard_of_the_consumer() {
        let subs = Subscriptions::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        subs.start(1, key("a"), tx1, "");
        subs.start(2, key("b"), tx2, "");
        subs.cut_consumer("s", "c", 1, "gone");
        assert_eq!(rx1.try_recv().unwrap(), "gone");
        assert_eq!(rx2.try_recv().unwrap(), "gone");
    }
}
