//! SubscribeToShard for registered consumers (enhanced fan-out): one subscription per consumer
//! and shard in the cluster, a limited lifetime, and a read rate per consumer and shard that is
//! independent of other consumers and of the shard's shared GetRecords budget.
//!
//! The one-subscription rule (AWS: a second subscription within 5 s of a successful one is
//! refused with ResourceInUseException, a later one takes over and the older one ends with a
//! ResourceInUseException event) and SubscribeToShard's calls per second per consumer and shard
//! are decided by the shard's leader, which keeps the subscriptions' leases
//! (`capacity::subscription_leases`, reached through the `ShardRouter` like reads): this node
//! acquires a subscription's lease before serving it (waiting while an older subscription is
//! being taken over or the leader is new), renews it every
//! [`RENEW_EVERY`](crate::capacity::subscription_leases::RENEW_EVERY) while it serves it and
//! releases it when it ends. A subscription ends when the leader answers that a newer one is
//! taking over, and when its lease could not be renewed in time
//! ([`HolderDeadline`]): before the leader could consider it expired, so two subscriptions are
//! never served at once. The read budget of a consumer and shard lives here, with the lease's
//! holder: only one node holds it at a time.

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
use crate::capacity::subscription_leases::ASK_AGAIN_EVERY;
use crate::capacity::subscription_leases::Holder;
use crate::capacity::subscription_leases::HolderDeadline;
use crate::capacity::subscription_leases::LeaseAnswer;
use crate::capacity::subscription_leases::LeaseKey;
use crate::capacity::subscription_leases::LeaseOp;
use crate::capacity::subscription_leases::LeaseRequest;
use crate::capacity::subscription_leases::RENEW_EVERY;
use crate::capacity::subscription_leases::WAIT_AT_MOST;
use crate::capacity::subscription_leases::Waiting;
use crate::capacity::throughput::Throttling;
use crate::capacity::throughput::TokenBucket;
use crate::catalog::ConsumerRecord;
use crate::catalog::ConsumerStatus;
use crate::catalog::ShardRecord;
use crate::shard::LeaseError;

/// (stream, consumer, consumer creation ms, shard id)
type Key = (String, String, i64, String);

struct Serving {
    key: Key,
    /// Ends the subscription with its last event (a newer one took over, the consumer is going
    /// away, or its lease was lost).
    cut: Option<oneshot::Sender<ServiceError>>,
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
    /// this node serves was taken over and is cut with ResourceInUse `reason`.
    fn start(&self, id: u64, key: Key, cut: oneshot::Sender<ServiceError>, reason: &str) {
        self.cut_key(&key, reason);
        self.lock().serving.insert(id, Serving { key, cut: Some(cut) });
    }

    /// Cuts the subscriptions of `key` this node serves with ResourceInUse `reason` (a newer
    /// one is taking over).
    fn cut_key(&self, key: &Key, reason: &str) {
        let mut st = self.lock();
        for old in st.serving.values_mut().filter(|s| &s.key == key) {
            if let Some(tx) = old.cut.take() {
                let _ = tx.send(ServiceError::ResourceInUse(reason.to_owned()));
            }
        }
    }

    /// Ends subscription `id` with `error` as its last event.
    fn cut(&self, id: u64, error: ServiceError) {
        if let Some(tx) = self.lock().serving.get_mut(&id).and_then(|s| s.cut.take()) {
            let _ = tx.send(error);
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
                let _ = tx.send(ServiceError::ResourceInUse(reason.to_owned()));
            }
        }
    }
}

/// Why a new subscription did not get its lease.
#[derive(Debug, thiserror::Error)]
enum NotAcquired {
    #[error("the shard's leader refused the lease: {0:?}")]
    Refused(LeaseAnswer),
    #[error("the lease was still held by another subscription after waiting for it")]
    WaitedTooLong,
    #[error(transparent)]
    Unreachable(#[from] LeaseError),
}

/// How a subscription's events are paced: by the read budget of its consumer and shard.
struct Pace {
    key: Key,
    /// Bytes per second; 0: unlimited.
    rate: u64,
    burst: Duration,
}

/// Passes a subscription's `events` on to `tx`, paced by `charge` (the wait a delivery of so
/// many bytes calls for), until the subscriber goes away, `lifetime` ends, the read ends or
/// the subscription is cut; returns the error it was cut with, to be its last event. A cut is
/// seen at once, even while an event waits for room or the pace: nothing is passed on after it.
async fn pass_events(
    mut events: ReceiverStream<Result<SubscribeEvent, ServiceError>>,
    tx: &mpsc::Sender<Result<SubscribeEvent, ServiceError>>,
    cut: &mut oneshot::Receiver<ServiceError>,
    lifetime: Duration,
    mut charge: impl FnMut(usize) -> Duration,
) -> Option<ServiceError> {
    let end = tokio::time::sleep(lifetime);
    tokio::pin!(end);
    loop {
        let event = tokio::select! {
            biased;
            error = &mut *cut => return error.ok(),
            _ = &mut end => return None,
            _ = tx.closed() => return None,
            event = events.next() => event?,
        };
        let bytes = match &event {
            Ok(e) => e
                .records
                .iter()
                .map(|r| r.data.len() + r.partition_key.len())
                .sum(),
            Err(_) => 0,
        };
        let last = !matches!(&event, Ok(e) if e.continuation.is_some());
        tokio::select! {
            biased;
            error = &mut *cut => return error.ok(),
            sent = tx.send(event) => {
                if sent.is_err() || last {
                    return None;
                }
            }
        }
        let wait = charge(bytes);
        if !wait.is_zero() {
            tokio::select! {
                biased;
                error = &mut *cut => return error.ok(),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A served subscription's lease at the shard's leader.
struct LeaseHandle {
    shard: ShardRecord,
    shard_id: String,
    request: LeaseRequest,
    started: Instant,
    /// The message of the ResourceInUseException that ends a subscription taken over.
    in_use: String,
    /// When the subscription must have ended unless a renewal gets through.
    deadline: HolderDeadline,
}

impl LeaseHandle {
    /// The error event that ends a subscription whose lease could not be renewed in time: an
    /// internal failure (the subscription may be started again at once, possibly through
    /// another node), not ResourceInUse, since no other subscription need be active.
    fn lost(&self) -> ServiceError {
        ServiceError::Internal(format!(
            "The subscription's lease on shard {} could not be renewed with the shard's leader in time; subscribe again.",
            self.shard_id
        ))
    }
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
        let events = self.subscribe(&stream, shard_id, position)?;
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
        let request = LeaseRequest {
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
                waits: true,
            },
        };
        let deadline = match self.acquire_lease(&shard, &request, &key, &in_use).await {
            Ok(deadline) => deadline,
            Err(NotAcquired::Refused(LeaseAnswer::RateExceeded)) => {
                let target = CallTarget {
                    stream: Some(&stream),
                    shard: Some(&shard),
                    consumer: Some(consumer_arn),
                };
                return Err(self.call_refused(ApiCall::SubscribeToShard, &target));
            }
            Err(NotAcquired::Refused(_) | NotAcquired::WaitedTooLong) => {
                return Err(ServiceError::ResourceInUse(in_use));
            }
            Err(NotAcquired::Unreachable(e)) => return Err(ServiceError::internal(e)),
        };
        let lease = LeaseHandle {
            request,
            shard: shard.clone(),
            shard_id: shard_id.to_owned(),
            started: Instant::now(),
            in_use: in_use.clone(),
            deadline,
        };
        let (cut_tx, cut_rx) = oneshot::channel();
        subscriptions.start(id, key.clone(), cut_tx, &in_use);
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        tokio::spawn(self.clone().keep_lease(lease, id, ended_rx));
        let pace = Pace {
            key,
            rate: if self.read_throttled(&stream) {
                self.config().consumer_read_bytes_per_sec
            } else {
                0
            },
            burst: self.inner.config.shard_limits.burst,
        };
        let lifetime = self.config().subscription_lifetime;
        let (tx, rx) = mpsc::channel(2);
        let svc = self.clone();
        tokio::spawn(async move {
            let subscriptions = &svc.inner.subscriptions;
            let charge =
                |bytes| subscriptions.charge(&pace.key, bytes, pace.rate, pace.burst, Instant::now());
            let mut cut_rx = cut_rx;
            if let Some(error) = pass_events(events, &tx, &mut cut_rx, lifetime, charge).await {
                let _ = tx.send(Err(error)).await;
            }
            subscriptions.end(id, Instant::now());
            // The lease is released after this.
            drop(ended_tx);
        });
        Ok(ReceiverStream::new(rx))
    }

    /// Acquires a new subscription's lease: asks again while the leader answers that an older
    /// subscription is being taken over (one this node serves is cut at once) or that it is a
    /// new leader, for at most [`WAIT_AT_MOST`]. Returns the holder's deadline.
    async fn acquire_lease(
        &self,
        shard: &ShardRecord,
        request: &LeaseRequest,
        key: &Key,
        in_use: &str,
    ) -> Result<HolderDeadline, NotAcquired> {
        let router = &self.inner.router;
        let asked = Instant::now();
        loop {
            let sent = Instant::now();
            match router.subscription_lease(shard, request, 0).await? {
                LeaseAnswer::Held => return Ok(HolderDeadline::granted(sent)),
                LeaseAnswer::Wait(waiting) => {
                    if waiting == Waiting::TakingOver {
                        self.inner.subscriptions.cut_key(key, in_use);
                    }
                    if sent.saturating_duration_since(asked) >= WAIT_AT_MOST {
                        return Err(NotAcquired::WaitedTooLong);
                    }
                    tokio::time::sleep(ASK_AGAIN_EVERY).await;
                }
                refused => return Err(NotAcquired::Refused(refused)),
            }
        }
    }

    /// Renews subscription `id`'s lease every [`RENEW_EVERY`] until the subscription ends
    /// (`ended`), then releases it. Cuts the subscription when the leader answers that a newer
    /// one is taking over, when this node's catalog no longer has the consumer ACTIVE (it was
    /// deregistered through another node), and when its deadline passes without a renewal
    /// getting through (the leader cut off from this node, or no leader): the leader frees the
    /// lease only [`SAFETY_MARGIN`](crate::capacity::subscription_leases::SAFETY_MARGIN) later.
    /// Renewals and the release run one after the other (a renewal still under way at the
    /// deadline is waited for), so a late renewal never takes a released lease again.
    async fn keep_lease(self, mut lease: LeaseHandle, id: u64, mut ended: oneshot::Receiver<()>) {
        let router = &self.inner.router;
        let subscriptions = &self.inner.subscriptions;
        let mut next = Instant::now() + RENEW_EVERY;
        let mut cut = false;
        loop {
            let deadline = tokio::time::Instant::from_std(lease.deadline.until());
            tokio::select! {
                biased;
                _ = &mut ended => break,
                _ = tokio::time::sleep_until(deadline), if !cut => {
                    self.lease_lost(&lease, id);
                    cut = true;
                    continue;
                }
                _ = tokio::time::sleep_until(next.into()), if !cut => {}
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
                subscriptions.cut(id, ServiceError::ResourceInUse(reason));
                cut = true;
                continue;
            }
            let sent = Instant::now();
            next = sent + RENEW_EVERY;
            lease.request.op = LeaseOp::Renew {
                age: sent.saturating_duration_since(lease.started),
            };
            let renewal = router.subscription_lease(&lease.shard, &lease.request, 0);
            tokio::pin!(renewal);
            let answer = tokio::select! {
                biased;
                answer = &mut renewal => answer,
                _ = tokio::time::sleep_until(deadline) => {
                    self.lease_lost(&lease, id);
                    cut = true;
                    renewal.await
                }
            };
            match answer {
                Ok(LeaseAnswer::Held) => lease.deadline.renewed(sent),
                Ok(LeaseAnswer::TakenOver) => {
                    tracing::debug!(consumer = %arn, group = lease.shard.group, "subscription taken over");
                    subscriptions.cut(id, ServiceError::ResourceInUse(lease.in_use.clone()));
                    cut = true;
                }
                Ok(other) => {
                    tracing::warn!(answer = ?other, consumer = %arn, "unexpected answer to a lease renewal")
                }
                Err(e) => tracing::warn!(error = %e, consumer = %arn, "subscription lease not renewed"),
            }
        }
        lease.request.op = LeaseOp::Release;
        if let Err(e) = router.subscription_lease(&lease.shard, &lease.request, 0).await {
            // It expires at the leader instead.
            tracing::debug!(error = %e, "subscription lease not released");
        }
    }

    /// Ends subscription `id`: its lease could not be renewed in time.
    fn lease_lost(&self, lease: &LeaseHandle, id: u64) {
        tracing::warn!(
            consumer = %lease.request.key.consumer,
            shard = %lease.shard_id,
            "subscription ended: its lease was not renewed in time"
        );
        self.inner.subscriptions.cut(id, lease.lost());
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

    fn in_use(reason: &str) -> ServiceError {
        ServiceError::ResourceInUse(reason.into())
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
        assert_eq!(rx1.try_recv().unwrap(), in_use("taken over"));
        assert!(rx2.try_recv().is_err());
        // A renewal answered "taken over" cuts one subscription; a lost lease likewise.
        subs.cut(3, ServiceError::Internal("lost".into()));
        assert_eq!(rx3.try_recv().unwrap(), ServiceError::Internal("lost".into()));
        assert!(rx2.try_recv().is_err());
        // A takeover waiting for the lease cuts the one this node serves.
        subs.cut_key(&key("b"), "taking over");
        assert_eq!(rx2.try_recv().unwrap(), in_use("taking over"));
    }

    fn event(n: usize) -> Result<SubscribeEvent, ServiceError> {
        Ok(SubscribeEvent {
            records: Vec::new(),
            continuation: Some(crate::shard::Cursor::entry_start(n as u64 + 1)),
            millis_behind_latest: 0,
            child_shards: Vec::new(),
        })
    }

    #[tokio::test]
    async fn nothing_is_passed_on_after_a_cut_even_to_a_slow_subscriber() {
        let (source, events) = mpsc::channel(8);
        for n in 0..8 {
            source.send(event(n)).await.unwrap();
        }
        // The subscriber reads nothing: the second event waits for room when the cut comes.
        let (tx, mut rx) = mpsc::channel(1);
        let (cut_tx, mut cut) = oneshot::channel();
        let passing = tokio::spawn(async move {
            let events = ReceiverStream::new(events);
            let last = pass_events(events, &tx, &mut cut, Duration::from_secs(3_600), |_| {
                Duration::ZERO
            })
            .await;
            (last, tx)
        });
        while source.capacity() < 2 {
            tokio::task::yield_now().await;
        }
        cut_tx.send(in_use("taken over")).unwrap();
        let (last, _tx) = passing.await.unwrap();
        assert_eq!(last, Some(in_use("taken over")));
        // Only what was passed on before the cut reaches the subscriber.
        assert!(rx.recv().await.unwrap().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_cut_ends_the_wait_of_a_paced_subscription() {
        let (source, events) = mpsc::channel(8);
        source.send(event(0)).await.unwrap();
        source.send(event(1)).await.unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let (cut_tx, mut cut) = oneshot::channel();
        // In debt for an hour after the first event.
        let passing = tokio::spawn(async move {
            let events = ReceiverStream::new(events);
            let last = pass_events(events, &tx, &mut cut, Duration::from_secs(7_200), |_| {
                Duration::from_secs(3_600)
            })
            .await;
            (last, tx)
        });
        assert!(rx.recv().await.unwrap().is_ok());
        cut_tx.send(ServiceError::Internal("lost".into())).unwrap();
        let (last, _tx) = passing.await.unwrap();
        assert_eq!(last, Some(ServiceError::Internal("lost".into())));
        assert!(rx.try_recv().is_err());
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
        assert_eq!(rx1.try_recv().unwrap(), in_use("gone"));
        assert_eq!(rx2.try_recv().unwrap(), in_use("gone"));
    }
}
