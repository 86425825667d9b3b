//! Shard autoscaling: when to split a hot shard or merge two cold neighbours.
//!
//! Rules, in order:
//! 1. Bounds first: below `min_shards` split the widest shard; above `max_shards` merge the
//!    coldest adjacent pair (each paced by its cooldown).
//! 2. Split the hottest shard whose utilisation stayed above the target for every sample of the
//!    last `split_window` (a short spike does not split), if below `max_shards` and the
//!    scale-up cooldown since the last action has passed. The split point is the middle of the
//!    range, or isolates a dominant hot hash key when the node reports one. A shard whose load
//!    is one key that alone exceeds the target is not split: splitting cannot help it.
//! 3. Merge the coldest adjacent pair whose combined peak over the last `merge_window` stays
//!    under `merge_watermark` x target (so the merged shard sits well below the split
//!    threshold: hysteresis), if above `min_shards` and the scale-down cooldown has passed.
//!    Shards younger than the window have too little history and are never merged, so a split
//!    is not undone by a merge of its children within the window.

use crate::crd::StreamMode;
use crate::crd::StreamSpec;

use super::Seconds;
use super::capacity::LoadSample;
use super::capacity::ShardCapacity;
use super::hash_range::HashRange;

/// Tunables of the shard autoscaler, resolved from the Stream's `autoscaling` block.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalingConfig {
    pub min_shards: usize,
    pub max_shards: usize,
    /// Target utilisation as a fraction of shard capacity (0.7 = 70 %).
    pub target_utilization: f64,
    /// Least time since the last scaling action before a split.
    pub scale_up_cooldown: Seconds,
    /// Least time since the last scaling action before a merge.
    pub scale_down_cooldown: Seconds,
    /// How long a shard must stay above target before it is split.
    pub split_window: Seconds,
    /// How long a pair must stay cold before it is merged.
    pub merge_window: Seconds,
    /// A pair merges when its combined peak is below this fraction of the target.
    pub merge_watermark: f64,
    pub capacity: ShardCapacity,
}

impl Default for AutoscalingConfig {
    fn default() -> Self {
        AutoscalingConfig {
            min_shards: 1,
            max_shards: 200,
            target_utilization: 0.7,
            scale_up_cooldown: 60,
            scale_down_cooldown: 600,
            split_window: 120,
            merge_window: 900,
            merge_watermark: 0.5,
            capacity: ShardCapacity::default(),
        }
    }
}

impl AutoscalingConfig {
    /// Resolves the Stream's autoscaling block with defaults; `None` when autoscaling is off
    /// (the default in PROVISIONED mode).
    pub fn from_spec(spec: &StreamSpec) -> Option<AutoscalingConfig> {
        let on_demand = spec.mode() == StreamMode::OnDemand;
        let block = spec.autoscaling.clone().unwrap_or_default();
        if !block.enabled.unwrap_or(on_demand) {
            return None;
        }
        let d = AutoscalingConfig::default();
        let positive = |v: Option<i32>, default: usize| {
            v.and_then(|v| usize::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        let secs =
            |v: Option<i32>, default: Seconds| v.and_then(|v| Seconds::try_from(v).ok()).unwrap_or(default);
        let min_shards = positive(block.min_shards, if on_demand { 4 } else { d.min_shards });
        Some(AutoscalingConfig {
            min_shards,
            max_shards: positive(block.max_shards, d.max_shards).max(min_shards),
            target_utilization: block
                .target_utilization_percent
                .filter(|p| (1..=100).contains(p))
                .map_or(d.target_utilization, |p| f64::from(p) / 100.0),
            scale_up_cooldown: secs(block.scale_up_cooldown_seconds, d.scale_up_cooldown),
            scale_down_cooldown: secs(block.scale_down_cooldown_seconds, d.scale_down_cooldown),
            split_window: secs(block.scale_up_window_seconds, d.split_window).max(1),
            merge_window: secs(block.scale_down_window_seconds, d.merge_window).max(1),
            ..d
        })
    }
}

/// An open shard with its recent load.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardLoad {
    pub shard_id: String,
    pub range: HashRange,
    /// When the shard was created (split or merge children start with no history).
    pub created_at: Seconds,
    /// Samples in time order; older than the longest window may be dropped by the caller.
    pub samples: Vec<LoadSample>,
    /// The hottest hash key the node saw in the last window and its share of the shard's load
    /// (0..=1), when the node tracks it.
    pub hot_key: Option<HotKey>,
}

/// A hash key carrying a large share of a shard's load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HotKey {
    pub hash_key: u128,
    pub share: f64,
}

/// Everything the autoscaler looks at.
#[derive(Clone, Debug)]
pub struct AutoscalingInput<'a> {
    pub config: &'a AutoscalingConfig,
    /// Open shards, in any order.
    pub shards: &'a [ShardLoad],
    /// Time of the last split or merge of this stream, if any.
    pub last_action_at: Option<Seconds>,
    pub now: Seconds,
}

/// What to do with the stream's shards now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardAction {
    None,
    /// `SplitShard`: the upper child starts at `new_starting_hash_key`.
    Split {
        shard_id: String,
        new_starting_hash_key: u128,
    },
    /// `MergeShards`: `shard_id` and the `adjacent_shard_id` just above it.
    Merge {
        shard_id: String,
        adjacent_shard_id: String,
    },
}

/// An action with the reason to report in Events and the `Scaling` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardDecision {
    pub action: ShardAction,
    pub reason: String,
}

impl ShardDecision {
    fn none(reason: impl Into<String>) -> ShardDecision {
        ShardDecision {
            action: ShardAction::None,
            reason: reason.into(),
        }
    }
}

/// Decides at most one split or merge for a stream.
pub fn decide(input: &AutoscalingInput<'_>) -> ShardDecision {
    let cfg = input.config;
    let mut shards: Vec<&ShardLoad> = input.shards.iter().collect();
    shards.sort_by_key(|s| s.range.start);
    let since_last = input
        .last_action_at
        .map_or(Seconds::MAX, |t| input.now.saturating_sub(t));
    let up_ready = since_last >= cfg.scale_up_cooldown;
    let down_ready = since_last >= cfg.scale_down_cooldown;
    let n = shards.len();

    if n < cfg.min_shards {
        if !up_ready {
            return ShardDecision::none("below minShards; waiting for the scale-up cooldown");
        }
        return widest_split(&shards)
            .unwrap_or_else(|| ShardDecision::none("below minShards but no shard can split"));
    }
    if n > cfg.max_shards {
        if !down_ready {
            return ShardDecision::none("above maxShards; waiting for the scale-down cooldown");
        }
        return coldest_pair(cfg, &shards, input.now, f64::INFINITY)
            .unwrap_or_else(|| ShardDecision::none("above maxShards but no adjacent pair to merge"));
    }
    if n < cfg.max_shards
        && let Some(decision) = hot_split(cfg, &shards, input.now)
    {
        if up_ready {
            return decision;
        }
        return ShardDecision::none("a shard is hot; waiting for the scale-up cooldown");
    }
    if n > cfg.min_shards && down_ready {
        let limit = cfg.merge_watermark * cfg.target_utilization;
        if let Some(decision) = coldest_pair(cfg, &shards, input.now, limit) {
            return decision;
        }
    }
    ShardDecision::none("within target")
}

/// Samples of a shard in `(now - window, now]`, or `None` when the shard's history does not
/// cover the whole window yet.
fn window(shard: &ShardLoad, now: Seconds, window: Seconds) -> Option<Vec<&LoadSample>> {
    let from = now.checked_sub(window)?;
    if shard.created_at > from {
        return None;
    }
    let first = shard.samples.first()?;
    // Samples must reach back to the start of the window (one sampling interval of slack).
    let interval = shard
        .samples
        .windows(2)
        .map(|w| w[1].at.saturating_sub(w[0].at))
        .max()
        .unwrap_or(0);
    if first.at > from + interval {
        return None;
    }
    let in_window: Vec<&LoadSample> = shard
        .samples
        .iter()
        .filter(|s| s.at > from && s.at <= now)
        .collect();
    (!in_window.is_empty()).then_some(in_window)
}

fn trough(cfg: &AutoscalingConfig, samples: &[&LoadSample]) -> f64 {
    samples
        .iter()
        .map(|s| cfg.capacity.utilization(s))
        .fold(f64::INFINITY, f64::min)
}

fn hot_split(cfg: &AutoscalingConfig, shards: &[&ShardLoad], now: Seconds) -> Option<ShardDecision> {
    let mut best: Option<(f64, ShardDecision)> = None;
    for shard in shards {
        let Some(samples) = window(shard, now, cfg.split_window) else {
            continue;
        };
        let low = trough(cfg, &samples);
        if low <= cfg.target_utilization {
            continue;
        }
        let Some((new_start, how)) = split_point(cfg, shard, low) else {
            continue;
        };
        if best.as_ref().is_none_or(|(u, _)| low > *u) {
            let reason = format!(
                "{} stayed above {:.0}% utilisation for {}s (lowest {:.0}%); splitting {how}",
                shard.shard_id,
                cfg.target_utilization * 100.0,
                cfg.split_window,
                low * 100.0
            );
            best = Some((
                low,
                ShardDecision {
                    action: ShardAction::Split {
                        shard_id: shard.shard_id.clone(),
                        new_starting_hash_key: new_start,
                    },
                    reason,
                },
            ));
        }
    }
    best.map(|(_, d)| d)
}

/// Where to split a hot shard, or `None` when splitting cannot bring it under target.
fn split_point(cfg: &AutoscalingConfig, shard: &ShardLoad, utilization: f64) -> Option<(u128, &'static str)> {
    let range = shard.range;
    if let Some(hot) = shard
        .hot_key
        .filter(|h| h.share >= 0.5 && range.contains(h.hash_key))
    {
        let rest = utilization * (1.0 - hot.share);
        let isolated = hot.hash_key == range.start || hot.hash_key == range.end;
        if utilization * hot.share > cfg.target_utilization
            && (isolated || rest < cfg.target_utilization * 0.25)
        {
            // One key is the load: a split would leave it as hot as before.
            return None;
        }
        // Put the hot key alone at the edge of a child so the rest of the range moves away.
        let below = hot.hash_key - range.start;
        let above = range.end - hot.hash_key;
        let new_start = if below >= above {
            hot.hash_key
        } else {
            hot.hash_key + 1
        };
        return range
            .split_at(new_start)
            .map(|_| (new_start, "to isolate the hot hash key"));
    }
    range.midpoint().map(|m| (m, "at the middle of its hash range"))
}

fn widest_split(shards: &[&ShardLoad]) -> Option<ShardDecision> {
    let widest = shards
        .iter()
        .filter(|s| s.range.midpoint().is_some())
        .max_by(|a, b| {
            (a.range.end - a.range.start)
                .cmp(&(b.range.end - b.range.start))
                .then(b.range.start.cmp(&a.range.start))
        })?;
    let new_start = widest.range.midpoint()?;
    Some(ShardDecision {
        action: ShardAction::Split {
            shard_id: widest.shard_id.clone(),
            new_starting_hash_key: new_start,
        },
        reason: format!(
            "fewer open shards than minShards; splitting the widest shard {}",
            widest.shard_id
        ),
    })
}

/// The adjacent pair with the lowest combined peak under `limit` (utilisation fraction).
fn coldest_pair(
    cfg: &AutoscalingConfig,
    shards: &[&ShardLoad],
    now: Seconds,
    limit: f64,
) -> Option<ShardDecision> {
    let mut best: Option<(f64, &ShardLoad, &ShardLoad)> = None;
    for pair in shards.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if !a.range.is_adjacent_to(&b.range) {
            continue;
        }
        let combined = if limit.is_finite() {
            let (Some(sa), Some(sb)) = (window(a, now, cfg.merge_window), window(b, now, cfg.merge_window))
            else {
                continue;
            };
            combined_peak(cfg, &sa, &sb)
        } else {
            // Over maxShards: merge regardless of history, coldest known first.
            let all_a: Vec<&LoadSample> = a.samples.iter().collect();
            let all_b: Vec<&LoadSample> = b.samples.iter().collect();
            combined_peak(cfg, &all_a, &all_b)
        };
        if combined < limit && best.as_ref().is_none_or(|(c, _, _)| combined < *c) {
            best = Some((combined, a, b));
        }
    }
    let (combined, a, b) = best?;
    Some(ShardDecision {
        action: ShardAction::Merge {
            shard_id: a.shard_id.clone(),
            adjacent_shard_id: b.shard_id.clone(),
        },
        reason: format!(
            "{} and {} together peaked at {:.0}% of one shard's capacity over the last {}s",
            a.shard_id,
            b.shard_id,
            combined * 100.0,
            cfg.merge_window
        ),
    })
}

/// Peak utilisation the two shards would have had as one, pairing samples by time.
fn combined_peak(cfg: &AutoscalingConfig, a: &[&LoadSample], b: &[&LoadSample]) -> f64 {
    let mut peak: f64 = 0.0;
    for sa in a {
        let other = b.iter().min_by_key(|sb| sb.at.abs_diff(sa.at));
        let sum = LoadSample {
            at: sa.at,
            write_bytes_per_sec: sa.write_bytes_per_sec + other.map_or(0.0, |s| s.write_bytes_per_sec),
            write_records_per_sec: sa.write_records_per_sec + other.map_or(0.0, |s| s.write_records_per_sec),
            read_bytes_per_sec: sa.read_bytes_per_sec + other.map_or(0.0, |s| s.read_bytes_per_sec),
        };
        peak = peak.max(cfg.capacity.utilization(&sum));
    }
    if a.is_empty() {
        peak = b.iter().map(|s| cfg.capacity.utilization(s)).fold(0.0, f64::max);
    }
    peak
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Autoscaling;
    use crate::crd::StreamModeDetails;

    const MIB: f64 = 1024.0 * 1024.0;

    fn shard(id: &str, range: HashRange, utilization: &[(Seconds, f64)]) -> ShardLoad {
        ShardLoad {
            shard_id: id.to_string(),
            range,
            created_at: 0,
            samples: utilization
                .iter()
                .map(|&(at, u)| LoadSample {
                    at,
                    write_bytes_per_sec: u * MIB,
                    ..Default::default()
                })
                .collect(),
            hot_key: None,
        }
    }

    fn steady(from: Seconds, to: Seconds, u: f64) -> Vec<(Seconds, f64)> {
        (from..=to).step_by(10).map(|t| (t, u)).collect()
    }

    fn run(
        cfg: &AutoscalingConfig,
        shards: &[ShardLoad],
        last: Option<Seconds>,
        now: Seconds,
    ) -> ShardAction {
        decide(&AutoscalingInput {
            config: cfg,
            shards,
            last_action_at: last,
            now,
        })
        .action
    }

    #[test]
    fn sustained_hot_shard_splits_at_midpoint() {
        let cfg = AutoscalingConfig::default();
        let shards = [shard("s0", HashRange::FULL, &steady(0, 300, 0.9))];
        let expected = HashRange::FULL.midpoint().unwrap_or_default();
        assert_eq!(
            run(&cfg, &shards, None, 300),
            ShardAction::Split {
                shard_id: "s0".into(),
                new_starting_hash_key: expected
            }
        );
    }

    #[test]
    fn short_spike_does_not_split() {
        let cfg = AutoscalingConfig::default();
        let mut samples = steady(0, 250, 0.3);
        samples.extend(steady(260, 300, 1.5));
        assert_eq!(
            run(&cfg, &[shard("s0", HashRange::FULL, &samples)], None, 300),
            ShardAction::None
        );
    }

    #[test]
    fn cooldown_delays_split() {
        let cfg = AutoscalingConfig::default();
        let shards = [shard("s0", HashRange::FULL, &steady(0, 300, 0.9))];
        assert_eq!(run(&cfg, &shards, Some(280), 300), ShardAction::None);
        assert!(matches!(
            run(&cfg, &shards, Some(240), 300),
            ShardAction::Split { .. }
        ));
    }

    #[test]
    fn cold_neighbours_merge_only_after_the_window() {
        let cfg = AutoscalingConfig {
            min_shards: 1,
            ..Default::default()
        };
        let [a, b] = [HashRange::even(2)[0], HashRange::even(2)[1]];
        let shards = [
            shard("s0", a, &steady(0, 2000, 0.1)),
            shard("s1", b, &steady(0, 2000, 0.1)),
        ];
        assert_eq!(
            run(&cfg, &shards, None, 600),
            ShardAction::None,
            "history shorter than merge window"
        );
        assert_eq!(
            run(&cfg, &shards, None, 2000),
            ShardAction::Merge {
                shard_id: "s0".into(),
                adjacent_shard_id: "s1".into()
            }
        );
        assert_eq!(
            run(&cfg, &shards, Some(1900), 2000),
            ShardAction::None,
            "scale-down cooldown"
        );
    }

    #[test]
    fn warm_pair_does_not_merge() {
        let cfg = AutoscalingConfig::default();
        let r = HashRange::even(2);
        let shards = [
            shard("s0", r[0], &steady(0, 2000, 0.2)),
            shard("s1", r[1], &steady(0, 2000, 0.2)),
        ];
        // 0.4 combined > 0.5 * 0.7 = 0.35: merging would land too close to the split threshold.
        assert_eq!(run(&cfg, &shards, None, 2000), ShardAction::None);
    }

    #[test]
    fn min_and_max_shards_are_enforced() {
        let cfg = AutoscalingConfig {
            min_shards: 2,
            max_shards: 2,
            ..Default::default()
        };
        let one = [shard("s0", HashRange::FULL, &steady(0, 100, 0.0))];
        assert!(matches!(run(&cfg, &one, None, 100), ShardAction::Split { .. }));
        let r = HashRange::even(3);
        let three: Vec<ShardLoad> = r
            .iter()
            .enumerate()
            .map(|(i, r)| shard(&format!("s{i}"), *r, &steady(0, 100, 0.6)))
            .collect();
        assert!(matches!(run(&cfg, &three, None, 100), ShardAction::Merge { .. }));
        let two: Vec<ShardLoad> = HashRange::even(2)
            .iter()
            .enumerate()
            .map(|(i, r)| shard(&format!("s{i}"), *r, &steady(0, 300, 0.95)))
            .collect();
        assert_eq!(
            run(&cfg, &two, None, 300),
            ShardAction::None,
            "hot but at maxShards"
        );
    }

    #[test]
    fn single_hot_key_is_isolated_once_then_left_alone() {
        let cfg = AutoscalingConfig::default();
        let key = u128::MAX / 3;
        let mut s = shard("s0", HashRange::FULL, &steady(0, 300, 1.2));
        s.hot_key = Some(HotKey {
            hash_key: key,
            share: 0.7,
        });
        assert_eq!(
            run(&cfg, &[s.clone()], None, 300),
            ShardAction::Split {
                shard_id: "s0".into(),
                new_starting_hash_key: key + 1
            }
        );
        // The child with the hot key at its edge is not split again.
        s.range = HashRange { start: 0, end: key };
        s.hot_key = Some(HotKey {
            hash_key: key,
            share: 0.98,
        });
        assert_eq!(run(&cfg, &[s], None, 300), ShardAction::None);
    }

    #[test]
    fn config_from_spec_defaults_by_mode() {
        let provisioned = StreamSpec {
            shard_count: Some(2),
            ..Default::default()
        };
        assert_eq!(AutoscalingConfig::from_spec(&provisioned), None);
        let on_demand = StreamSpec {
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: StreamMode::OnDemand,
            }),
            autoscaling: Some(Autoscaling {
                target_utilization_percent: Some(50),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cfg = AutoscalingConfig::from_spec(&on_demand);
        assert_eq!(cfg.as_ref().map(|c| c.min_shards), Some(4));
        assert_eq!(cfg.as_ref().map(|c| c.split_window), Some(120));
        assert_eq!(cfg.map(|c| c.target_utilization), Some(0.5));
        let windows = StreamSpec {
            autoscaling: Some(Autoscaling {
                enabled: Some(true),
                scale_up_window_seconds: Some(5),
                scale_down_window_seconds: Some(30),
                ..Default::default()
            }),
            ..provisioned
        };
        let cfg = AutoscalingConfig::from_spec(&windows);
        assert_eq!(
            cfg.as_ref().map(|c| (c.split_window, c.merge_window)),
            Some((5, 30))
        );
        assert_eq!(cfg.map(|c| c.min_shards), Some(1));
    }
}
