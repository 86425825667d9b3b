//! Simulation of the shard autoscaler on synthetic load curves, with a simulated clock.
#![allow(clippy::expect_used, clippy::unwrap_used)]
//! Each scenario feeds per-shard samples every 10 s, applies the decision the way the operator
//! would (split/merge, children start with no history), and checks that decisions converge
//! and do not flap.

use runnel_operator::policy::Seconds;
use runnel_operator::policy::autoscaling::AutoscalingConfig;
use runnel_operator::policy::autoscaling::AutoscalingInput;
use runnel_operator::policy::autoscaling::HotKey;
use runnel_operator::policy::autoscaling::ShardAction;
use runnel_operator::policy::autoscaling::ShardLoad;
use runnel_operator::policy::autoscaling::decide;
use runnel_operator::policy::capacity::LoadSample;
use runnel_operator::policy::hash_range::HashRange;

const TICK: Seconds = 10;
const MIB: f64 = 1024.0 * 1024.0;

/// Offered load at a time: spread evenly over the key space (in shard capacities) plus an
/// optional single hot hash key.
struct Load {
    uniform: f64,
    hot: Option<(u128, f64)>,
}

#[derive(Debug)]
enum Event {
    Split {
        at: Seconds,
    },
    Merge {
        at: Seconds,
        a_created: Seconds,
        b_created: Seconds,
    },
}

struct Sim {
    cfg: AutoscalingConfig,
    shards: Vec<ShardLoad>,
    next_id: u32,
    last_action: Option<Seconds>,
    events: Vec<Event>,
    counts: Vec<(Seconds, usize)>,
}

impl Sim {
    fn new(cfg: AutoscalingConfig, initial: u32) -> Sim {
        let shards = HashRange::even(initial)
            .into_iter()
            .enumerate()
            .map(|(i, range)| ShardLoad {
                shard_id: format!("shardId-{i:012}"),
                range,
                created_at: 0,
                samples: Vec::new(),
                hot_key: None,
            })
            .collect();
        Sim {
            cfg,
            shards,
            next_id: initial,
            last_action: None,
            events: Vec::new(),
            counts: Vec::new(),
        }
    }

    fn new_shard(&mut self, range: HashRange, now: Seconds) -> ShardLoad {
        let id = format!("shardId-{:012}", self.next_id);
        self.next_id += 1;
        ShardLoad {
            shard_id: id,
            range,
            created_at: now,
            samples: Vec::new(),
            hot_key: None,
        }
    }

    fn run(&mut self, until: Seconds, load: impl Fn(Seconds) -> Load) {
        let start = self.counts.last().map_or(0, |(t, _)| *t);
        let mut now = start;
        while now < until {
            now += TICK;
            let offered = load(now);
            for shard in &mut self.shards {
                let mut util = offered.uniform * shard.range.fraction();
                let mut hot_util = 0.0;
                if let Some((key, u)) = offered.hot
                    && shard.range.contains(key)
                {
                    util += u;
                    hot_util = u;
                }
                shard.samples.push(LoadSample {
                    at: now,
                    write_bytes_per_sec: util * MIB,
                    ..Default::default()
                });
                shard.samples.retain(|s| s.at + 1200 > now);
                shard.hot_key = offered.hot.filter(|_| hot_util > 0.0).map(|(key, _)| HotKey {
                    hash_key: key,
                    share: if util > 0.0 { hot_util / util } else { 0.0 },
                });
            }
            let decision = decide(&AutoscalingInput {
                config: &self.cfg,
                shards: &self.shards,
                last_action_at: self.last_action,
                now,
            });
            match decision.action {
                ShardAction::None => {}
                ShardAction::Split {
                    shard_id,
                    new_starting_hash_key,
                } => {
                    let i = self
                        .shards
                        .iter()
                        .position(|s| s.shard_id == shard_id)
                        .expect("split a known shard");
                    let parent = self.shards.remove(i);
                    let (lo, hi) = parent
                        .range
                        .split_at(new_starting_hash_key)
                        .expect("valid split point");
                    let (a, b) = (self.new_shard(lo, now), self.new_shard(hi, now));
                    self.shards.extend([a, b]);
                    self.events.push(Event::Split { at: now });
                    self.last_action = Some(now);
                }
                ShardAction::Merge {
                    shard_id,
                    adjacent_shard_id,
                } => {
                    let a = self.take(&shard_id);
                    let b = self.take(&adjacent_shard_id);
                    let merged = a.range.merge(&b.range).expect("merge adjacent shards");
                    let child = self.new_shard(merged, now);
                    self.shards.push(child);
                    self.events.push(Event::Merge {
                        at: now,
                        a_created: a.created_at,
                        b_created: b.created_at,
                    });
                    self.last_action = Some(now);
                }
            }
            self.shards.sort_by_key(|s| s.range.start);
            self.assert_tiled();
            self.counts.push((now, self.shards.len()));
        }
    }

    fn take(&mut self, id: &str) -> ShardLoad {
        let i = self
            .shards
            .iter()
            .position(|s| s.shard_id == id)
            .expect("known shard");
        self.shards.remove(i)
    }

    fn assert_tiled(&self) {
        assert_eq!(self.shards[0].range.start, 0);
        assert_eq!(self.shards[self.shards.len() - 1].range.end, u128::MAX);
        for pair in self.shards.windows(2) {
            assert!(pair[0].range.is_adjacent_to(&pair[1].range));
        }
    }

    fn actions_between(&self, from: Seconds, to: Seconds) -> usize {
        self.events
            .iter()
            .filter(|e| {
                let at = match e {
                    Event::Split { at, .. } | Event::Merge { at, .. } => *at,
                };
                at > from && at <= to
            })
            .count()
    }

    fn splits(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Split { .. }))
            .count()
    }

    fn merges(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Merge { .. }))
            .count()
    }

    fn max_utilization(&self, load: &Load) -> f64 {
        self.shards
            .iter()
            .map(|s| {
                s.range.fraction() * load.uniform
                    + load
                        .hot
                        .filter(|(k, _)| s.range.contains(*k))
                        .map_or(0.0, |(_, u)| u)
            })
            .fold(0.0, f64::max)
    }

    /// No merge consumed a shard younger than the scale-down cooldown: a split is never undone
    /// before the cooldown has passed.
    fn assert_no_quick_undo(&self) {
        for e in &self.events {
            if let Event::Merge {
                at,
                a_created,
                b_created,
            } = e
            {
                let youngest = at - (*a_created).max(*b_created);
                assert!(
                    youngest >= self.cfg.scale_down_cooldown || (*a_created == 0 && *b_created == 0),
                    "merge at {at} undid a split {youngest}s old: {:?}",
                    self.events
                );
            }
        }
    }

    fn assert_within_bounds(&self, from: Seconds) {
        for (t, n) in &self.counts {
            if *t >= from {
                assert!(
                    (self.cfg.min_shards..=self.cfg.max_shards).contains(n),
                    "{n} shards at {t}"
                );
            }
        }
    }
}

fn config(min: usize, max: usize) -> AutoscalingConfig {
    AutoscalingConfig {
        min_shards: min,
        max_shards: max,
        ..Default::default()
    }
}

#[test]
fn ramp_scales_up_monotonically_then_settles() {
    let mut sim = Sim::new(config(1, 32), 1);
    let ramp = |t: Seconds| Load {
        uniform: 0.5 + 7.5 * (t.min(3600) as f64 / 3600.0),
        hot: None,
    };
    sim.run(7200, ramp);
    assert_eq!(
        sim.merges(),
        0,
        "no merge while load only grows: {:?}",
        sim.events
    );
    assert!(sim.counts.windows(2).all(|w| w[1].1 >= w[0].1));
    assert_eq!(
        sim.actions_between(5400, 7200),
        0,
        "settled in the last 30 minutes"
    );
    let top = sim.max_utilization(&ramp(7200));
    assert!(
        top <= sim.cfg.target_utilization,
        "shards at most at target once settled, got {top}"
    );
    assert!(
        sim.shards.len() <= 16,
        "no more shards than needed: {}",
        sim.shards.len()
    );
    sim.assert_within_bounds(0);
}

#[test]
fn short_spike_is_ignored() {
    let mut sim = Sim::new(config(1, 32), 2);
    sim.run(3600, |t| Load {
        uniform: if (1800..1860).contains(&t) { 6.0 } else { 0.6 },
        hot: None,
    });
    assert_eq!(sim.splits(), 0, "{:?}", sim.events);
}

#[test]
fn sustained_spike_splits_then_merges_back_after_cooldown() {
    let mut sim = Sim::new(config(1, 32), 1);
    sim.run(6 * 3600, |t| Load {
        uniform: if (600..2400).contains(&t) { 2.5 } else { 0.2 },
        hot: None,
    });
    assert!(sim.splits() >= 2);
    assert!(
        sim.merges() >= 1,
        "cold shards merged after the spike: {:?}",
        sim.events
    );
    assert_eq!(sim.shards.len(), 1, "back to one shard for 0.2 of a shard's load");
    sim.assert_no_quick_undo();
    assert_eq!(sim.actions_between(5 * 3600, 6 * 3600), 0);
}

#[test]
fn hot_key_is_isolated_without_runaway_splits() {
    let mut sim = Sim::new(config(1, 32), 1);
    let key = u128::MAX / 7 * 3;
    let load = |_| Load {
        uniform: 0.3,
        hot: Some((key, 1.2)),
    };
    sim.run(4 * 3600, load);
    assert!(
        sim.splits() <= 2,
        "splitting cannot cool one key; got {:?}",
        sim.events
    );
    assert_eq!(sim.actions_between(3600, 4 * 3600), 0, "settled");
    let hot = sim.shards.iter().find(|s| s.range.contains(key)).map(|s| s.range);
    assert!(
        hot.is_some_and(|r| r.start == key || r.end == key),
        "hot key sits at a shard edge: {hot:?}"
    );
}

#[test]
fn diurnal_load_follows_the_curve_without_flapping() {
    let mut sim = Sim::new(config(2, 32), 2);
    let day = 86_400.0;
    let diurnal = |t: Seconds| Load {
        uniform: 2.5 + 2.0 * (2.0 * std::f64::consts::PI * t as f64 / day).sin(),
        hot: None,
    };
    sim.run(3 * 86_400, diurnal);
    sim.assert_within_bounds(0);
    sim.assert_no_quick_undo();
    let per_day = sim.events.len() as f64 / 3.0;
    assert!(
        per_day <= 30.0,
        "{per_day} actions per day is flapping: {:?}",
        sim.events
    );
    assert!(
        sim.splits() >= 3 && sim.merges() >= 3,
        "follows the curve both ways: {:?}",
        sim.events
    );
    // Throughput never sits above the shard limit for long: hot shards are split.
    let peak_shards = sim.counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    assert!(
        peak_shards >= 8,
        "peak of 4.5 shard capacities needs at least 8 shards at 70%"
    );
}

#[test]
fn bounds_hold_when_load_exceeds_max_shards() {
    let mut sim = Sim::new(config(2, 4), 2);
    sim.run(2 * 3600, |_| Load {
        uniform: 20.0,
        hot: None,
    });
    assert_eq!(sim.shards.len(), 4);
    sim.assert_within_bounds(0);
    assert_eq!(sim.merges(), 0);
}
