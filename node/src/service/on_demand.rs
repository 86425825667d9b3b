//! ON_DEMAND capacity: every node watches the write rates of the shards it leads and splits a
//! shard of an ON_DEMAND stream that stays hot, as `capacity::hot_shards::plan_splits`
//! decides. The decision is pure; this module only gathers the windows and calls SplitShard.
//!
//! Rates come from the shard state machine's running totals (`AppliedWrites`) on the shard's
//! leader, which sees every append whichever node took the request. A window is dropped when
//! leadership moves (the new leader starts observing afresh), so a shard is split only after
//! one leader saw it hot for the whole sustained period.

use std::collections::HashMap;
use std::collections::HashSet;
use std::collections::VecDeque;
use std::time::Duration;

use super::StreamService;
use crate::capacity::hot_shards::RateWindow;
use crate::capacity::hot_shards::ShardLoad;
use crate::capacity::hot_shards::SplitPolicy;
use crate::capacity::hot_shards::plan_splits;
use crate::catalog::StreamMode;
use crate::catalog::StreamRecord;
use crate::catalog::StreamStatus;
use crate::clock;
use crate::model::ShardId;

/// How long one observation window lasts.
pub const WINDOW: Duration = Duration::from_secs(5);

/// What one leader observed of one shard (by Raft group id).
struct Observed {
    last_totals: (u64, u64),
    last_ms: i64,
    windows: VecDeque<RateWindow>,
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
    /// Runs until the node stops: one observation per `WINDOW`, then at most one split per
    /// stream (a split makes the stream UPDATING; the next comes after the cooldown).
    pub async fn split_hot_shards(self, policy: SplitPolicy) {
        tracing::info!(?policy, "splitting hot ON_DEMAND shards");
        let mut observed: HashMap<u64, Observed> = HashMap::new();
        let keep = policy.sustained + 2 * WINDOW;
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
                    .map(|s| ShardLoad {
                        shard: s.index,
                        range: s.range,
                        windows: observed
                            .get(&s.group)
                            .map(|o| o.windows.iter().copied().collect())
                            .unwrap_or_default(),
                    })
                    .collect();
                let plan = plan_splits(&policy, now_ms, last_reshard_ms(&stream), &shards);
                let Some(split) = plan.first() else {
                    continue;
                };
                let shard = ShardId(split.shard).to_string();
                let key = split.new_starting_hash_key.to_string();
                match self.split_shard(&stream.name, &shard, &key).await {
                    Ok(()) => {
                        tracing::info!(stream = %stream.name, %shard, at = %key, "split a hot ON_DEMAND shard");
                        self.inner
                            .metrics
                            .streams
                            .on_demand_splits
                            .with_label_values(&[&stream.name])
                            .inc();
                    }
                    // Another node may have started a reshard meanwhile; the next window retries.
                    Err(e) => {
                        tracing::debug!(stream = %stream.name, %shard, error = %e, "hot-shard split not started")
                    }
                }
            }
        }
    }

    /// Closes a window for every shard this node leads; forgets the others. (Whether a shard
    /// is open is the catalog's business: `plan_splits` sees open shards only.)
    fn observe(&self, observed: &mut HashMap<u64, Observed>, now_ms: i64, keep: Duration) {
        let mut seen = HashSet::new();
        for (_, replica) in self.inner.router.host().all() {
            if replica.leadership().is_err() {
                continue;
            }
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
            let oldest = now_ms - keep.as_millis() as i64;
            while o.windows.front().is_some_and(|w| w.end_ms < oldest) {
                o.windows.pop_front();
            }
        }
        observed.retain(|group, _| seen.contains(group));
    }
}
