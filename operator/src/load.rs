//! Observed load: successive counter totals scraped from the nodes, turned into per-shard rate
//! samples the autoscaling policy reads. No I/O and no clock: the sampler passes the time of
//! each scrape, the reconciler passes `now`.

use std::collections::BTreeMap;
use std::collections::VecDeque;

use crate::crd::ObservedRates;
use crate::node_metrics::Counters;
use crate::node_metrics::SeriesKey;
use crate::observed::ObservedShard;
use crate::policy::Seconds;
use crate::policy::autoscaling::HotKey;
use crate::policy::autoscaling::ShardLoad;
use crate::policy::capacity::LoadSample;
use crate::policy::hash_range::HashRange;

/// Rates of one series over one sampling interval (per second).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub write_bytes: f64,
    pub write_records: f64,
    pub read_bytes: f64,
}

impl Rates {
    fn is_zero(&self) -> bool {
        self.write_bytes == 0.0 && self.write_records == 0.0 && self.read_bytes == 0.0
    }
}

/// Rate history of every series, kept for `horizon_ms`.
#[derive(Debug)]
pub struct LoadTracker {
    horizon_ms: u64,
    /// Times (ms) of the successful scrapes, oldest first. A series absent from a scrape after
    /// the first one had no traffic in that interval.
    rounds: VecDeque<u64>,
    /// The first scrape ever: it only set the baseline, no interval ends there.
    baseline_ms: Option<u64>,
    /// The previous scrape's counters, per node address.
    last: BTreeMap<String, BTreeMap<SeriesKey, Counters>>,
    /// Non-zero rates per series, by the time of the scrape that ended the interval.
    rates: BTreeMap<SeriesKey, VecDeque<(u64, Rates)>>,
    /// When each (stream, shard) was first asked about: the start of its usable history.
    first_seen: BTreeMap<(String, String), Seconds>,
    /// Each shard's hot hash key in the nodes' latest windows.
    hot_keys: BTreeMap<SeriesKey, HotKey>,
}

impl LoadTracker {
    /// A tracker keeping `horizon` seconds of history.
    pub fn new(horizon: Seconds) -> LoadTracker {
        LoadTracker {
            horizon_ms: horizon.saturating_mul(1000),
            rounds: VecDeque::new(),
            baseline_ms: None,
            last: BTreeMap::new(),
            rates: BTreeMap::new(),
            first_seen: BTreeMap::new(),
            hot_keys: BTreeMap::new(),
        }
    }

    /// Replaces the shards' hot keys with those of the latest scrape.
    pub fn set_hot_keys(&mut self, hot_keys: BTreeMap<SeriesKey, HotKey>) {
        self.hot_keys = hot_keys;
    }

    /// Seconds of history kept.
    pub fn horizon(&self) -> Seconds {
        self.horizon_ms / 1000
    }

    /// True once two scrapes gave at least one interval of rates.
    pub fn has_rates(&self) -> bool {
        self.rounds.len() >= 2
    }

    /// Records the counters of every node (by address), scraped at `at_ms` (ms since the
    /// epoch). Deltas are taken per node and then added up: a counter lower than before (that
    /// node restarted) counts from zero, a series new on a node counts from zero, and a node
    /// absent from the previous scrape only sets its baseline. The first scrape only sets the
    /// baseline.
    pub fn record(&mut self, at_ms: u64, nodes: BTreeMap<String, BTreeMap<SeriesKey, Counters>>) {
        if let Some(&prev_ms) = self.rounds.back() {
            if at_ms <= prev_ms {
                return;
            }
            let secs = (at_ms - prev_ms) as f64 / 1000.0;
            let mut deltas: BTreeMap<&SeriesKey, Counters> = BTreeMap::new();
            for (node, series) in &nodes {
                let Some(before) = self.last.get(node) else {
                    continue;
                };
                for (key, now) in series {
                    let was = before.get(key).copied().unwrap_or_default();
                    let delta = |now: f64, was: f64| if now >= was { now - was } else { now };
                    let d = deltas.entry(key).or_default();
                    d.write_bytes += delta(now.write_bytes, was.write_bytes);
                    d.write_records += delta(now.write_records, was.write_records);
                    d.read_bytes += delta(now.read_bytes, was.read_bytes);
                }
            }
            for (key, d) in deltas {
                let rates = Rates {
                    write_bytes: d.write_bytes / secs,
                    write_records: d.write_records / secs,
                    read_bytes: d.read_bytes / secs,
                };
                if !rates.is_zero() {
                    self.rates
                        .entry(key.clone())
                        .or_default()
                        .push_back((at_ms, rates));
                }
            }
        }
        self.baseline_ms.get_or_insert(at_ms);
        self.rounds.push_back(at_ms);
        self.last = nodes;
        self.prune(at_ms);
    }

    fn prune(&mut self, now_ms: u64) {
        let from = now_ms.saturating_sub(self.horizon_ms);
        while self.rounds.front().is_some_and(|t| *t < from) {
            self.rounds.pop_front();
        }
        self.rates.retain(|_, v| {
            while v.front().is_some_and(|(t, _)| *t < from) {
                v.pop_front();
            }
            !v.is_empty()
        });
    }

    /// The rates of a series in the interval ending at scrape `at_ms` (zero when it was idle).
    fn rate_at(&self, key: &SeriesKey, at_ms: u64) -> Rates {
        self.rates
            .get(key)
            .and_then(|v| v.iter().find(|(t, _)| *t == at_ms))
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }

    /// The latest interval's rates of a series, None before two scrapes.
    pub fn latest(&self, key: &SeriesKey) -> Option<Rates> {
        self.has_rates()
            .then(|| self.rounds.back().map(|t| self.rate_at(key, *t)))
            .flatten()
    }

    /// The open shards of `stream` with their rate samples since each was first seen, for the
    /// autoscaler. Shards seen for the first time start their history at `now`; shards no longer
    /// listed are forgotten.
    pub fn shard_loads(&mut self, stream: &str, shards: &[ObservedShard], now: Seconds) -> Vec<ShardLoad> {
        let open: Vec<&ObservedShard> = shards.iter().filter(|s| !s.closed).collect();
        self.first_seen
            .retain(|(s, id), _| s != stream || open.iter().any(|o| &o.shard_id == id));
        let mut loads = Vec::with_capacity(open.len());
        for shard in open {
            let created_at = *self
                .first_seen
                .entry((stream.to_string(), shard.shard_id.clone()))
                .or_insert(now);
            let Some(range) = hash_range(shard) else {
                continue;
            };
            let key = SeriesKey {
                stream: stream.to_string(),
                shard: Some(shard.shard_id.clone()),
            };
            let samples = self
                .rounds
                .iter()
                .filter(|t| Some(**t) != self.baseline_ms && **t / 1000 >= created_at)
                .map(|t| {
                    let r = self.rate_at(&key, *t);
                    LoadSample {
                        at: *t / 1000,
                        write_bytes_per_sec: r.write_bytes,
                        write_records_per_sec: r.write_records,
                        read_bytes_per_sec: r.read_bytes,
                    }
                })
                .collect();
            let hot_key = self.hot_keys.get(&key).copied();
            loads.push(ShardLoad {
                shard_id: shard.shard_id.clone(),
                range,
                created_at,
                samples,
                hot_key,
            });
        }
        loads
    }

    /// The stream's throughput over the latest interval: writes summed over its shards, reads
    /// from the stream's own counter. None before two scrapes.
    pub fn stream_rates(&self, stream: &str) -> Option<ObservedRates> {
        let at = *self.rounds.back()?;
        if !self.has_rates() {
            return None;
        }
        let mut rates = ObservedRates::default();
        for (key, series) in self.rates.range(
            SeriesKey {
                stream: stream.to_string(),
                shard: None,
            }..,
        ) {
            if key.stream != stream {
                break;
            }
            let Some((_, r)) = series.iter().find(|(t, _)| *t == at) else {
                continue;
            };
            rates.incoming_bytes_per_second += r.write_bytes;
            rates.incoming_records_per_second += r.write_records;
            // The stream's own counter has every read (enhanced fan-out too); the shards'
            // have GetRecords only.
            if key.shard.is_none() {
                rates.outgoing_bytes_per_second += r.read_bytes;
            }
        }
        rates.incoming_bytes_per_second = rates.incoming_bytes_per_second.round();
        rates.incoming_records_per_second = rates.incoming_records_per_second.round();
        rates.outgoing_bytes_per_second = rates.outgoing_bytes_per_second.round();
        Some(rates)
    }
}

/// The shard's hash key range, None when the node reported something unparsable.
pub fn hash_range(shard: &ObservedShard) -> Option<HashRange> {
    HashRange::new(
        shard.starting_hash_key.parse().ok()?,
        shard.ending_hash_key.parse().ok()?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, start: u128, end: u128) -> ObservedShard {
        ObservedShard {
            shard_id: id.into(),
            starting_hash_key: start.to_string(),
            ending_hash_key: end.to_string(),
            ..ObservedShard::default()
        }
    }

    fn totals(entries: &[(&str, Option<&str>, f64, f64)]) -> BTreeMap<String, BTreeMap<SeriesKey, Counters>> {
        let series = entries
            .iter()
            .map(|(stream, shard, bytes, records)| {
                (
                    SeriesKey {
                        stream: stream.to_string(),
                        shard: shard.map(str::to_string),
                    },
                    // A stream series (no shard) carries reads, a shard series writes.
                    Counters {
                        write_bytes: if shard.is_some() { *bytes } else { 0.0 },
                        write_records: *records,
                        read_bytes: if shard.is_none() { *bytes } else { 0.0 },
                    },
                )
            })
            .collect();
        [("node-0".to_string(), series)].into_iter().collect()
    }

    const S0: &str = "shardId-000000000000";
    const S1: &str = "shardId-000000000001";

    #[test]
    fn counters_become_rates() {
        let mut t = LoadTracker::new(600);
        t.record(10_000, totals(&[("a", Some(S0), 1000.0, 10.0)]));
        assert!(!t.has_rates());
        assert_eq!(t.stream_rates("a"), None);
        t.record(
            12_000,
            totals(&[("a", Some(S0), 5000.0, 30.0), ("a", None, 400.0, 0.0)]),
        );
        let key = SeriesKey {
            stream: "a".into(),
            shard: Some(S0.into()),
        };
        assert_eq!(
            t.latest(&key),
            Some(Rates {
                write_bytes: 2000.0,
                write_records: 10.0,
                read_bytes: 0.0
            })
        );
        let stream = t.stream_rates("a").unwrap_or_default();
        assert_eq!(
            (
                stream.incoming_bytes_per_second,
                stream.incoming_records_per_second,
                stream.outgoing_bytes_per_second
            ),
            (2000.0, 10.0, 200.0)
        );
        assert_eq!(
            t.stream_rates("b").map(|r| r.incoming_bytes_per_second),
            Some(0.0)
        );
    }

    #[test]
    fn shard_reads_load_the_shard_and_the_stream_counts_its_own_reads() {
        let at = |write: f64, shard_read: f64, stream_read: f64| {
            let series: BTreeMap<SeriesKey, Counters> = [
                (
                    SeriesKey {
                        stream: "a".into(),
                        shard: Some(S0.into()),
                    },
                    Counters {
                        write_bytes: write,
                        write_records: 0.0,
                        read_bytes: shard_read,
                    },
                ),
                (
                    SeriesKey {
                        stream: "a".into(),
                        shard: None,
                    },
                    Counters {
                        read_bytes: stream_read,
                        ..Counters::default()
                    },
                ),
            ]
            .into_iter()
            .collect();
            [("node-0".to_string(), series)].into_iter().collect()
        };
        let mut t = LoadTracker::new(600);
        t.record(0, at(0.0, 0.0, 0.0));
        // 1 s: 100 B written, 3000 B read by GetRecords, 5000 B read in all (fan-out too).
        t.record(1000, at(100.0, 3000.0, 5000.0));
        let loads = t.shard_loads("a", &[shard(S0, 0, u128::MAX)], 0);
        let last = loads[0]
            .samples
            .last()
            .cloned()
            .unwrap_or_else(|| panic!("{loads:?}"));
        assert_eq!(
            (last.write_bytes_per_sec, last.read_bytes_per_sec),
            (100.0, 3000.0)
        );
        let rates = t.stream_rates("a").unwrap_or_default();
        assert_eq!(rates.outgoing_bytes_per_second, 5000.0);
    }

    #[test]
    fn shard_loads_carry_the_latest_hot_key() {
        let mut t = LoadTracker::new(600);
        let key = SeriesKey {
            stream: "a".into(),
            shard: Some(S0.into()),
        };
        let hot = HotKey {
            hash_key: 42,
            share: 0.8,
        };
        t.set_hot_keys([(key, hot)].into_iter().collect());
        let loads = t.shard_loads("a", &[shard(S0, 0, 100), shard(S1, 101, 200)], 0);
        assert_eq!(loads[0].hot_key, Some(hot));
        assert_eq!(loads[1].hot_key, None);
        t.set_hot_keys(BTreeMap::new());
        assert_eq!(t.shard_loads("a", &[shard(S0, 0, 100)], 0)[0].hot_key, None);
    }

    #[test]
    fn a_reset_counter_counts_from_zero() {
        let mut t = LoadTracker::new(600);
        t.record(0, totals(&[("a", Some(S0), 10_000.0, 100.0)]));
        t.record(1000, totals(&[("a", Some(S0), 300.0, 3.0)]));
        let key = SeriesKey {
            stream: "a".into(),
            shard: Some(S0.into()),
        };
        assert_eq!(t.latest(&key).map(|r| r.write_bytes), Some(300.0));
    }

    #[test]
    fn deltas_are_per_node_so_one_restart_is_no_spike() {
        let node = |name: &str, bytes: f64| {
            let series: BTreeMap<SeriesKey, Counters> = [(
                SeriesKey {
                    stream: "a".into(),
                    shard: Some(S0.into()),
                },
                Counters {
                    write_bytes: bytes,
                    ..Counters::default()
                },
            )]
            .into_iter()
            .collect();
            (name.to_string(), series)
        };
        let key = SeriesKey {
            stream: "a".into(),
            shard: Some(S0.into()),
        };
        let mut t = LoadTracker::new(600);
        t.record(0, [node("n0", 1_000_000.0), node("n1", 1_000_000.0)].into());
        t.record(1000, [node("n0", 1_000_100.0), node("n1", 1_000_100.0)].into());
        assert_eq!(t.latest(&key).map(|r| r.write_bytes), Some(200.0));
        // n1 restarts (its counter starts again), n2 joins with a large total.
        t.record(
            2000,
            [node("n0", 1_000_200.0), node("n1", 50.0), node("n2", 9e9)].into(),
        );
        assert_eq!(t.latest(&key).map(|r| r.write_bytes), Some(150.0));
        t.record(
            3000,
            [
                node("n0", 1_000_300.0),
                node("n1", 150.0),
                node("n2", 9e9 + 100.0),
            ]
            .into(),
        );
        assert_eq!(t.latest(&key).map(|r| r.write_bytes), Some(300.0));
    }

    #[test]
    fn shard_loads_fill_idle_intervals_with_zero_and_start_at_first_sight() {
        let mut t = LoadTracker::new(600);
        let shards = [shard(S0, 0, 99), shard(S1, 100, u128::MAX)];
        // First sight at t=0 (before any scrape).
        assert!(
            t.shard_loads("a", &shards, 0)
                .iter()
                .all(|l| l.samples.is_empty())
        );
        t.record(0, totals(&[]));
        t.record(10_000, totals(&[("a", Some(S0), 1000.0, 10.0)]));
        t.record(20_000, totals(&[("a", Some(S0), 1000.0, 10.0)]));
        t.record(30_000, totals(&[("a", Some(S0), 3000.0, 30.0)]));
        let loads = t.shard_loads("a", &shards, 30);
        assert_eq!(loads.len(), 2);
        let s0: Vec<f64> = loads[0].samples.iter().map(|s| s.write_bytes_per_sec).collect();
        assert_eq!(s0, vec![100.0, 0.0, 200.0]);
        assert_eq!(loads[0].samples[0].at, 10);
        assert_eq!(loads[1].samples.len(), 3);
        assert!(loads[1].samples.iter().all(|s| s.write_bytes_per_sec == 0.0));
        assert_eq!(loads[0].range, HashRange { start: 0, end: 99 });
        // A child seen later has no history before that.
        let mut closed = shards[0].clone();
        closed.closed = true;
        let child = shard("shardId-000000000002", 0, 49);
        let loads = t.shard_loads("a", &[closed, shards[1].clone(), child], 25);
        assert_eq!(loads.len(), 2);
        assert_eq!(loads[1].created_at, 25);
        assert_eq!(loads[1].samples.len(), 1);
    }

    #[test]
    fn history_is_pruned_to_the_horizon() {
        let mut t = LoadTracker::new(20);
        for i in 0..10u64 {
            t.record(i * 10_000, totals(&[("a", Some(S0), (i * 100) as f64, 0.0)]));
        }
        let loads = t.shard_loads("a", &[shard(S0, 0, 1)], 0);
        // Rounds at 70, 80, 90 s are kept.
        assert_eq!(loads[0].samples.len(), 3);
        assert_eq!(t.horizon(), 20);
    }
}
