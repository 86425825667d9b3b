//! Per-shard throughput limits of PROVISIONED streams, enforced with token buckets.
//!
//! Each shard has four buckets: write bytes, write records, read bytes and read calls
//! (GetRecords). A bucket refills continuously at its rate and holds at most `burst` worth of it
//! (one second by default), so a shard that was idle can take one second of traffic at once — a
//! full 1 MiB PutRecords, or 5 back-to-back GetRecords — while its sustained rate never exceeds
//! the limit. AWS documents its limits per second and tolerates such short bursts; a one-second
//! bucket is the smallest that admits every single request AWS would admit on an idle shard.
//!
//! A cost larger than the whole bucket (a record over `burst × rate` bytes, possible when the
//! limits are configured low or records are large) is admitted when the bucket is full and
//! leaves it in debt, so it is neither refused forever nor free. Reads are charged after the
//! fact, as AWS does: a GetRecords call is admitted while the read-bytes bucket is not in debt,
//! and the bytes it returned are then taken, possibly into debt (AWS: "if a call returns 10 MB,
//! subsequent calls made within the next 5 seconds throw ProvisionedThroughputExceededException").

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use crate::catalog::StreamMode;

/// Which streams per-shard limits apply to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Throttling {
    /// PROVISIONED streams only, as AWS (ON_DEMAND streams scale instead).
    #[default]
    Provisioned,
    /// Every stream, ON_DEMAND included.
    All,
    /// No stream.
    Off,
}

impl Throttling {
    pub fn applies_to(self, mode: StreamMode) -> bool {
        match self {
            Throttling::Provisioned => mode == StreamMode::Provisioned,
            Throttling::All => true,
            Throttling::Off => false,
        }
    }
}

/// Limits of one shard. A rate of 0 means that dimension is not limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardLimits {
    pub write_bytes_per_sec: u64,
    pub write_records_per_sec: u64,
    pub read_bytes_per_sec: u64,
    pub read_calls_per_sec: u64,
    /// How much of each rate a shard that was idle can take at once.
    pub burst: Duration,
}

impl Default for ShardLimits {
    /// The limits of AWS: writes 1 MiB/s and 1,000 records/s, reads 2 MiB/s and 5 calls/s.
    fn default() -> Self {
        ShardLimits {
            write_bytes_per_sec: 1 << 20,
            write_records_per_sec: 1_000,
            read_bytes_per_sec: 2 << 20,
            read_calls_per_sec: 5,
            burst: Duration::from_secs(1),
        }
    }
}

/// A token bucket with an injected clock. Tokens may go negative (debt).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    /// Tokens per second; `None` for an unlimited bucket.
    rate: Option<f64>,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` per second (0: unlimited) that holds `burst` of it
    /// (at least one token, so that a unit cost can always pass eventually).
    pub fn full(rate: u64, burst: Duration, now: Instant) -> TokenBucket {
        let (rate, capacity) = if rate == 0 {
            (None, f64::INFINITY)
        } else {
            let r = rate as f64;
            (Some(r), (r * burst.as_secs_f64()).max(1.0))
        };
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    /// A full bucket admitting `count` per `window` (0: unlimited), holding all of them: an idle
    /// caller may spend the whole window's allowance at once.
    pub fn per_window(count: u64, window: Duration, now: Instant) -> TokenBucket {
        let secs = window.as_secs_f64();
        let rate = (count > 0 && secs > 0.0).then(|| count as f64 / secs);
        let capacity = if rate.is_some() {
            count as f64
        } else {
            f64::INFINITY
        };
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else { return };
        // An `Instant` earlier than the last one (callers racing) adds nothing.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.capacity);
        self.last = self.last.max(now);
    }

    /// The tokens available now (negative while in debt).
    pub fn tokens(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Whether `cost` may be taken now: the bucket holds it, or the cost exceeds the whole
    /// bucket and the bucket is full.
    pub fn can_take(&mut self, cost: f64, now: Instant) -> bool {
        if self.rate.is_none() {
            return true;
        }
        self.refill(now);
        self.tokens >= cost.min(self.capacity)
    }

    /// Takes `cost` unconditionally (the balance may go negative).
    pub fn charge(&mut self, cost: f64, now: Instant) {
        if self.rate.is_none() {
            return;
        }
        self.refill(now);
        self.tokens -= cost;
    }

    /// Takes `cost` if [`can_take`](Self::can_take) allows it.
    pub fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        let ok = self.can_take(cost, now);
        if ok {
            self.charge(cost, now);
        }
        ok
    }

    /// Whether the bucket is full (indistinguishable from a new one).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// The four buckets of one shard.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardBuckets {
    write_bytes: TokenBucket,
    write_records: TokenBucket,
    read_bytes: TokenBucket,
    read_calls: TokenBucket,
}

impl ShardBuckets {
    pub fn new(limits: &ShardLimits, now: Instant) -> ShardBuckets {
        let b = limits.burst;
        ShardBuckets {
            write_bytes: TokenBucket::full(limits.write_bytes_per_sec, b, now),
            write_records: TokenBucket::full(limits.write_records_per_sec, b, now),
            read_bytes: TokenBucket::full(limits.read_bytes_per_sec, b, now),
            read_calls: TokenBucket::full(limits.read_calls_per_sec, b, now),
        }
    }

    /// Admits records of one shard in order and returns how many: the longest prefix whose
    /// records each fit the write buckets. Records after the first one that does not fit are
    /// all refused, so a producer retrying the refused ones never has a later record of the
    /// batch ahead of an earlier one in the shard.
    pub fn admit_writes(&mut self, sizes: impl IntoIterator<Item = usize>, now: Instant) -> usize {
        let mut admitted = 0;
        for size in sizes {
            let size = size as f64;
            if !(self.write_records.can_take(1.0, now) && self.write_bytes.can_take(size, now)) {
                break;
            }
            self.write_records.charge(1.0, now);
            self.write_bytes.charge(size, now);
            admitted += 1;
        }
        admitted
    }

    /// Admits one GetRecords call: a call token is free and the read bytes are not in debt.
    pub fn admit_read(&mut self, now: Instant) -> bool {
        if self.read_bytes.tokens(now) < 0.0 || !self.read_calls.can_take(1.0, now) {
            return false;
        }
        self.read_calls.charge(1.0, now);
        true
    }

    /// Charges the bytes an admitted read returned.
    pub fn charge_read(&mut self, bytes: usize, now: Instant) {
        self.read_bytes.charge(bytes as f64, now);
    }

    /// Whether every bucket is full: the shard's state can be forgotten.
    pub fn is_idle(&mut self, now: Instant) -> bool {
        self.write_bytes.is_full(now)
            && self.write_records.is_full(now)
            && self.read_bytes.is_full(now)
            && self.read_calls.is_full(now)
    }
}

/// How often idle buckets are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// State that can be forgotten once it is back where it started (a full bucket).
pub trait Idle {
    fn is_idle(&mut self, now: Instant) -> bool;
}

impl Idle for TokenBucket {
    fn is_idle(&mut self, now: Instant) -> bool {
        self.is_full(now)
    }
}

impl Idle for ShardBuckets {
    fn is_idle(&mut self, now: Instant) -> bool {
        ShardBuckets::is_idle(self, now)
    }
}

/// Buckets by key behind one lock, created on first use and dropped once idle again (looked
/// for at most every minute), so that only keys with recent traffic take memory.
#[derive(Debug)]
pub struct KeyedBuckets<K, V> {
    state: Mutex<Keyed<K, V>>,
}

#[derive(Debug)]
struct Keyed<K, V> {
    map: HashMap<K, V>,
    last_prune: Option<Instant>,
}

impl<K: Eq + Hash, V: Idle> Default for KeyedBuckets<K, V> {
    fn default() -> Self {
        KeyedBuckets {
            state: Mutex::new(Keyed {
                map: HashMap::new(),
                last_prune: None,
            }),
        }
    }
}

impl<K: Eq + Hash, V: Idle> KeyedBuckets<K, V> {
    /// Runs `f` on the buckets of `key`, made by `new` if it has none.
    pub fn with<R>(&self, key: K, now: Instant, new: impl FnOnce() -> V, f: impl FnOnce(&mut V) -> R) -> R {
        // A panic while holding the lock cannot leave the buckets inconsistent in a way that
        // matters (at worst one admission is off), so a poisoned lock is used as is.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = state
            .last_prune
            .is_none_or(|t| now.saturating_duration_since(t) >= PRUNE_EVERY);
        if due {
            state.last_prune = Some(now);
            state.map.retain(|_, b| !b.is_idle(now));
        }
        f(state.map.entry(key).or_insert_with(new))
    }

    /// Keys whose buckets are held.
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The buckets of every shard this node admits traffic for, keyed by the shard's Raft group
/// (group ids are never reused, so a re-created stream starts with fresh buckets). A shard's
/// buckets are created full on first use and dropped once they are full again.
#[derive(Debug)]
pub struct ShardThrottle {
    limits: ShardLimits,
    shards: KeyedBuckets<u64, ShardBuckets>,
}

impl ShardThrottle {
    pub fn new(limits: ShardLimits) -> ShardThrottle {
        ShardThrottle {
            limits,
            shards: KeyedBuckets::default(),
        }
    }

    pub fn limits(&self) -> &ShardLimits {
        &self.limits
    }

    fn with<R>(&self, group: u64, now: Instant, f: impl FnOnce(&mut ShardBuckets) -> R) -> R {
        let limits = &self.limits;
        self.shards.with(group, now, || ShardBuckets::new(limits, now), f)
    }

    /// See [`ShardBuckets::admit_writes`].
    pub fn admit_writes(&self, group: u64, sizes: impl IntoIterator<Item = usize>, now: Instant) -> usize {
        self.with(group, now, |b| b.admit_writes(sizes, now))
    }

    /// See [`ShardBuckets::admit_read`].
    pub fn admit_read(&self, group: u64, now: Instant) -> bool {
        self.with(group, now, |b| b.admit_read(now))
    }

    /// See [`ShardBuckets::charge_read`].
    pub fn charge_read(&self, group: u64, bytes: usize, now: Instant) {
        self.with(group, now, |b| b.charge_read(bytes, now));
    }

    /// Shards whose buckets are held (for tests of pruning).
    pub fn tracked_shards(&self) -> usize {
        self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_bucket_starts_full_and_refills_at_its_rate_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(100, secs(1.0), t0);
        assert!(b.try_take(100.0, t0));
        assert!(!b.try_take(1.0, t0));
        assert!(!b.can_take(11.0, t0 + secs(0.1)));
        assert!(b.try_take(10.0, t0 + secs(0.1)));
        // Long idleness refills only up to the capacity.
        assert_eq!(b.tokens(t0 + secs(100.0)), 100.0);
        assert!(b.is_full(t0 + secs(100.0)));
    }

    #[test]
    fn costs_above_the_capacity_pass_on_a_full_bucket_and_leave_a_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(10, secs(1.0), t0);
        assert!(b.try_take(50.0, t0));
        assert_eq!(b.tokens(t0), -40.0);
        // Nothing passes until the debt is repaid and the bucket holds the cost again.
        assert!(!b.can_take(1.0, t0 + secs(4.0)));
        assert!(b.can_take(1.0, t0 + secs(4.1)));
        assert!(!b.can_take(50.0, t0 + secs(4.5)));
        assert!(b.can_take(50.0, t0 + secs(5.0)));
    }

    #[test]
    fn rate_zero_is_unlimited_and_time_going_backwards_adds_nothing() {
        let t0 = Instant::now();
        let mut unlimited = TokenBucket::full(0, secs(1.0), t0);
        for _ in 0..1000 {
            assert!(unlimited.try_take(1e9, t0));
        }
        let mut b = TokenBucket::full(10, secs(1.0), t0 + secs(1.0));
        assert!(b.try_take(10.0, t0 + secs(1.0)));
        assert!(!b.can_take(1.0, t0));
        assert_eq!(b.tokens(t0), 0.0);
    }

    #[test]
    fn small_rates_still_hold_one_token() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(1, secs(0.1), t0);
        assert!(b.try_take(1.0, t0));
        assert!(!b.can_take(1.0, t0 + secs(0.9)));
        assert!(b.can_take(1.0, t0 + secs(1.0)));
    }

    #[test]
    fn writes_are_admitted_as_a_prefix_within_records_and_bytes() {
        let t0 = Instant::now();
        let limits = ShardLimits::default();
        // 1,000 records/s: of 1,500 tiny records on an idle shard, 1,000 pass.
        let mut s = ShardBuckets::new(&limits, t0);
        assert_eq!(s.admit_writes(std::iter::repeat_n(10, 1500), t0), 1000);
        // Half a second later, 500 more.
        assert_eq!(s.admit_writes(std::iter::repeat_n(10, 1500), t0 + secs(0.5)), 500);
        // 1 MiB/s: five 300 KiB records, three pass (900 KiB), and a smaller fourth record
        // that would fit is refused too, because it comes after a refused one.
        let mut s = ShardBuckets::new(&limits, t0);
        let sizes = [300 << 10, 300 << 10, 300 << 10, 300 << 10, 10];
        assert_eq!(s.admit_writes(sizes, t0), 3);
        // A whole 1 MiB record passes on an idle shard, and then nothing for a second.
        let mut s = ShardBuckets::new(&limits, t0);
        assert_eq!(s.admit_writes([MIB], t0), 1);
        assert_eq!(s.admit_writes([1024], t0 + secs(0.0005)), 0); // 524 bytes refilled
        assert_eq!(s.admit_writes([1024], t0 + secs(0.0015)), 1);
        assert_eq!(s.admit_writes([MIB], t0 + secs(1.0)), 0);
        assert_eq!(s.admit_writes([MIB], t0 + secs(1.01)), 1);
    }

    #[test]
    fn sustained_writes_converge_to_the_configured_rate() {
        // A producer offering 3 MiB/s (750 records/s of 4 KiB, under the record limit) in
        // 100 ms steps for 60 s gets 1 MiB/s plus one burst.
        let t0 = Instant::now();
        let mut s = ShardBuckets::new(&ShardLimits::default(), t0);
        let mut accepted = 0usize;
        for step in 0..600 {
            let now = t0 + secs(step as f64 * 0.1);
            let n = s.admit_writes(std::iter::repeat_n(4096, 75), now);
            accepted += n * 4096;
        }
        // The last step is at 59.9 s: 59.9 s of refill plus the initial 1 MiB burst, to within
        // one record.
        let expected = (59.9 * MIB as f64 + MIB as f64) as usize;
        assert!(accepted.abs_diff(expected) <= 4096, "{accepted} vs {expected}");
    }

    #[test]
    fn reads_allow_five_calls_per_second_and_pay_for_big_reads_afterwards() {
        let t0 = Instant::now();
        let mut s = ShardBuckets::new(&ShardLimits::default(), t0);
        for _ in 0..5 {
            assert!(s.admit_read(t0));
        }
        assert!(!s.admit_read(t0));
        assert!(s.admit_read(t0 + secs(0.2)));
        assert!(!s.admit_read(t0 + secs(0.2)));
        // 10 MiB read from a full 2 MiB/s bucket: 8 MiB in debt, 4 s without reads.
        let mut s = ShardBuckets::new(&ShardLimits::default(), t0);
        assert!(s.admit_read(t0));
        s.charge_read(10 * MIB, t0);
        assert!(!s.admit_read(t0 + secs(3.9)));
        assert!(s.admit_read(t0 + secs(4.01)));
    }

    #[test]
    fn throttling_applies_to_provisioned_streams_by_default() {
        let t = Throttling::default();
        assert!(t.applies_to(StreamMode::Provisioned));
        assert!(!t.applies_to(StreamMode::OnDemand));
        assert!(Throttling::All.applies_to(StreamMode::OnDemand));
        assert!(!Throttling::Off.applies_to(StreamMode::Provisioned));
    }

    #[test]
    fn the_throttle_keeps_shards_apart_and_forgets_idle_ones() {
        let t0 = Instant::now();
        let throttle = ShardThrottle::new(ShardLimits {
            write_records_per_sec: 10,
            ..ShardLimits::default()
        });
        assert_eq!(throttle.admit_writes(1, [1; 20], t0), 10);
        assert_eq!(throttle.admit_writes(2, [1; 20], t0), 10);
        assert_eq!(throttle.admit_writes(1, [1; 20], t0), 0);
        assert_eq!(throttle.tracked_shards(), 2);
        // A minute later both are full again and are dropped on the next use; the shard used
        // then is created again, full.
        assert_eq!(throttle.admit_writes(1, [1; 20], t0 + secs(61.0)), 10);
        assert_eq!(throttle.tracked_shards(), 1);
    }
}
