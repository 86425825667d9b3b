//! The ON_DEMAND hot-shard policy: which shards of a stream to split, and where.
//!
//! A pure function of the observed write rates, so that whoever owns the decision (the node
//! today, the operator later) only gathers the windows and applies the splits. A shard is split
//! when it has been hot — at or above the byte or the record threshold — in every observation
//! window of the last `sustained` period, the stream has not been resharded within `cooldown`,
//! and the stream stays within `max_shards` open shards. Hotter shards go first when there is
//! room for only some. The new starting hash key is the midpoint of the shard's range, so the
//! two children each take half of a uniformly spread load.

use std::time::Duration;

use crate::model::hash_key::HashKeyRange;

/// What the policy is told about one window of a shard's writes (accepted records only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    /// Milliseconds since the epoch; the window is `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    pub bytes: u64,
    pub records: u64,
}

impl RateWindow {
    fn seconds(&self) -> f64 {
        ((self.end_ms - self.start_ms).max(1)) as f64 / 1000.0
    }

    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.seconds()
    }

    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.seconds()
    }
}

/// One open shard of the stream and its recent windows (any order), as one node observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardLoad {
    pub shard: u32,
    pub range: HashKeyRange,
    pub windows: Vec<RateWindow>,
    /// Whether the observing node leads the shard: only the leader of a shard decides to split
    /// it (and the leader of the lower shard of a pair to merge it), so that one node decides.
    pub leader: bool,
}

/// When to split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitPolicy {
    /// A shard writing at least this many bytes/s is hot.
    pub hot_bytes_per_sec: u64,
    /// A shard writing at least this many records/s is hot.
    pub hot_records_per_sec: u64,
    /// How long a shard must stay hot, without a cold or missing window, to be split.
    pub sustained: Duration,
    /// No split within this long after the stream's last reshard.
    pub cooldown: Duration,
    /// The stream never grows beyond this many open shards.
    pub max_shards: u32,
}

impl Default for SplitPolicy {
    /// Hot at 80 % of AWS's per-shard write limits (1 MiB/s, 1,000 records/s) for a minute;
    /// five minutes between reshards; up to 200 shards (AWS's default on-demand write capacity
    /// of 200 MiB/s).
    fn default() -> Self {
        SplitPolicy {
            hot_bytes_per_sec: (1 << 20) * 4 / 5,
            hot_records_per_sec: 800,
            sustained: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            max_shards: 200,
        }
    }
}

/// One split to make: SplitShard(shard, NewStartingHashKey).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub shard: u32,
    pub new_starting_hash_key: u128,
}

/// The hash key that splits `range` in two halves (the upper half starts there); `None` for a
/// range of one key, which cannot be split.
pub fn midpoint(range: HashKeyRange) -> Option<u128> {
    (range.end > range.start).then(|| range.start + (range.end - range.start) / 2 + 1)
}

/// The shards of one stream to split now. `shards` are all of the stream's open shards;
/// `last_reshard_ms` is when the stream was last split, merged or rescaled.
pub fn plan_splits(
    policy: &SplitPolicy,
    now_ms: i64,
    last_reshard_ms: Option<i64>,
    shards: &[ShardLoad],
) -> Vec<Split> {
    let cooldown = policy.cooldown.as_millis() as i64;
    if last_reshard_ms.is_some_and(|t| now_ms.saturating_sub(t) < cooldown) {
        return Vec::new();
    }
    let room = (policy.max_shards as usize).saturating_sub(shards.len());
    let mut hot: Vec<(f64, &ShardLoad, u128)> = shards
        .iter()
        .filter(|s| s.leader)
        .filter_map(|s| {
            let key = midpoint(s.range)?;
            let heat = sustained_heat(policy, now_ms, &s.windows)?;
            Some((heat, s, key))
        })
        .collect();
    // Hottest first; equal heat by shard index, so the plan is deterministic.
    hot.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.shard.cmp(&b.1.shard)));
    hot.into_iter()
        .take(room)
        .map(|(_, s, key)| Split {
            shard: s.shard,
            new_starting_hash_key: key,
        })
        .collect()
}

/// How hot a shard has been over the sustained period — its mean load relative to the
/// thresholds (≥ 1) — or `None` unless it was hot in every window of the period and the
/// windows cover it (see [`sustained_windows`]).
fn sustained_heat(policy: &SplitPolicy, now_ms: i64, windows: &[RateWindow]) -> Option<f64> {
    let recent = sustained_windows(now_ms, policy.sustained, windows)?;
    let mut heat = 0.0;
    for w in &recent {
        let h = ratio(w.bytes_per_sec(), policy.hot_bytes_per_sec)
            .max(ratio(w.records_per_sec(), policy.hot_records_per_sec));
        if h < 1.0 {
            return None;
        }
        heat += h;
    }
    Some(heat / recent.len() as f64)
}

/// The windows of the last `period` before `now_ms`, oldest first, or `None` unless they cover
/// the whole period without gaps and the latest is current (it ends within its own length of
/// `now_ms`): a shard is judged only on a complete, fresh observation.
pub(crate) fn sustained_windows(
    now_ms: i64,
    period: Duration,
    windows: &[RateWindow],
) -> Option<Vec<&RateWindow>> {
    let from = now_ms.saturating_sub(period.as_millis() as i64);
    let mut recent: Vec<&RateWindow> = windows
        .iter()
        .filter(|w| w.end_ms > from && w.end_ms > w.start_ms)
        .collect();
    recent.sort_by_key(|w| (w.start_ms, w.end_ms));
    let (first, last) = (recent.first()?, recent.last()?);
    if first.start_ms > from || now_ms - last.end_ms > last.end_ms - last.start_ms {
        return None;
    }
    let mut covered_to = first.start_ms;
    for w in &recent {
        if w.start_ms > covered_to {
            return None; // a gap: the shard was not observed throughout
        }
        covered_to = covered_to.max(w.end_ms);
    }
    Some(recent)
}

fn ratio(rate: f64, threshold: u64) -> f64 {
    if threshold == 0 {
        0.0 // that dimension never makes a shard hot
    } else {
        rate / threshold as f64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::hash_key::divide_evenly;

    pub(crate) const MIB: u64 = 1 << 20;
    pub(crate) const T0: i64 = 1_700_000_000_000;

    fn policy() -> SplitPolicy {
        SplitPolicy {
            hot_bytes_per_sec: MIB * 4 / 5,
            hot_records_per_sec: 800,
            sustained: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            max_shards: 8,
        }
    }

    /// 10-second windows ending at `end_ms`, one per rate (bytes/s, records/s), oldest first.
    pub(crate) fn curve(end_ms: i64, rates: &[(u64, u64)]) -> Vec<RateWindow> {
        let n = rates.len() as i64;
        rates
            .iter()
            .enumerate()
            .map(|(i, &(b, r))| {
                let start_ms = end_ms - (n - i as i64) * 10_000;
                RateWindow {
                    start_ms,
                    end_ms: start_ms + 10_000,
                    bytes: b * 10,
                    records: r * 10,
                }
            })
            .collect()
    }

    pub(crate) fn shards(curves: Vec<Vec<RateWindow>>) -> Vec<ShardLoad> {
        let ranges = divide_evenly(curves.len() as u32);
        curves
            .into_iter()
            .zip(ranges)
            .enumerate()
            .map(|(i, (windows, range))| ShardLoad {
                shard: i as u32,
                range,
                windows,
                leader: true,
            })
            .collect()
    }

    const HOT: (u64, u64) = (MIB, 100);
    const COLD: (u64, u64) = (MIB / 10, 100);

    #[test]
    fn a_shard_hot_for_the_whole_sustained_period_is_split_at_its_midpoint() {
        let now = T0 + 600_000;
        let s = shards(vec![vec![], curve(now, &[HOT; 12])]);
        assert_eq!(
            plan_splits(&policy(), now, None, &s),
            vec![Split {
                shard: 1,
                new_starting_hash_key: s[1].range.start + (s[1].range.end - s[1].range.start) / 2 + 1,
            }]
        );
        // Hot by records alone counts too.
        let s = shards(vec![curve(now, &[(1000, 900); 6])]);
        assert_eq!(plan_splits(&policy(), now, None, &s).len(), 1);
    }

    #[test]
    fn only_the_shards_leader_splits_it() {
        let now = T0 + 600_000;
        let mut s = shards(vec![curve(now, &[HOT; 12])]);
        s[0].leader = false;
        assert!(plan_splits(&policy(), now, None, &s).is_empty());
    }

    #[test]
    fn midpoints_halve_the_range() {
        assert_eq!(midpoint(HashKeyRange::FULL), Some(1u128 << 127));
        let r = HashKeyRange { start: 10, end: 11 };
        assert_eq!(midpoint(r), Some(11));
        let r = HashKeyRange { start: 10, end: 13 };
        assert_eq!(midpoint(r), Some(12));
        assert_eq!(midpoint(HashKeyRange { start: 7, end: 7 }), None);
    }

    #[test]
    fn a_brief_spike_or_a_cold_window_prevents_a_split() {
        let now = T0 + 600_000;
        // Hot for 30 of the last 60 s.
        let spike = curve(now, &[COLD, COLD, COLD, HOT, HOT, HOT]);
        // Hot all along but one cold window in the middle.
        let dip = curve(now, &[HOT, HOT, COLD, HOT, HOT, HOT]);
        // Hot long ago, cold now.
        let past = curve(
            now,
            &[HOT, HOT, HOT, HOT, HOT, HOT, COLD, COLD, COLD, COLD, COLD, COLD],
        );
        assert!(plan_splits(&policy(), now, None, &shards(vec![spike, dip, past])).is_empty());
    }

    #[test]
    fn too_little_history_gaps_and_stale_windows_prevent_a_split() {
        let now = T0 + 600_000;
        // Only 50 s observed.
        let short = curve(now, &[HOT; 5]);
        // A missing window inside the period.
        let mut gap = curve(now, &[HOT; 6]);
        gap.remove(2);
        // The latest window ended 20 s ago (longer than a window): the data is stale.
        let stale = curve(now - 20_000, &[HOT; 12]);
        assert!(plan_splits(&policy(), now, None, &shards(vec![short, gap, stale])).is_empty());
        // The latest window may lag `now` by less than its own length.
        let lagging = curve(now - 9_000, &[HOT; 12]);
        assert_eq!(plan_splits(&policy(), now, None, &shards(vec![lagging])).len(), 1);
    }

    #[test]
    fn the_cooldown_after_a_reshard_is_respected() {
        let now = T0 + 600_000;
        let s = shards(vec![curve(now, &[HOT; 12])]);
        let p = policy();
        assert!(plan_splits(&p, now, Some(now - 299_999), &s).is_empty());
        assert_eq!(plan_splits(&p, now, Some(now - 300_000), &s).len(), 1);
        assert_eq!(plan_splits(&p, now, None, &s).len(), 1);
    }

    #[test]
    fn max_shards_caps_the_splits_and_the_hottest_go_first() {
        let now = T0 + 600_000;
        let warm = (MIB * 9 / 10, 100);
        let hotter = (MIB * 3, 100);
        let curves = vec![
            curve(now, &[warm; 6]),
            curve(now, &[hotter; 6]),
            curve(now, &[COLD; 6]),
            curve(now, &[HOT; 6]),
            curve(now, &[warm; 6]),
            curve(now, &[warm; 6]),
        ];
        // 6 open shards, room for 2 more: the two hottest.
        let plan: Vec<u32> = plan_splits(&policy(), now, None, &shards(curves.clone()))
            .iter()
            .map(|s| s.shard)
            .collect();
        assert_eq!(plan, vec![1, 3]);
        // Room for all hot ones: equal heat in shard order.
        let p = SplitPolicy {
            max_shards: 100,
            ..policy()
        };
        let plan: Vec<u32> = plan_splits(&p, now, None, &shards(curves.clone()))
            .iter()
            .map(|s| s.shard)
            .collect();
        assert_eq!(plan, vec![1, 3, 0, 4, 5]);
        // At the limit: nothing.
        let p = SplitPolicy {
            max_shards: 6,
            ..policy()
        };
        assert!(plan_splits(&p, now, None, &shards(curves)).is_empty());
    }
}
