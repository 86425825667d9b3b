//! The ON_DEMAND cold-shard policy: which adjacent shards of a stream to merge.
//!
//! The other half of [`hot_shards`](super::hot_shards), and as pure. Two adjacent open shards
//! are merged when:
//! - both were cold — at most the byte **and** the record threshold — in every observation
//!   window of the last `sustained` period, observed without gaps up to now;
//! - the merged shard would stay well below the split thresholds: the sum of the two shards'
//!   peak rates is at most [`MERGED_HEADROOM`] of each split threshold (hysteresis: a merge is
//!   never followed by a split of its child under the load that caused it);
//! - the stream has not been resharded within `cooldown`;
//! - the stream keeps at least `min_shards` open shards;
//! - the node observing them leads the lower shard of the pair (the one with the lower hash
//!   keys), so that one node decides (see `service::on_demand` for where the windows of the
//!   other shard come from).
//!
//! Coldest pairs go first; the pairs returned are disjoint.

use std::time::Duration;

use super::hot_shards::ShardLoad;
use super::hot_shards::sustained_windows;

/// The merged shard's combined peak must stay at or below this fraction of the split
/// thresholds.
pub const MERGED_HEADROOM: f64 = 0.5;

/// When to merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergePolicy {
    /// A shard writing at most this many bytes/s (and at most `cold_records_per_sec`) is cold.
    pub cold_bytes_per_sec: u64,
    /// A shard writing at most this many records/s (and at most `cold_bytes_per_sec`) is cold.
    pub cold_records_per_sec: u64,
    /// How long both shards must stay cold, without a warmer or missing window.
    pub sustained: Duration,
    /// No merge within this long after the stream's last reshard.
    pub cooldown: Duration,
    /// Merges never take the stream below this many open shards.
    pub min_shards: u32,
    /// The split thresholds (bytes/s, records/s; 0 = that dimension never splits): the merged
    /// shard's peak stays at most [`MERGED_HEADROOM`] of them.
    pub hot_bytes_per_sec: u64,
    pub hot_records_per_sec: u64,
}

impl Default for MergePolicy {
    /// Cold at a quarter of the split thresholds (20 % of AWS's per-shard write limits) for
    /// 15 minutes; 10 minutes after the last reshard; never below the 4 shards an ON_DEMAND
    /// stream starts with (AWS's initial on-demand write capacity of 4 MiB/s). The defaults
    /// match the operator's scale-down defaults for ON_DEMAND streams.
    fn default() -> Self {
        let hot = super::hot_shards::SplitPolicy::default();
        MergePolicy {
            cold_bytes_per_sec: hot.hot_bytes_per_sec / 4,
            cold_records_per_sec: hot.hot_records_per_sec / 4,
            sustained: Duration::from_secs(900),
            cooldown: Duration::from_secs(600),
            min_shards: 4,
            hot_bytes_per_sec: hot.hot_bytes_per_sec,
            hot_records_per_sec: hot.hot_records_per_sec,
        }
    }
}

/// One merge to make: MergeShards(shard, adjacent_shard), `shard` holding the lower hash keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merge {
    pub shard: u32,
    pub adjacent_shard: u32,
}

/// The pairs of one stream's shards to merge now. `shards` are all of the stream's open
/// shards (any order); `last_reshard_ms` is when the stream was last split, merged or rescaled.
pub fn plan_merges(
    policy: &MergePolicy,
    now_ms: i64,
    last_reshard_ms: Option<i64>,
    shards: &[ShardLoad],
) -> Vec<Merge> {
    let cooldown = policy.cooldown.as_millis() as i64;
    if last_reshard_ms.is_some_and(|t| now_ms.saturating_sub(t) < cooldown) {
        return Vec::new();
    }
    let room = shards.len().saturating_sub(policy.min_shards as usize);
    if room == 0 {
        return Vec::new();
    }
    let mut ordered: Vec<&ShardLoad> = shards.iter().collect();
    ordered.sort_by_key(|s| s.range.start);
    let peaks: Vec<Option<(f64, f64)>> = ordered.iter().map(|s| cold_peak(policy, now_ms, s)).collect();
    let mut candidates: Vec<(f64, usize)> = Vec::new();
    for i in 0..ordered.len().saturating_sub(1) {
        let (a, b) = (ordered[i], ordered[i + 1]);
        if !a.leader || a.range.end.checked_add(1) != Some(b.range.start) {
            continue;
        }
        let (Some(pa), Some(pb)) = (peaks[i], peaks[i + 1]) else {
            continue;
        };
        let combined = merged_load(policy, (pa.0 + pb.0, pa.1 + pb.1));
        if combined <= MERGED_HEADROOM {
            candidates.push((combined, i));
        }
    }
    // Coldest first; equal load by position, so the plan is deterministic.
    candidates.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let mut taken = vec![false; ordered.len()];
    let mut plan = Vec::new();
    for (_, i) in candidates {
        if plan.len() == room {
            break;
        }
        if taken[i] || taken[i + 1] {
            continue;
        }
        taken[i] = true;
        taken[i + 1] = true;
        plan.push(Merge {
            shard: ordered[i].shard,
            adjacent_shard: ordered[i + 1].shard,
        });
    }
    plan
}

/// The shard's peak (bytes/s, records/s) over the sustained period, or `None` unless it was
/// cold in every window of a complete, fresh observation of the period.
fn cold_peak(policy: &MergePolicy, now_ms: i64, shard: &ShardLoad) -> Option<(f64, f64)> {
    let windows = sustained_windows(now_ms, policy.sustained, &shard.windows)?;
    let mut peak = (0.0f64, 0.0f64);
    for w in windows {
        let (bytes, records) = (w.bytes_per_sec(), w.records_per_sec());
        if bytes > policy.cold_bytes_per_sec as f64 || records > policy.cold_records_per_sec as f64 {
            return None;
        }
        peak = (peak.0.max(bytes), peak.1.max(records));
    }
    Some(peak)
}

/// A merged shard's load relative to the split thresholds (the larger dimension; a dimension
/// with no split threshold does not count).
fn merged_load(policy: &MergePolicy, (bytes, records): (f64, f64)) -> f64 {
    let ratio = |rate: f64, threshold: u64| {
        if threshold == 0 {
            0.0
        } else {
            rate / threshold as f64
        }
    };
    ratio(bytes, policy.hot_bytes_per_sec).max(ratio(records, policy.hot_records_per_sec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::hot_shards::tests::MIB;
    use crate::capacity::hot_shards::tests::T0;
    use crate::capacity::hot_shards::tests::curve;
    use crate::capacity::hot_shards::tests::shards;

    fn policy() -> MergePolicy {
        MergePolicy {
            cold_bytes_per_sec: MIB / 5,
            cold_records_per_sec: 200,
            sustained: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
            min_shards: 2,
            hot_bytes_per_sec: MIB * 4 / 5,
            hot_records_per_sec: 800,
        }
    }

    const IDLE: (u64, u64) = (0, 0);
    const COOL: (u64, u64) = (MIB / 10, 50);
    const WARM: (u64, u64) = (MIB / 2, 100);

    fn pairs(plan: &[Merge]) -> Vec<(u32, u32)> {
        plan.iter().map(|m| (m.shard, m.adjacent_shard)).collect()
    }

    #[test]
    fn adjacent_shards_cold_for_the_whole_period_are_merged_coldest_first() {
        let now = T0 + 600_000;
        let s = shards(vec![
            curve(now, &[COOL; 6]),
            curve(now, &[COOL; 6]),
            curve(now, &[IDLE; 6]),
            curve(now, &[IDLE; 6]),
        ]);
        let p = MergePolicy {
            min_shards: 1,
            ..policy()
        };
        assert_eq!(pairs(&plan_merges(&p, now, None, &s)), vec![(2, 3), (0, 1)]);
        // Shards given out of order are paired by hash range, not by position.
        let mut reversed = s.clone();
        reversed.reverse();
        assert_eq!(
            pairs(&plan_merges(&p, now, None, &reversed)),
            vec![(2, 3), (0, 1)]
        );
    }

    #[test]
    fn a_warm_window_a_gap_or_too_little_history_prevents_a_merge() {
        let now = T0 + 600_000;
        let p = MergePolicy {
            min_shards: 1,
            ..policy()
        };
        // One warm window in the middle of the period.
        let warm = curve(now, &[IDLE, IDLE, WARM, IDLE, IDLE, IDLE]);
        assert!(plan_merges(&p, now, None, &shards(vec![warm, curve(now, &[IDLE; 6])])).is_empty());
        // Hot by records alone counts as warm.
        let busy = curve(now, &[(10, 500); 6]);
        assert!(plan_merges(&p, now, None, &shards(vec![busy, curve(now, &[IDLE; 6])])).is_empty());
        // 50 s of history, a missing window, a stale observation.
        let short = curve(now, &[IDLE; 5]);
        let mut gap = curve(now, &[IDLE; 6]);
        gap.remove(3);
        let stale = curve(now - 20_000, &[IDLE; 12]);
        for bad in [short, gap, stale] {
            let s = shards(vec![bad, curve(now, &[IDLE; 6])]);
            assert!(plan_merges(&p, now, None, &s).is_empty());
        }
        // Shards never observed (a new child, a shard this node does not host) are not merged.
        assert!(plan_merges(&p, now, None, &shards(vec![vec![], curve(now, &[IDLE; 6])])).is_empty());
    }

    #[test]
    fn only_adjacent_shards_merge() {
        let now = T0 + 600_000;
        let p = MergePolicy {
            min_shards: 1,
            ..policy()
        };
        // 0 and 2 are cold but 1 between them is warm.
        let s = shards(vec![
            curve(now, &[IDLE; 6]),
            curve(now, &[WARM; 6]),
            curve(now, &[IDLE; 6]),
        ]);
        assert!(plan_merges(&p, now, None, &s).is_empty());
        // Without shard 1 (closed), 0 and 2 are not adjacent either.
        let gapped = vec![s[0].clone(), s[2].clone()];
        assert!(plan_merges(&p, now, None, &gapped).is_empty());
    }

    #[test]
    fn the_minimum_the_cooldown_and_leadership_are_respected() {
        let now = T0 + 600_000;
        let s = shards(vec![curve(now, &[IDLE; 6]); 4]);
        // At 2 shards minimum, 4 shards allow 2 merges; at 3, one; at 4, none.
        for (min, merges) in [(1, 2), (2, 2), (3, 1), (4, 0), (9, 0)] {
            let p = MergePolicy {
                min_shards: min,
                ..policy()
            };
            assert_eq!(plan_merges(&p, now, None, &s).len(), merges, "min {min}");
        }
        let p = policy();
        assert!(plan_merges(&p, now, Some(now - 299_999), &s).is_empty());
        assert_eq!(plan_merges(&p, now, Some(now - 300_000), &s).len(), 2);
        // The node decides a pair only if it leads the lower shard.
        let mut s = s;
        s[0].leader = false;
        s[3].leader = false;
        assert_eq!(pairs(&plan_merges(&p, now, None, &s)), vec![(1, 2)]);
    }

    #[test]
    fn a_pair_whose_merged_shard_would_be_near_the_split_threshold_is_not_merged() {
        let now = T0 + 600_000;
        // Cold thresholds configured at the split thresholds: each shard is "cold" at 60 %
        // of the split threshold, but merged they would be at 120 %.
        let p = MergePolicy {
            cold_bytes_per_sec: MIB * 4 / 5,
            cold_records_per_sec: 800,
            min_shards: 1,
            ..policy()
        };
        let sixty = (MIB * 12 / 25, 10);
        let s = shards(vec![curve(now, &[sixty; 6]), curve(now, &[sixty; 6])]);
        assert!(plan_merges(&p, now, None, &s).is_empty());
        // At 25 % each the merged shard is at 50 % of the split threshold: merged.
        let quarter = (MIB / 5, 10);
        let s = shards(vec![curve(now, &[quarter; 6]), curve(now, &[quarter; 6])]);
        assert_eq!(plan_merges(&p, now, None, &s).len(), 1);
        // The peaks count, not the means: one window at 30 % each is too much.
        let peak = (MIB * 6 / 25, 10);
        let s = shards(vec![
            curve(now, &[quarter, quarter, peak, IDLE, IDLE, IDLE]),
            curve(now, &[quarter, peak, IDLE, IDLE, IDLE, IDLE]),
        ]);
        assert!(plan_merges(&p, now, None, &s).is_empty());
    }

    #[test]
    fn defaults_leave_headroom_between_cold_and_hot() {
        let p = MergePolicy::default();
        // Two shards at the cold threshold merge into one at half the split threshold.
        assert!(merged_load(&p, (2.0 * p.cold_bytes_per_sec as f64, 0.0)) <= MERGED_HEADROOM);
        assert!(merged_load(&p, (0.0, 2.0 * p.cold_records_per_sec as f64)) <= MERGED_HEADROOM);
        assert_eq!(p.min_shards, 4);
    }
}
