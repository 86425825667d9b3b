//! The leases of enhanced fan-out subscriptions, kept by a shard's leader: one subscription per
//! consumer and shard in the whole cluster, whichever node serves it. Pure: time and the
//! leader's term are arguments, the shard router does the I/O.
//!
//! AWS: a second SubscribeToShard of the same consumer and shard within 5 seconds of a
//! successful one fails with ResourceInUseException; 5 seconds or more after, it takes over and
//! the older subscription ends with a ResourceInUseException event.
//!
//! The node serving a subscription acquires its lease, renews it every [`RENEW_EVERY`] while
//! the subscription lives and releases it when it ends. The classic lease rule keeps two
//! subscriptions from ever being served at once:
//!
//! - **The grantor** ([`SubscriptionLeases`]) considers a lease free only once it was released,
//!   or [`EXPIRES_AFTER`] after the last renewal it accepted. A takeover (a new subscription 5 s
//!   or more after the holder's start) does not take the lease from a live holder: the holder
//!   is told at its next renewal ([`LeaseAnswer::TakenOver`]), ends and releases, and the new
//!   subscription waits for that ([`LeaseAnswer::Wait`]) or for the lease to expire.
//! - **The holder** ([`HolderDeadline`]) stops serving [`HOLD_FOR`] after *sending* the last
//!   request the leader granted or renewed, unless a later one was accepted meanwhile. The
//!   leader accepted it no earlier than it was sent, so the holder stops [`SAFETY_MARGIN`]
//!   before the leader could consider the lease expired.
//! - **A new leader** starts with an empty table (it lives in the leader's memory only): until
//!   [`LEADER_GRACE`] (a full lease duration) has passed since it first acted as leader in its
//!   term, it grants no lease that no live holder renewed (an earlier leader may have granted
//!   it; that holder's deadline has passed by then). Renewals re-create their leases at once,
//!   with the subscription's start, so the 5-second rule still counts from it. The leader
//!   applies each request only after confirming its leadership (a lease read), so a request a
//!   deposed leader accepted was sent before any later leader took over.

use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

/// How long after a successful subscription a second one is refused rather than taking over.
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(5);
/// How often the serving node renews a subscription's lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A lease not renewed for this long is free at the leader (its holder crashed or is cut off).
pub const EXPIRES_AFTER: Duration = Duration::from_secs(5);
/// How much sooner than the leader the holder gives its lease up: covers clocks that run at
/// slightly different rates on different hosts and the events already on their way when the
/// holder stops.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(1);
/// How long the holder may serve after sending a request that the leader granted or renewed
/// (three missed renewals).
pub const HOLD_FOR: Duration = EXPIRES_AFTER.saturating_sub(SAFETY_MARGIN);
/// How long a new leader grants no lease that no live holder renewed: every lease an earlier
/// leader accepted has expired at its holder by then.
pub const LEADER_GRACE: Duration = EXPIRES_AFTER;
/// How often a waiting acquire asks again.
pub const ASK_AGAIN_EVERY: Duration = Duration::from_millis(100);
/// How long a new subscription waits for its lease before it is refused: a new leader's grace,
/// then the expiry of a holder that renewed at its end, and some renewals.
pub const WAIT_AT_MOST: Duration =
    Duration::from_secs(LEADER_GRACE.as_secs() + EXPIRES_AFTER.as_secs() + 2 * RENEW_EVERY.as_secs());

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
    /// `waits`: the serving node asks again after [`LeaseAnswer::Wait`] (nodes that predate it
    /// do not, and are answered [`LeaseAnswer::InUse`] instead).
    Acquire { limit_rate: bool, waits: bool },
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

/// Why an acquire must wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// The live holder started [`TAKEOVER_AFTER`] or more ago: it is told to end at its next
    /// renewal, and the lease is free once it releases it or it expires.
    TakingOver,
    /// The leader is new: a holder an earlier leader granted the lease to may not have renewed
    /// here yet.
    NewLeader,
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
    /// A newer subscription holds or is taking the lease: the renewing one must end.
    TakenOver,
    /// Not yet: ask again (every [`ASK_AGAIN_EVERY`]).
    Wait(Waiting),
}

/// A request from a leadership older than the one the table follows (it was confirmed before
/// a newer term's request was applied): not applied, the request goes to the current leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a subscription lease request of term {term}, older than the leader's term {current}")]
pub struct StaleTerm {
    pub term: u64,
    pub current: u64,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    holder: Holder,
    started: Instant,
    renewed: Instant,
    /// A newer subscription is taking over: the holder is told at its next renewal.
    superseded: bool,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.renewed) < EXPIRES_AFTER
    }
}

/// The latest acquire that was told to wait.
#[derive(Clone, Copy, Debug)]
struct Waiter {
    holder: Holder,
    asked: Instant,
}

/// The leadership a group's leases were granted under.
#[derive(Clone, Copy, Debug)]
struct Leading {
    term: u64,
    /// When this node first acted as the group's leader in `term`.
    since: Instant,
}

/// The leases of the shards this node leads.
#[derive(Debug, Default)]
pub struct SubscriptionLeases {
    /// [`LEADER_GRACE`] in a cluster; zero when every holder is in this process (standalone:
    /// they all ended with the process that granted their leases).
    grace: Duration,
    leases: HashMap<LeaseKey, Lease>,
    waiting: HashMap<LeaseKey, Waiter>,
    terms: HashMap<u64, Leading>,
}

impl SubscriptionLeases {
    pub fn new(grace: Duration) -> SubscriptionLeases {
        SubscriptionLeases {
            grace,
            ..SubscriptionLeases::default()
        }
    }

    /// Follows the group's leadership: a newer term starts an empty table for the group (a
    /// node that led the group before keeps nothing of that time).
    fn lead(&mut self, group: u64, term: u64, now: Instant) -> Result<(), StaleTerm> {
        match self.terms.get(&group) {
            Some(l) if l.term == term => Ok(()),
            Some(l) if l.term > term => Err(StaleTerm {
                term,
                current: l.term,
            }),
            _ => {
                self.leases.retain(|k, _| k.group != group);
                self.waiting.retain(|k, _| k.group != group);
                self.terms.insert(group, Leading { term, since: now });
                Ok(())
            }
        }
    }

    fn in_grace(&self, group: u64, now: Instant) -> bool {
        self.terms
            .get(&group)
            .is_some_and(|l| now.saturating_duration_since(l.since) < self.grace)
    }

    /// Forgets expired leases and waiters that stopped asking.
    fn sweep(&mut self, now: Instant) {
        self.leases.retain(|_, l| l.live(now));
        self.waiting
            .retain(|_, w| now.saturating_duration_since(w.asked) < EXPIRES_AFTER);
    }

    /// Whether `holder` asked for `key` before: it holds the live lease (an acquire retried
    /// after a lost answer) or is the one waiting for it. Such an acquire is not another
    /// SubscribeToShard call.
    pub fn asked_before(
        &mut self,
        key: &LeaseKey,
        holder: Holder,
        term: u64,
        now: Instant,
    ) -> Result<bool, StaleTerm> {
        self.lead(key.group, term, now)?;
        let holds = self
            .leases
            .get(key)
            .is_some_and(|l| l.holder == holder && l.live(now));
        let waits = self.waiting.get(key).is_some_and(|w| w.holder == holder);
        Ok(holds || waits)
    }

    /// A new subscription. It gets a free lease at once, unless the leader is new. A live lease
    /// of another holder that started less than [`TAKEOVER_AFTER`] ago refuses it
    /// ([`LeaseAnswer::InUse`]); an older one is being taken over: its holder is told at its next
    /// renewal and the new subscription waits until the lease is released or expires.
    pub fn acquire(
        &mut self,
        key: &LeaseKey,
        holder: Holder,
        term: u64,
        now: Instant,
    ) -> Result<LeaseAnswer, StaleTerm> {
        self.lead(key.group, term, now)?;
        self.sweep(now);
        let in_grace = self.in_grace(key.group, now);
        let answer = match self.leases.get_mut(key) {
            Some(current) if current.holder == holder => LeaseAnswer::Held,
            Some(current) if now.saturating_duration_since(current.started) < TAKEOVER_AFTER => {
                LeaseAnswer::InUse
            }
            Some(current) => {
                current.superseded = true;
                LeaseAnswer::Wait(Waiting::TakingOver)
            }
            None if in_grace => LeaseAnswer::Wait(Waiting::NewLeader),
            None => {
                let lease = Lease {
                    holder,
                    started: now,
                    renewed: now,
                    superseded: false,
                };
                self.leases.insert(key.clone(), lease);
                LeaseAnswer::Held
            }
        };
        match answer {
            LeaseAnswer::Wait(_) => {
                self.waiting.insert(key.clone(), Waiter { holder, asked: now });
            }
            _ => {
                if self.waiting.get(key).is_some_and(|w| w.holder == holder) {
                    self.waiting.remove(key);
                }
            }
        }
        Ok(answer)
    }

    /// A renewal by a subscription that started `age` ago. The holder keeps its lease unless it
    /// is being taken over ([`LeaseAnswer::TakenOver`]: it must end). A free (unknown or
    /// expired) lease is taken again: a new leader learns its leases this way. Another live
    /// holder keeps the lease if it is the newer one ([`LeaseAnswer::TakenOver`]), otherwise
    /// the renewing one takes it.
    pub fn renew(
        &mut self,
        key: &LeaseKey,
        holder: Holder,
        age: Duration,
        term: u64,
        now: Instant,
    ) -> Result<LeaseAnswer, StaleTerm> {
        self.lead(key.group, term, now)?;
        let started = now.checked_sub(age).unwrap_or(now);
        Ok(match self.leases.get_mut(key) {
            Some(current) if current.holder == holder => {
                if current.superseded {
                    LeaseAnswer::TakenOver
                } else {
                    current.renewed = now;
                    LeaseAnswer::Held
                }
            }
            Some(current) if current.live(now) && current.started >= started => LeaseAnswer::TakenOver,
            _ => {
                let lease = Lease {
                    holder,
                    started,
                    renewed: now,
                    superseded: false,
                };
                self.leases.insert(key.clone(), lease);
                LeaseAnswer::Held
            }
        })
    }

    /// The subscription ended: its lease is free (nothing happens if another holds it).
    pub fn release(
        &mut self,
        key: &LeaseKey,
        holder: Holder,
        term: u64,
        now: Instant,
    ) -> Result<(), StaleTerm> {
        self.lead(key.group, term, now)?;
        if self.leases.get(key).is_some_and(|l| l.holder == holder) {
            self.leases.remove(key);
        }
        Ok(())
    }
}

/// The holder's side of its lease: when the serving node must stop serving the subscription.
/// [`HOLD_FOR`] after sending the last acquire or renewal the leader answered
/// [`LeaseAnswer::Held`] — from when it was sent, not when the answer came, since the leader may
/// have applied it at any moment in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HolderDeadline {
    until: Instant,
}

impl HolderDeadline {
    /// The acquire sent at `sent` was granted.
    pub fn granted(sent: Instant) -> HolderDeadline {
        HolderDeadline {
            until: sent + HOLD_FOR,
        }
    }

    /// The renewal sent at `sent` was accepted (answers may arrive out of order: an older one
    /// never shortens the deadline).
    pub fn renewed(&mut self, sent: Instant) {
        self.until = self.until.max(sent + HOLD_FOR);
    }

    /// The moment the subscription must have ended by.
    pub fn until(&self) -> Instant {
        self.until
    }

    pub fn passed(&self, now: Instant) -> bool {
        now >= self.until
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
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
    const MS: Duration = Duration::from_millis(1);
    /// The leader's term in tests that do not change leaders.
    const T: u64 = 3;

    /// A table of a cluster whose grace period is long over at `t0`.
    fn settled() -> (SubscriptionLeases, Instant) {
        let mut t = SubscriptionLeases::new(LEADER_GRACE);
        let start = Instant::now();
        for group in 1..=3 {
            t.lead(group, T, start).unwrap();
        }
        (t, start + LEADER_GRACE)
    }

    #[test]
    fn the_holder_stops_before_the_leader_frees_the_lease() {
        assert!(HOLD_FOR + SAFETY_MARGIN == EXPIRES_AFTER);
        assert!(HOLD_FOR >= 3 * RENEW_EVERY, "a holder survives two lost renewals");
        assert!(LEADER_GRACE >= EXPIRES_AFTER);
        let t0 = Instant::now();
        let mut d = HolderDeadline::granted(t0);
        assert_eq!(d.until(), t0 + HOLD_FOR);
        assert!(!d.passed(t0 + HOLD_FOR - MS));
        assert!(d.passed(t0 + HOLD_FOR));
        // Counted from sending: a late answer does not stretch it.
        d.renewed(t0 + SECOND);
        assert_eq!(d.until(), t0 + SECOND + HOLD_FOR);
        // An older renewal's answer arriving last does not shorten it.
        d.renewed(t0 + MS);
        assert_eq!(d.until(), t0 + SECOND + HOLD_FOR);
    }

    #[test]
    fn a_second_subscription_is_refused_then_takes_over_once_the_first_ended() {
        let (mut t, t0) = settled();
        let (a, b) = (holder(1, 1), holder(2, 1));
        assert_eq!(t.acquire(&key(1), a, T, t0), Ok(LeaseAnswer::Held));
        // Within 5 s, even from another node: refused; the first one keeps its lease.
        assert_eq!(t.acquire(&key(1), b, T, t0 + SECOND), Ok(LeaseAnswer::InUse));
        assert_eq!(t.renew(&key(1), a, SECOND, T, t0 + SECOND), Ok(LeaseAnswer::Held));
        // Another shard of the same consumer is independent.
        assert_eq!(t.acquire(&key(2), b, T, t0 + SECOND), Ok(LeaseAnswer::Held));
        // At 5 s the new one takes over: it waits while the old one is told at its renewal.
        let later = t0 + TAKEOVER_AFTER;
        let taking = Ok(LeaseAnswer::Wait(Waiting::TakingOver));
        assert_eq!(t.acquire(&key(1), b, T, later), taking);
        assert!(t.asked_before(&key(1), b, T, later).unwrap());
        assert_eq!(t.acquire(&key(1), b, T, later + 100 * MS), taking);
        assert_eq!(
            t.renew(&key(1), a, TAKEOVER_AFTER, T, later + 200 * MS),
            Ok(LeaseAnswer::TakenOver)
        );
        // Still a's until it says it stopped.
        assert_eq!(t.acquire(&key(1), b, T, later + 300 * MS), taking);
        t.release(&key(1), a, T, later + 400 * MS).unwrap();
        assert_eq!(t.acquire(&key(1), b, T, later + 500 * MS), Ok(LeaseAnswer::Held));
        assert!(!t.asked_before(&key(1), a, T, later + 500 * MS).unwrap());
        // The old one releasing again does not free the new one's lease.
        t.release(&key(1), a, T, later + 500 * MS).unwrap();
        assert_eq!(
            t.acquire(&key(1), holder(3, 1), T, later + 600 * MS),
            Ok(LeaseAnswer::InUse)
        );
        t.release(&key(1), b, T, later + 600 * MS).unwrap();
        assert_eq!(
            t.acquire(&key(1), holder(3, 1), T, later + 600 * MS),
            Ok(LeaseAnswer::Held)
        );
    }

    #[test]
    fn an_acquire_retried_by_its_holder_keeps_the_lease() {
        let (mut t, t0) = settled();
        assert_eq!(t.acquire(&key(1), holder(1, 7), T, t0), Ok(LeaseAnswer::Held));
        assert!(t.asked_before(&key(1), holder(1, 7), T, t0 + SECOND).unwrap());
        assert_eq!(
            t.acquire(&key(1), holder(1, 7), T, t0 + SECOND),
            Ok(LeaseAnswer::Held)
        );
        assert!(!t.asked_before(&key(1), holder(1, 8), T, t0 + SECOND).unwrap());
    }

    #[test]
    fn a_lease_not_renewed_expires_and_a_takeover_waits_for_it() {
        let (mut t, t0) = settled();
        let (a, b) = (holder(1, 1), holder(2, 1));
        assert_eq!(t.acquire(&key(1), a, T, t0), Ok(LeaseAnswer::Held));
        assert_eq!(
            t.renew(&key(1), a, 3 * SECOND, T, t0 + 3 * SECOND),
            Ok(LeaseAnswer::Held)
        );
        // a's node is cut off after that renewal. At 5 s b takes over: it waits, although a
        // will never hear of it.
        let taking = Ok(LeaseAnswer::Wait(Waiting::TakingOver));
        assert_eq!(t.acquire(&key(1), b, T, t0 + TAKEOVER_AFTER), taking);
        let expired = t0 + 3 * SECOND + EXPIRES_AFTER;
        assert_eq!(t.acquire(&key(1), b, T, expired - MS), taking);
        assert_eq!(t.acquire(&key(1), b, T, expired), Ok(LeaseAnswer::Held));
        // Expired leases are swept by the next acquire.
        let much_later = expired + 20 * SECOND;
        assert_eq!(t.acquire(&key(2), b, T, much_later), Ok(LeaseAnswer::Held));
        assert_eq!(t.leases.len(), 1);
        // A holder back after its lease expired and was taken is told it was taken over.
        assert_eq!(
            t.renew(&key(2), a, 30 * SECOND, T, much_later),
            Ok(LeaseAnswer::TakenOver)
        );
    }

    #[test]
    fn a_holder_whose_lease_expired_unclaimed_takes_it_again() {
        let (mut t, t0) = settled();
        let a = holder(1, 1);
        assert_eq!(t.acquire(&key(1), a, T, t0), Ok(LeaseAnswer::Held));
        // A renewal sent in time arrived late: nobody took the lease meanwhile.
        let back = t0 + 10 * SECOND;
        assert_eq!(t.renew(&key(1), a, 10 * SECOND, T, back), Ok(LeaseAnswer::Held));
        assert!(t.asked_before(&key(1), a, T, back).unwrap());
    }

    #[test]
    fn a_waiter_that_stops_asking_is_forgotten() {
        let (mut t, t0) = settled();
        let (a, b) = (holder(1, 1), holder(2, 1));
        assert_eq!(t.acquire(&key(1), a, T, t0), Ok(LeaseAnswer::Held));
        let later = t0 + TAKEOVER_AFTER;
        assert_eq!(
            t.renew(&key(1), a, 4 * SECOND, T, later - SECOND),
            Ok(LeaseAnswer::Held)
        );
        assert_eq!(
            t.acquire(&key(1), b, T, later),
            Ok(LeaseAnswer::Wait(Waiting::TakingOver))
        );
        // b's client went away. a keeps renewing: it is still told to end (b's call took over).
        assert_eq!(
            t.renew(&key(1), a, TAKEOVER_AFTER, T, later),
            Ok(LeaseAnswer::TakenOver)
        );
        t.release(&key(1), a, T, later + SECOND).unwrap();
        let gone = later + EXPIRES_AFTER;
        assert_eq!(t.acquire(&key(2), a, T, gone), Ok(LeaseAnswer::Held));
        assert!(t.waiting.is_empty());
        assert!(!t.asked_before(&key(1), b, T, gone).unwrap());
    }

    #[test]
    fn a_new_leader_grants_only_renewed_leases_during_its_grace() {
        let mut t = SubscriptionLeases::new(LEADER_GRACE);
        let b0 = Instant::now() + 60 * SECOND;
        let (a, b, c) = (holder(1, 1), holder(2, 1), holder(3, 1));
        // A subscription nobody here knows of may live: a new subscription waits.
        let new_leader = Ok(LeaseAnswer::Wait(Waiting::NewLeader));
        assert_eq!(t.acquire(&key(1), b, 7, b0), new_leader);
        assert!(t.asked_before(&key(1), b, 7, b0).unwrap());
        // A live holder renews: its lease is re-created at once, with its start.
        assert_eq!(
            t.renew(&key(1), a, 30 * SECOND, 7, b0 + SECOND),
            Ok(LeaseAnswer::Held)
        );
        // The waiting one now meets a lease it can take over, once a has ended.
        assert_eq!(
            t.acquire(&key(1), b, 7, b0 + 2 * SECOND),
            Ok(LeaseAnswer::Wait(Waiting::TakingOver))
        );
        assert_eq!(
            t.renew(&key(1), a, 32 * SECOND, 7, b0 + 2 * SECOND),
            Ok(LeaseAnswer::TakenOver)
        );
        t.release(&key(1), a, 7, b0 + 2 * SECOND).unwrap();
        // The grace still holds: a could have been one of two holders.
        assert_eq!(t.acquire(&key(1), b, 7, b0 + 3 * SECOND), new_leader);
        // A lease nobody renewed is granted once a full lease duration has passed.
        assert_eq!(t.acquire(&key(1), b, 7, b0 + LEADER_GRACE), Ok(LeaseAnswer::Held));
        let other = LeaseKey {
            group: 1,
            consumer: "arn:aws:kinesis:us-east-1:0:stream/s/consumer/d:1".into(),
        };
        assert_eq!(t.acquire(&other, c, 7, b0 + LEADER_GRACE), Ok(LeaseAnswer::Held));
        // Another group's grace counts from when this node first led it.
        assert_eq!(
            t.acquire(&key(2), c, 7, b0 + LEADER_GRACE),
            Ok(LeaseAnswer::Wait(Waiting::NewLeader))
        );
        // The 5-second rule counts from the holder's start, not from the leader change.
        let mut t = SubscriptionLeases::new(LEADER_GRACE);
        assert_eq!(t.renew(&key(1), a, 2 * SECOND, 7, b0), Ok(LeaseAnswer::Held));
        assert_eq!(t.acquire(&key(1), c, 7, b0 + 2 * SECOND), Ok(LeaseAnswer::InUse));
        assert_eq!(
            t.acquire(&key(1), c, 7, b0 + 3 * SECOND),
            Ok(LeaseAnswer::Wait(Waiting::TakingOver))
        );
    }

    #[test]
    fn without_a_grace_a_restarted_standalone_node_grants_at_once() {
        let mut t = SubscriptionLeases::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(t.acquire(&key(1), holder(1, 1), 1, t0), Ok(LeaseAnswer::Held));
    }

    #[test]
    fn two_holders_renewing_at_a_new_leader_leave_the_newer_one() {
        // Only possible with a leader that predates the waiting takeover: it let `newer` take
        // over while `older` still served.
        let mut t = SubscriptionLeases::new(LEADER_GRACE);
        let t0 = Instant::now() + 60 * SECOND;
        let (older, newer) = (holder(1, 1), holder(2, 1));
        assert_eq!(t.renew(&key(1), older, 30 * SECOND, 7, t0), Ok(LeaseAnswer::Held));
        assert_eq!(t.renew(&key(1), newer, 2 * SECOND, 7, t0), Ok(LeaseAnswer::Held));
        let next = t0 + SECOND;
        assert_eq!(
            t.renew(&key(1), older, 31 * SECOND, 7, next),
            Ok(LeaseAnswer::TakenOver)
        );
        assert_eq!(
            t.renew(&key(1), newer, 3 * SECOND, 7, next),
            Ok(LeaseAnswer::Held)
        );
    }

    #[test]
    fn a_newer_term_starts_afresh_and_an_older_one_is_refused() {
        let mut t = SubscriptionLeases::new(LEADER_GRACE);
        let t0 = Instant::now();
        let (a, b) = (holder(1, 1), holder(2, 1));
        t.lead(1, 4, t0).unwrap();
        let settled = t0 + LEADER_GRACE;
        assert_eq!(t.acquire(&key(1), a, 4, settled), Ok(LeaseAnswer::Held));
        // This node lost the group and leads it again in term 6: what it granted in term 4
        // may have been released and granted again by the leader of term 5.
        let back = settled + SECOND;
        assert_eq!(
            t.acquire(&key(1), b, 6, back),
            Ok(LeaseAnswer::Wait(Waiting::NewLeader))
        );
        assert!(!t.asked_before(&key(1), a, 6, back).unwrap());
        // A request confirmed under term 4 and applied late is not applied.
        let stale = Err(StaleTerm { term: 4, current: 6 });
        assert_eq!(t.renew(&key(1), a, 6 * SECOND, 4, back), stale);
        assert_eq!(
            t.release(&key(1), a, 4, back),
            Err(StaleTerm { term: 4, current: 6 })
        );
        // Other groups are not affected by the change of group 1's leader.
        t.lead(2, 4, t0).unwrap();
        assert_eq!(t.acquire(&key(2), a, 4, back), Ok(LeaseAnswer::Held));
    }

    /// A holder renewing through a leader that is cut off from it, or replaced, at any moment;
    /// another subscription asking all along. Whatever the delays, the other one is granted only
    /// once the holder's deadline has passed. Events are played in time order: a's renewals
    /// (each reaches the leader and its answer comes back after random delays, or is lost once
    /// a is cut off), b's acquires every 100 ms, and in half of the rounds a second leader
    /// (empty table) replacing the first at a random moment. A deposed leader answers nothing
    /// (it confirms its leadership first): requests arriving after the change go to the new one.
    #[test]
    fn no_lease_is_granted_while_its_holder_may_still_serve() {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
        enum Event {
            /// a sends its renewal (if it still serves and is not cut off).
            Send,
            /// The renewal sent at `.0` reaches the leader.
            Arrive(u64),
            /// The renewal sent at `.0` was answered Held, and the answer reaches a.
            Answer(u64),
            /// b asks for the lease.
            Ask,
        }

        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let base = Instant::now() + 3_600 * SECOND;
        let ms = |n: u64| base + Duration::from_millis(n);
        let (a, b) = (holder(1, 1), holder(2, 1));
        for round in 0..2_000 {
            // The first leader (term 1) grants a's lease at 10 s; its grace is long over.
            let mut first = SubscriptionLeases::new(LEADER_GRACE);
            first.lead(1, 1, base).unwrap();
            let acquired = 10_000;
            assert_eq!(first.acquire(&key(1), a, 1, ms(acquired)), Ok(LeaseAnswer::Held));
            let mut deadline = HolderDeadline::granted(ms(acquired));
            let cut_at = acquired + rand(12_000);
            let new_leader_at = (round % 2 == 0).then(|| acquired + rand(12_000));
            let mut second = SubscriptionLeases::new(LEADER_GRACE);
            let mut events = BinaryHeap::new();
            events.push(Reverse((acquired + 1_000, Event::Send)));
            events.push(Reverse((acquired + 5_000, Event::Ask)));
            let mut granted = None;
            while let Some(Reverse((now, event))) = events.pop() {
                let (table, term) = match new_leader_at {
                    Some(at) if now >= at => (&mut second, 2),
                    _ => (&mut first, 1),
                };
                match event {
                    Event::Send => {
                        if now < cut_at && !deadline.passed(ms(now)) {
                            events.push(Reverse((now + rand(2_500), Event::Arrive(now))));
                            events.push(Reverse((now + 1_000, Event::Send)));
                        }
                    }
                    Event::Arrive(sent) => {
                        let age = Duration::from_millis(sent - acquired);
                        if table.renew(&key(1), a, age, term, ms(now)) == Ok(LeaseAnswer::Held) {
                            events.push(Reverse((now + rand(1_000), Event::Answer(sent))));
                        }
                    }
                    Event::Answer(sent) => deadline.renewed(ms(sent)),
                    Event::Ask => {
                        if table.acquire(&key(1), b, term, ms(now)) == Ok(LeaseAnswer::Held) {
                            granted = Some(now);
                            break;
                        }
                        events.push(Reverse((now + 100, Event::Ask)));
                    }
                }
            }
            let granted = granted.expect("b is granted the lease in the end");
            // Answers still on their way when b was granted may yet reach a: only renewals the
            // leader accepted count, and all of them were applied by then.
            while let Some(Reverse((_, event))) = events.pop() {
                if let Event::Answer(sent) = event {
                    deadline.renewed(ms(sent));
                }
            }
            assert!(
                deadline.until() + SAFETY_MARGIN <= ms(granted),
                "round {round}: b granted at {granted} ms while a may serve until {:?}",
                deadline.until().duration_since(base)
            );
        }
    }
}
