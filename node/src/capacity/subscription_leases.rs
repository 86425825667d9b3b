//! The leases of enhanced fan-out subscriptions, kept by a shard's leader: one subscription per
//! consumer and shard in the whole cluster, whichever node serves it. Pure: time is an argument,
//! the shard router does the I/O.
//!
//! AWS: a second SubscribeToShard of the same consumer and shard within 5 seconds of a
//! successful one fails with ResourceInUseException; 5 seconds or more after, it takes over and
//! the older subscription ends with a ResourceInUseException event.
//!
//! The node serving a subscription acquires its lease, renews it every [`RENEW_EVERY`] while
//! the subscription lives and releases it when it ends. A lease not renewed for
//! [`EXPIRES_AFTER`] (its node crashed or is cut off) is free. A holder learns that a newer
//! subscription took over at its next renewal ([`LeaseAnswer::TakenOver`]). The table lives in
//! the leader's memory only: a new leader starts empty and renewals fill it again; when two
//! holders renew the same lease there (an old leader let one take over from the other and
//! the older one did not hear of it yet), the newer one keeps it, as on the old leader.

use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

/// How long after a successful subscription a second one is refused rather than taking over.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);
/// How often the serving node renews a subscription's lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A lease not renewed for this long is free (three missed renewals, and some slack).
pub const EXPIRES_AFTER: Duration = Duration::from_secs(4);

/// A consumer's lease on a shard.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseKey {
    /// The shard's Raft group id (never reused).
    pub group: u64,
    /// The consumer's ARN, which names its creation time (a newer namesake is another
    /// consumer).
    pub consumer: String,
}

/// A subscription: the node serving it and its id there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Holder {
    pub node: u64,
    pub subscription: u64,
}

/// What the serving node asks of a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseOp {
    /// For a new subscription, within SubscribeToShard's per-second limit when `limit_rate`.
    Acquire { limit_rate: bool },
    /// While the subscription lives; `age` is how long ago it started.
    Renew { age: Duration },
    /// The subscription ended.
    Release,
}

/// A lease request of the node serving a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRequest {
    pub key: LeaseKey,
    pub holder: Holder,
    pub op: LeaseOp,
}

/// The leader's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseAnswer {
    /// The subscription holds the lease (also the answer to a release).
    Held,
    /// Refused: the current holder started less than [`TAKEOVER_AFTER`] ago.
    InUse,
    /// Refused: over SubscribeToShard's calls per second for the consumer and shard.
    RateExceeded,
    /// A newer subscription holds the lease: the renewing one must end.
    TakenOver,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    holder: Holder,
    started: Instant,
    renewed: Instant,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.renewed) < EXPIRES_AFTER
    }
}

/// The leases of the shards this node leads.
#[derive(Debug, Default)]
pub struct SubscriptionLeases {
    leases: HashMap<LeaseKey, Lease>,
}

impl SubscriptionLeases {
    /// Whether `holder` holds the live lease `key` (an acquire retried after a lost answer).
    pub fn held_by(&self, key: &LeaseKey, holder: Holder, now: Instant) -> bool {
        self.leases
            .get(key)
            .is_some_and(|l| l.holder == holder && l.live(now))
    }

    /// A new subscription: it takes the lease unless a live one started less than
    /// [`TAKEOVER_AFTER`] ago (then [`LeaseAnswer::InUse`]). An older holder is told at its next
    /// renewal.
    pub fn acquire(&mut self, key: &LeaseKey, holder: Holder, now: Instant) -> LeaseAnswer {
        self.leases.retain(|_, l| l.live(now));
        if let Some(current) = self.leases.get(key)
            && current.holder != holder
            && now.saturating_duration_since(current.started) < TAKEOVER_AFTER
        {
            return LeaseAnswer::InUse;
        }
        let lease = Lease {
            holder,
            started: now,
            renewed: now,
        };
        self.leases.insert(key.clone(), lease);
        LeaseAnswer::Held
    }

    /// A renewal by a subscription that started `age` ago. The holder keeps its lease; a free
    /// (unknown or expired) lease is taken again; another live holder keeps it if it is the
    /// newer one ([`LeaseAnswer::TakenOver`]), otherwise the renewing one takes it.
    pub fn renew(&mut self, key: &LeaseKey, holder: Holder, age: Duration, now: Instant) -> LeaseAnswer {
        let started = now.checked_sub(age).unwrap_or(now);
        match self.leases.get_mut(key) {
            Some(current) if current.holder == holder => {
                current.renewed = now;
                LeaseAnswer::Held
            }
            Some(current) if current.live(now) && current.started >= started => LeaseAnswer::TakenOver,
            _ => {
                let lease = Lease {
                    holder,
                    started,
                    renewed: now,
                };
                self.leases.insert(key.clone(), lease);
                LeaseAnswer::Held
            }
        }
    }

    /// The subscription ended: its lease is free (nothing happens if another holds it).
    pub fn release(&mut self, key: &LeaseKey, holder: Holder) {
        if self.leases.get(key).is_some_and(|l| l.holder == holder) {
            self.leases.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: u64) -> LeaseKey {
        LeaseKey {
            group,
            consumer: "arn:aws:kinesis:us-east-1:0:stream/s/consumer/c:1".into(),
        }
    }

    fn holder(node: u64, subscription: u64) -> Holder {
        Holder { node, subscription }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_second_subscription_is_refused_then_takes_over() {
        let mut t = SubscriptionLeases::default();
        let t0 = Instant::now();
        let (a, b) = (holder(1, 1), holder(2, 1));
        assert_eq!(t.acquire(&key(1), a, t0), LeaseAnswer::Held);
        // Within 5 s, even from another node: refused; the first one keeps its lease.
        assert_eq!(t.acquire(&key(1), b, t0 + SECOND), LeaseAnswer::InUse);
        assert_eq!(t.renew(&key(1), a, SECOND, t0 + SECOND), LeaseAnswer::Held);
        // Another shard of the same consumer is independent.
        assert_eq!(t.acquire(&key(2), b, t0 + SECOND), LeaseAnswer::Held);
        // At 5 s the new one takes over; the old one hears it at its next renewal.
        let later = t0 + TAKEOVER_AFTER;
        assert_eq!(t.acquire(&key(1), b, later), LeaseAnswer::Held);
        assert!(t.held_by(&key(1), b, later));
        assert_eq!(t.renew(&key(1), a, TAKEOVER_AFTER, later), LeaseAnswer::TakenOver);
        // The old one releasing does not free the new one's lease.
        t.release(&key(1), a);
        assert_eq!(t.acquire(&key(1), holder(3, 1), later), LeaseAnswer::InUse);
        t.release(&key(1), b);
        assert_eq!(t.acquire(&key(1), holder(3, 1), later), LeaseAnswer::Held);
    }

    #[test]
    fn an_acquire_retried_by_its_holder_keeps_the_lease() {
        let mut t = SubscriptionLeases::default();
        let t0 = Instant::now();
        assert_eq!(t.acquire(&key(1), holder(1, 7), t0), LeaseAnswer::Held);
        assert!(t.held_by(&key(1), holder(1, 7), t0 + SECOND));
        assert_eq!(t.acquire(&key(1), holder(1, 7), t0 + SECOND), LeaseAnswer::Held);
        assert!(!t.held_by(&key(1), holder(1, 8), t0 + SECOND));
    }

    #[test]
    fn a_lease_not_renewed_expires() {
        let mut t = SubscriptionLeases::default();
        let t0 = Instant::now();
        let (a, b) = (holder(1, 1), holder(2, 1));
        assert_eq!(t.acquire(&key(1), a, t0), LeaseAnswer::Held);
        assert_eq!(t.acquire(&key(1), b, t0 + SECOND), LeaseAnswer::InUse);
        // Never renewed (its node crashed): free once expired, before the 5 s of a takeover.
        assert!(EXPIRES_AFTER < TAKEOVER_AFTER);
        let expired = t0 + EXPIRES_AFTER;
        assert!(!t.held_by(&key(1), a, expired));
        assert_eq!(t.acquire(&key(1), b, expired), LeaseAnswer::Held);
        // A renewed lease does not expire.
        assert_eq!(
            t.renew(&key(1), b, 3 * SECOND, expired + 3 * SECOND),
            LeaseAnswer::Held
        );
        assert!(t.held_by(&key(1), b, expired + 6 * SECOND));
        // Expired leases are swept by the next acquire.
        let much_later = expired + 20 * SECOND;
        assert_eq!(t.acquire(&key(2), b, much_later), LeaseAnswer::Held);
        assert_eq!(t.leases.len(), 1);
        // A holder back after its lease expired and was taken is told it was taken over.
        assert_eq!(
            t.renew(&key(2), a, 30 * SECOND, much_later),
            LeaseAnswer::TakenOver
        );
    }

    #[test]
    fn a_holder_whose_lease_expired_unclaimed_takes_it_again() {
        let mut t = SubscriptionLeases::default();
        let t0 = Instant::now();
        let a = holder(1, 1);
        assert_eq!(t.acquire(&key(1), a, t0), LeaseAnswer::Held);
        let back = t0 + 10 * SECOND;
        assert_eq!(t.renew(&key(1), a, 10 * SECOND, back), LeaseAnswer::Held);
        assert!(t.held_by(&key(1), a, back));
    }

    #[test]
    fn a_new_leader_learns_leases_from_renewals_and_the_newer_holder_wins() {
        // The old leader let `newer` take over from `older`; `older` has not heard of it yet.
        let mut t = SubscriptionLeases::default();
        let t0 = Instant::now() + 60 * SECOND;
        let (older, newer) = (holder(1, 1), holder(2, 1));
        // The older one renews first: the empty table takes it.
        assert_eq!(t.renew(&key(1), older, 30 * SECOND, t0), LeaseAnswer::Held);
        // The newer one renews: it keeps the lease, the older one is told at its next renewal.
        assert_eq!(t.renew(&key(1), newer, 2 * SECOND, t0), LeaseAnswer::Held);
        let next = t0 + SECOND;
        assert_eq!(t.renew(&key(1), older, 31 * SECOND, next), LeaseAnswer::TakenOver);
        assert_eq!(t.renew(&key(1), newer, 3 * SECOND, next), LeaseAnswer::Held);
        // The 5-second rule counts from the holder's start, not from the leader change.
        assert_eq!(t.acquire(&key(1), holder(3, 1), next), LeaseAnswer::InUse);
        assert_eq!(
            t.acquire(&key(1), holder(3, 1), t0 + 3 * SECOND),
            LeaseAnswer::Held
        );
    }
}
