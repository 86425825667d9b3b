//! The ON_DEMAND reshard decision of one stream in one observation window: at most one
//! reshard, a split of a hot shard before a merge of cold ones (capacity first).

use super::cold_shards::Merge;
use super::cold_shards::MergePolicy;
use super::cold_shards::plan_merges;
use super::hot_shards::ShardLoad;
use super::hot_shards::Split;
use super::hot_shards::SplitPolicy;
use super::hot_shards::plan_splits;

/// What the node does about an ON_DEMAND stream's shards (`None`: that half is off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OnDemandPolicy {
    pub splits: Option<SplitPolicy>,
    pub merges: Option<MergePolicy>,
}

impl OnDemandPolicy {
    pub fn is_off(&self) -> bool {
        self.splits.is_none() && self.merges.is_none()
    }
}

/// One reshard of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reshard {
    Split(Split),
    Merge(Merge),
}

/// The reshard to start now, if any: the first split `plan_splits` proposes, else the first
/// merge `plan_merges` proposes. A reshard makes the stream UPDATING and starts the cooldowns,
/// so one per window is all that can happen anyway.
pub fn next_reshard(
    policy: &OnDemandPolicy,
    now_ms: i64,
    last_reshard_ms: Option<i64>,
    shards: &[ShardLoad],
) -> Option<Reshard> {
    let split = policy
        .splits
        .and_then(|p| plan_splits(&p, now_ms, last_reshard_ms, shards).first().copied());
    if let Some(split) = split {
        return Some(Reshard::Split(split));
    }
    // A shard that is hot but cannot be split (at the maximum, or in the cooldown) is not cold
    // either, so merges never work against a pending split.
    policy
        .merges
        .and_then(|p| plan_merges(&p, now_ms, last_reshard_ms, shards).first().copied())
        .map(Reshard::Merge)
}

#[cfg(test)]
mod tests {
    //! Simulations: a stream whose total load is spread uniformly over the hash key space,
    //! observed in 5-second windows, resharded as `next_reshard` decides (children start
    //! without history, as on a node). They check that the policy converges and does not flap.

    use std::time::Duration;

    use super::*;
    use crate::capacity::hot_shards::RateWindow;
    use crate::capacity::hot_shards::tests::MIB;
    use crate::capacity::hot_shards::tests::T0;
    use crate::model::hash_key::HashKeyRange;
    use crate::model::hash_key::divide_evenly;

    const WINDOW_MS: i64 = 5_000;

    fn policy() -> OnDemandPolicy {
        OnDemandPolicy {
            splits: Some(SplitPolicy::default()),
            merges: Some(MergePolicy::default()),
        }
    }

    struct Sim {
        policy: OnDemandPolicy,
        now_ms: i64,
        next_index: u32,
        last_reshard_ms: Option<i64>,
        shards: Vec<ShardLoad>,
        splits: usize,
        merges: usize,
    }

    impl Sim {
        fn new(policy: OnDemandPolicy, count: u32) -> Sim {
            let shards = divide_evenly(count)
                .into_iter()
                .enumerate()
                .map(|(i, range)| ShardLoad {
                    shard: i as u32,
                    range,
                    windows: Vec::new(),
                    leader: true,
                })
                .collect();
            Sim {
                policy,
                now_ms: T0,
                next_index: count,
                last_reshard_ms: None,
                shards,
                splits: 0,
                merges: 0,
            }
        }

        fn child(&mut self, range: HashKeyRange) -> ShardLoad {
            self.next_index += 1;
            ShardLoad {
                shard: self.next_index - 1,
                range,
                windows: Vec::new(),
                leader: true,
            }
        }

        /// One window at `bytes_per_sec` in total over the stream, then the decision.
        fn step(&mut self, bytes_per_sec: f64) {
            let start = self.now_ms;
            self.now_ms += WINDOW_MS;
            // The longest sustained period (15 min) and a margin.
            let keep_from = self.now_ms - 1_200_000;
            for s in &mut self.shards {
                let share = (s.range.end - s.range.start) as f64 / u128::MAX as f64;
                let bytes = (bytes_per_sec * share * (WINDOW_MS / 1000) as f64) as u64;
                s.windows.push(RateWindow {
                    start_ms: start,
                    end_ms: self.now_ms,
                    bytes,
                    records: bytes / 1000,
                });
                s.windows.retain(|w| w.end_ms >= keep_from);
            }
            match next_reshard(&self.policy, self.now_ms, self.last_reshard_ms, &self.shards) {
                Some(Reshard::Split(split)) => {
                    let i = self.shards.iter().position(|s| s.shard == split.shard).unwrap();
                    let parent = self.shards.remove(i).range;
                    let low = self.child(HashKeyRange {
                        start: parent.start,
                        end: split.new_starting_hash_key - 1,
                    });
                    let high = self.child(HashKeyRange {
                        start: split.new_starting_hash_key,
                        end: parent.end,
                    });
                    self.shards.push(low);
                    self.shards.push(high);
                    self.splits += 1;
                }
                Some(Reshard::Merge(merge)) => {
                    let a = self.shards.iter().position(|s| s.shard == merge.shard).unwrap();
                    let a = self.shards.remove(a).range;
                    let b = self
                        .shards
                        .iter()
                        .position(|s| s.shard == merge.adjacent_shard)
                        .unwrap();
                    let b = self.shards.remove(b).range;
                    assert_eq!(a.end + 1, b.start, "merged shards are adjacent");
                    let merged = self.child(HashKeyRange {
                        start: a.start,
                        end: b.end,
                    });
                    self.shards.push(merged);
                    self.merges += 1;
                }
                None => return,
            }
            self.last_reshard_ms = Some(self.now_ms);
        }

        fn run(&mut self, duration: Duration, load: impl Fn(i64) -> f64) {
            let end = self.now_ms + duration.as_millis() as i64;
            while self.now_ms < end {
                let l = load(self.now_ms - T0);
                self.step(l);
            }
        }

        fn reshards(&self) -> usize {
            self.splits + self.merges
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_constant_load_converges_and_then_never_reshards() {
        for mib_per_sec in [0.0, 0.5, 2.0, 3.3, 6.0, 10.0, 25.0] {
            let load = mib_per_sec * MIB as f64;
            let mut sim = Sim::new(policy(), 4);
            sim.run(6 * HOUR, |_| load);
            let settled = sim.reshards();
            sim.run(12 * HOUR, |_| load);
            assert_eq!(sim.reshards(), settled, "{mib_per_sec} MiB/s kept resharding");
            // Converged: no shard is hot, and the stream is not above the minimum while every
            // pair could merge cold.
            let per_shard_max = sim
                .shards
                .iter()
                .map(|s| (s.range.end - s.range.start) as f64 / u128::MAX as f64 * load)
                .fold(0.0, f64::max);
            assert!(
                per_shard_max < (MIB * 4 / 5) as f64,
                "{mib_per_sec} MiB/s: a hot shard is left"
            );
            assert!(sim.shards.len() >= 4, "below the minimum");
        }
    }

    #[test]
    fn an_idle_stream_is_merged_down_to_the_minimum_and_stays_there() {
        let mut sim = Sim::new(policy(), 16);
        sim.run(24 * HOUR, |_| 0.0);
        assert_eq!(sim.shards.len(), 4);
        assert_eq!((sim.splits, sim.merges), (0, 12));
    }

    #[test]
    fn load_that_swings_faster_than_the_sustained_periods_never_reshards() {
        // 30 s at 3 MiB/s, 30 s idle, for a day: never hot for a minute, never cold for 15.
        let mut sim = Sim::new(policy(), 4);
        sim.run(24 * HOUR, |t| {
            if (t / 30_000) % 2 == 0 {
                3.0 * MIB as f64
            } else {
                0.0
            }
        });
        assert_eq!(sim.reshards(), 0);
    }

    #[test]
    fn a_daily_peak_scales_up_and_down_once_per_cycle_without_flapping() {
        // 8 MiB/s for 4 h, then 0.2 MiB/s for 20 h, three days.
        let mut sim = Sim::new(policy(), 4);
        for day in 0..3 {
            let before = (sim.splits, sim.merges);
            sim.run(4 * HOUR, |_| 8.0 * MIB as f64);
            // Up to 16 shards (0.5 MiB/s each), by splits only.
            assert_eq!(sim.shards.len(), 16, "day {day}");
            assert_eq!(
                (sim.splits - before.0, sim.merges - before.1),
                (12, 0),
                "day {day}"
            );
            sim.run(20 * HOUR, |_| 0.2 * MIB as f64);
            // Back to the minimum, by merges only.
            assert_eq!(sim.shards.len(), 4, "day {day}");
            assert_eq!(
                (sim.splits - before.0, sim.merges - before.1),
                (12, 12),
                "day {day}"
            );
        }
    }

    #[test]
    fn load_just_under_the_split_threshold_after_merging_does_not_flap() {
        // Each of 8 shards at 35 % of the split threshold (28 % of a shard's limit): cold by
        // neither the default cold threshold nor merged (70 %) within the headroom.
        let load = 8.0 * 0.35 * (MIB * 4 / 5) as f64;
        let mut sim = Sim::new(policy(), 8);
        sim.run(24 * HOUR, |_| load);
        assert_eq!(sim.reshards(), 0);
        // With a (misconfigured) cold threshold as high as the split threshold, the headroom
        // rule alone still keeps the pairs apart.
        let merges = MergePolicy {
            cold_bytes_per_sec: MIB * 4 / 5,
            cold_records_per_sec: 800,
            ..MergePolicy::default()
        };
        let mut sim = Sim::new(
            OnDemandPolicy {
                merges: Some(merges),
                ..policy()
            },
            8,
        );
        sim.run(24 * HOUR, |_| load);
        assert_eq!(sim.reshards(), 0);
    }

    #[test]
    fn splits_come_before_merges() {
        let now = T0 + 3_600_000;
        // One window over the last hour: 1 MiB/s, or nothing.
        let hour = |bytes| {
            vec![RateWindow {
                start_ms: T0,
                end_ms: now,
                bytes,
                records: 0,
            }]
        };
        let (hot, idle) = (hour(3_600 * MIB), hour(0));
        let ranges = divide_evenly(8);
        let shards: Vec<ShardLoad> = ranges
            .into_iter()
            .enumerate()
            .map(|(i, range)| ShardLoad {
                shard: i as u32,
                range,
                windows: if i == 7 { hot.clone() } else { idle.clone() },
                leader: true,
            })
            .collect();
        let decision = next_reshard(&policy(), now, None, &shards);
        assert!(
            matches!(decision, Some(Reshard::Split(s)) if s.shard == 7),
            "{decision:?}"
        );
        let merges_only = OnDemandPolicy {
            splits: None,
            ..policy()
        };
        let decision = next_reshard(&merges_only, now, None, &shards);
        assert!(matches!(decision, Some(Reshard::Merge(_))), "{decision:?}");
        assert_eq!(next_reshard(&OnDemandPolicy::default(), now, None, &shards), None);
    }
}
