//! ON_DEMAND capacity: every node watches the write rates of the shards it hosts, splits a
//! shard of an ON_DEMAND stream that stays hot and merges adjacent shards that stay cold, as
//! `capacity::on_demand::next_reshard` decides (at most one reshard per stream per window,
//! splits first). The decision is pure; this module only gathers the windows and calls
//! SplitShard or MergeShards.
//!
//! Rates come from the shard state machine's running totals (`AppliedWrites`). Every replica
//! applies the same committed batches, whichever node took the request, so any replica's totals
//! measure the shard's writes (a follower's lag by replication latency). A node observes every
//! replica it hosts while the replica knows a leader; a replica that loses its leader (an
//! election, or a follower cut off from the group) is forgotten and observed afresh, so a
//! partitioned follower never reports a busy shard as idle.
//!
//! Who decides: only the node leading a shard splits it, and only the node leading the lower
//! shard of an adjacent pair (by hash key) merges the pair, using its windows of both shards —
//! of the upper one from its own replica, leader or follower. In standalone mode the node leads
//! everything. In a cluster a pair is merged only by a node hosting replicas of both shards
//! (with the default replication factor of 3 on 3 nodes, every node does); otherwise the pair
//! waits until leadership or placement brings them together. Hot shards need no such rule: a
//! split involves one shard.

use std::collections::HashMap;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::time::Duration;

use prometheus::IntCounterVec;

use super::ServiceError;
use super::StreamService;
use crate::capacity::hot_shards::RateWindow;
use crate::capacity::hot_shards::ShardLoad;
use crate::capacity::on_demand::OnDemandPolicy;
use crate::capacity::on_demand::Reshard;
use crate::capacity::on_demand::next_reshard;
use crate::catalog::StreamMode;
use crate::catalog::StreamRecord;
use crate::catalog::StreamStatus;
use crate::clock;
use crate::model::ShardId;

/// How long one observation window lasts.
pub const WINDOW: Duration = Duration::from_secs(5);

/// What this node observed of one shard (by Raft group id).
struct Observed {
    last_totals: (u64, u64),
    last_ms: i64,
    windows: VecDeque<RateWindow>,
    /// Whether this node led the shard at the latest observation.
    leader: bool,
}

/// The latest reshard of a stream: a split, merge or UpdateShardCount round closing a shard or
/// opening a child.
fn last_reshard_ms(stream: &StreamRecord) -> Option<i64> {
    let opened = stream
        .shards
        .iter()
        .filter(|s| s.parent.is_some())
        .map(|s| s.created_ms);
    let closed = stream.shards.iter().filter_map(|s| s.closed_ms);
    opened
        .chain(closed)
        .chain(stream.scaling_ms.iter().copied())
        .max()
}

impl StreamService {
    /// Runs until the node stops: one observation per `WINDOW`, then at most one split or
    /// merge per stream (a reshard makes the stream UPDATING; the next comes after the
    /// cooldown).
    pub async fn reshard_on_demand(self, policy: OnDemandPolicy) {
        tracing::info!(?policy, "resharding ON_DEMAND streams");
        let mut observed: HashMap<u64, Observed> = HashMap::new();
        let sustained = [
            policy.splits.map(|p| p.sustained),
            policy.merges.map(|p| p.sustained),
        ];
        let keep = sustained.into_iter().flatten().max().unwrap_or_default() + 2 * WINDOW;
        let mut tick = tokio::time::interval(WINDOW);
        loop {
            tick.tick().await;
            let now_ms = clock::now_ms();
            self.observe(&mut observed, now_ms, keep);
            let streams: Vec<StreamRecord> = self.inner.view.read(|c| {
                c.streams
                    .values()
                    .filter(|s| s.mode == StreamMode::OnDemand && s.status == StreamStatus::Active)
                    .cloned()
                    .collect()
            });
            for stream in streams {
                let shards: Vec<ShardLoad> = stream
                    .open_shards()
                    .map(|s| {
                        let o = observed.get(&s.group);
                        ShardLoad {
                            shard: s.index,
                            range: s.range,
                            windows: o.map(|o| o.windows.iter().copied().collect()).unwrap_or_default(),
                            leader: o.is_some_and(|o| o.leader),
                        }
                    })
                    .collect();
                match next_reshard(&policy, now_ms, last_reshard_ms(&stream), &shards) {
                    Some(Reshard::Split(split)) => {
                        let shard = ShardId(split.shard).to_string();
                        let key = split.new_starting_hash_key.to_string();
                        let started = self.split_shard(&stream.name, &shard, &key).await;
                        let counter = &self.inner.metrics.streams.on_demand_splits;
                        started_reshard(&stream.name, "split", &shard, counter, started);
                    }
                    Some(Reshard::Merge(merge)) => {
                        let shard = ShardId(merge.shard).to_string();
                        let adjacent = ShardId(merge.adjacent_shard).to_string();
                        let started = self.merge_shards(&stream.name, &shard, &adjacent).await;
                        let counter = &self.inner.metrics.streams.on_demand_merges;
                        let pair = format!("{shard}+{adjacent}");
                        started_reshard(&stream.name, "merge", &pair, counter, started);
                    }
                    None => {}
                }
            }
        }
    }

    /// Closes a window for every shard replica this node hosts whose group knows a leader;
    /// forgets the others. (Whether a shard is open is the catalog's business: the policy sees
    /// open shards only.)
    fn observe(&self, observed: &mut HashMap<u64, Observed>, now_ms: i64, keep: Duration) {
        let mut seen = HashSet::new();
        for (_, replica) in self.inner.router.host().all() {
            let leader = match replica.leadership() {
                Ok(()) => true,
                Err(Some(_)) => false,
                Err(None) => continue, // no known leader: this replica may be cut off
            };
            let group = replica.shard.group;
            seen.insert(group);
            let totals = replica.group().writes.totals();
            let Some(o) = observed.get_mut(&group) else {
                observed.insert(
                    group,
                    Observed {
                        last_totals: totals,
                        last_ms: now_ms,
                        windows: VecDeque::new(),
                        leader,
                    },
                );
                continue;
            };
            o.windows.push_back(RateWindow {
                start_ms: o.last_ms,
                end_ms: now_ms,
                bytes: totals.0.saturating_sub(o.last_totals.0),
                records: totals.1.saturating_sub(o.last_totals.1),
            });
            o.last_totals = totals;
            o.last_ms = now_ms;
            o.leader = leader;
            let oldest = now_ms - keep.as_millis() as i64;
            while o.windows.front().is_some_and(|w| w.end_ms < oldest) {
                o.windows.pop_front();
            }
        }
        observed.retain(|group, _| seen.contains(group));
    }
}

/// Logs and counts a reshard this node started.
fn started_reshard(
    stream: &str,
    what: &str,
    shards: &str,
    counter: &IntCounterVec,
    result: Result<(), ServiceError>,
) {
    match result {
        Ok(()) => {
            tracing::info!(%stream, %shards, "{what} of ON_DEMAND shards started");
            counter.with_label_values(&[stream]).inc();
        }
        // Another node may have started a reshard meanwhile; the next window retries.
        Err(e) => tracing::debug!(%stream, %shards, error = %e, "ON_DEMAND {what} not started"),
    }
}
