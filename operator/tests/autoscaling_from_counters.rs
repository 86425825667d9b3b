//! The autoscaler fed the way the operator feeds it: cumulative per-shard counters, as the
//! nodes export them, summed over two nodes, sampled every 10 s into the [`LoadTracker`], turned
//! into shard loads for the open shards of a simulated DescribeStream, decided, and applied as
//! split/merge (parents close, children get new ids and start without history). A ramp, a
//! plateau and a drop must converge without flapping; a node restart (counter reset) and a
//! missed scrape must not trigger anything.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use runnel_operator::load::LoadTracker;
use runnel_operator::node_metrics::Counters;
use runnel_operator::node_metrics::SeriesKey;
use runnel_operator::observed::ObservedShard;
use runnel_operator::policy::Seconds;
use runnel_operator::policy::autoscaling::AutoscalingConfig;
use runnel_operator::policy::autoscaling::AutoscalingInput;
use runnel_operator::policy::autoscaling::ShardAction;
use runnel_operator::policy::autoscaling::decide;
use runnel_operator::policy::hash_range::HashRange;

const TICK: Seconds = 10;
const MIB: f64 = 1024.0 * 1024.0;
const STREAM: &str = "orders";

struct Cluster {
    shards: Vec<ObservedShard>,
    next: u32,
    /// Cumulative write bytes per shard, per node (half of the traffic enters each node).
    counters: [BTreeMap<String, f64>; 2],
    tracker: LoadTracker,
    cfg: AutoscalingConfig,
    last_action: Option<Seconds>,
    /// (time, open shards after the action, true for a split)
    actions: Vec<(Seconds, usize, bool)>,
}

fn range_of(s: &ObservedShard) -> HashRange {
    HashRange::new(
        s.starting_hash_key.parse().unwrap(),
        s.ending_hash_key.parse().unwrap(),
    )
    .unwrap()
}

impl Cluster {
    fn new(cfg: AutoscalingConfig, initial: u32) -> Cluster {
        let mut c = Cluster {
            shards: Vec::new(),
            next: 0,
            counters: [BTreeMap::new(), BTreeMap::new()],
            tracker: LoadTracker::new(3600),
            cfg,
            last_action: None,
            actions: Vec::new(),
        };
        for r in HashRange::even(initial) {
            c.open(r, None);
        }
        c
    }

    fn open(&mut self, r: HashRange, parent: Option<String>) {
        self.shards.push(ObservedShard {
            shard_id: format!("shardId-{:012}", self.next),
            parent_shard_id: parent,
            starting_hash_key: r.start.to_string(),
            ending_hash_key: r.end.to_string(),
            ..ObservedShard::default()
        });
        self.next += 1;
    }

    fn open_count(&self) -> usize {
        self.shards.iter().filter(|s| !s.closed).count()
    }

    fn close(&mut self, id: &str) -> HashRange {
        let s = self.shards.iter_mut().find(|s| s.shard_id == id).unwrap();
        assert!(!s.closed, "{id} already closed");
        s.closed = true;
        range_of(s)
    }

    /// `load(t)` in shard capacities, spread evenly over the key space.
    fn run(
        &mut self,
        from: Seconds,
        to: Seconds,
        load: impl Fn(Seconds) -> f64,
        skip: impl Fn(Seconds) -> bool,
    ) {
        let mut now = from;
        while now < to {
            now += TICK;
            for s in self.shards.iter().filter(|s| !s.closed) {
                let bytes = load(now) * range_of(s).fraction() * MIB * TICK as f64;
                for node in &mut self.counters {
                    *node.entry(s.shard_id.clone()).or_insert(0.0) += bytes / 2.0;
                }
            }
            if !skip(now) {
                let nodes = self
                    .counters
                    .iter()
                    .enumerate()
                    .map(|(i, node)| {
                        let series = node
                            .iter()
                            .map(|(shard, bytes)| {
                                (
                                    SeriesKey {
                                        stream: STREAM.into(),
                                        shard: Some(shard.clone()),
                                    },
                                    Counters {
                                        write_bytes: *bytes,
                                        ..Counters::default()
                                    },
                                )
                            })
                            .collect::<BTreeMap<_, _>>();
                        (format!("node-{i}"), series)
                    })
                    .collect();
                self.tracker.record(now * 1000, nodes);
            }
            let loads = self.tracker.shard_loads(STREAM, &self.shards, now);
            let decision = decide(&AutoscalingInput {
                config: &self.cfg,
                shards: &loads,
                last_action_at: self.last_action,
                now,
            });
            match decision.action {
                ShardAction::None => continue,
                ShardAction::Split {
                    shard_id,
                    new_starting_hash_key,
                } => {
                    let r = self.close(&shard_id);
                    let (lo, hi) = r.split_at(new_starting_hash_key).unwrap();
                    self.open(lo, Some(shard_id.clone()));
                    self.open(hi, Some(shard_id));
                    self.actions.push((now, self.open_count(), true));
                }
                ShardAction::Merge {
                    shard_id,
                    adjacent_shard_id,
                } => {
                    let a = self.close(&shard_id);
                    let b = self.close(&adjacent_shard_id);
                    self.open(a.merge(&b).unwrap(), Some(shard_id));
                    self.actions.push((now, self.open_count(), false));
                }
            }
            self.last_action = Some(now);
        }
    }

    /// A node restarts: its counters start again from zero.
    fn restart_node(&mut self, i: usize) {
        self.counters[i].clear();
    }
}

fn no_skip(_: Seconds) -> bool {
    false
}

#[test]
fn counters_drive_a_ramp_up_and_a_drop_down_without_flapping() {
    let cfg = AutoscalingConfig {
        min_shards: 1,
        max_shards: 32,
        ..AutoscalingConfig::default()
    };
    let mut c = Cluster::new(cfg, 1);
    // Ramp from 0.2 to 4 shard capacities over an hour, hold an hour.
    let ramp = |t: Seconds| 0.2 + 3.8 * (t.min(3600) as f64 / 3600.0);
    c.run(0, 7200, ramp, no_skip);
    let splits = c.actions.iter().filter(|a| a.2).count();
    assert!(splits >= 3, "{:?}", c.actions);
    assert!(
        c.actions.iter().all(|a| a.2),
        "no merge while load grows: {:?}",
        c.actions
    );
    assert!(
        c.actions.iter().all(|a| a.0 < 5400),
        "settled before the last half hour: {:?}",
        c.actions
    );
    // Every open shard under target at the plateau.
    let top = c
        .shards
        .iter()
        .filter(|s| !s.closed)
        .map(|s| ramp(7200) * range_of(s).fraction())
        .fold(0.0, f64::max);
    assert!(top <= c.cfg.target_utilization, "{top}");
    let peak = c.open_count();

    // Drop to 0.3 of one shard for three hours: merges, but none before its window and cooldown.
    let before = c.actions.len();
    c.run(7200, 7200 + 3 * 3600, |_| 0.3, no_skip);
    let later = &c.actions[before..];
    assert!(later.iter().all(|a| !a.2), "no split while cold: {later:?}");
    assert!(
        !later.is_empty() && c.open_count() < peak,
        "merged down: {later:?}"
    );
    for pair in later.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= c.cfg.scale_down_cooldown, "{later:?}");
    }
    assert!(later[0].0 >= 7200 + c.cfg.merge_window, "{later:?}");
}

#[test]
fn a_node_restart_and_missed_scrapes_trigger_nothing() {
    let cfg = AutoscalingConfig {
        min_shards: 2,
        max_shards: 8,
        ..AutoscalingConfig::default()
    };
    let mut c = Cluster::new(cfg, 2);
    // Steady 0.5 shard capacities: 0.25 per shard, within target, too warm to merge.
    c.run(0, 1800, |_| 0.5, no_skip);
    c.restart_node(1);
    // Every third scrape fails for a while.
    c.run(1800, 3600, |_| 0.5, |t| (2000..2600).contains(&t) && t % 30 == 0);
    assert!(c.actions.is_empty(), "{:?}", c.actions);
}
