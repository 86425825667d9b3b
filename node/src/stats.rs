//! Periodic gauges: storage size per stream and Raft state per group; shard-hours accrued.

use openraft::async_runtime::WatchReceiver;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use crate::capacity::hot_keys::HotKeyWindows;
use crate::capacity::hot_keys::HottestKey;
use crate::capacity::usage::shard_hours_between;
use crate::clock;
use crate::metrics::Metrics;
use crate::model::ShardId;
use crate::raft::catalog_sm::CatalogView;
use crate::shard::ShardHost;

pub async fn refresh_loop(
    host: Arc<ShardHost>,
    view: CatalogView,
    metrics: Metrics,
    hot_keys: Arc<Mutex<HotKeyWindows>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    let mut last_ms = clock::now_ms();
    let mut exported = HashMap::new();
    loop {
        tick.tick().await;
        let now_ms = clock::now_ms();
        refresh(&host, &view, &metrics, last_ms, now_ms);
        let rolled = match hot_keys.lock() {
            Ok(mut w) => w.roll(),
            Err(_) => Vec::new(),
        };
        export_hot_keys(&metrics, rolled, &mut exported);
        last_ms = now_ms;
    }
}

/// Sets the hot-key gauges of the window that ended; removes the series of shards without
/// writes in it and of keys no longer the hottest. `exported`: (stream, shard) → hash key of
/// the series set last time.
fn export_hot_keys(
    metrics: &Metrics,
    rolled: Vec<(String, u32, HottestKey)>,
    exported: &mut HashMap<(String, String), String>,
) {
    let m = &metrics.streams;
    let mut now: HashMap<(String, String), String> = HashMap::new();
    for (stream, shard, hot) in rolled {
        let shard = ShardId(shard).to_string();
        let key = hot.hash_key.to_string();
        m.shard_hot_key_bytes
            .with_label_values(&[stream.as_str(), shard.as_str(), key.as_str()])
            .set(i64::try_from(hot.bytes).unwrap_or(i64::MAX));
        m.shard_window_bytes
            .with_label_values(&[stream.as_str(), shard.as_str()])
            .set(i64::try_from(hot.window_bytes).unwrap_or(i64::MAX));
        now.insert((stream, shard), key);
    }
    for ((stream, shard), key) in exported.drain() {
        let current = now.get(&(stream.clone(), shard.clone()));
        if current != Some(&key) {
            let _ =
                m.shard_hot_key_bytes
                    .remove_label_values(&[stream.as_str(), shard.as_str(), key.as_str()]);
        }
        if current.is_none() {
            let _ = m
                .shard_window_bytes
                .remove_label_values(&[stream.as_str(), shard.as_str()]);
        }
    }
    *exported = now;
}

/// Refreshes the gauges. Each open shard this node leads accrues its shard-hours between
/// `since_ms` and `now_ms` (so that every shard is counted once in a cluster). Whether a shard
/// is open comes from the catalog: a replica's own record is the one it started with (a
/// reshard's children start pending, parents close later).
pub fn refresh(host: &ShardHost, view: &CatalogView, metrics: &Metrics, since_ms: i64, now_ms: i64) {
    let open: HashSet<u64> = view.read(|c| {
        c.streams
            .values()
            .flat_map(|s| s.open_shards().map(|sh| sh.group))
            .collect()
    });
    // Per stream: segments, bytes, open shards, shard-hours of the open shards led here.
    let mut per_stream: HashMap<String, (i64, i64, i64, f64)> = HashMap::new();
    for (stream, replica) in host.all() {
        let group = replica.group();
        if let Ok(log) = group.log.lock() {
            let s = log.stats();
            let e = per_stream.entry(stream.clone()).or_default();
            e.0 += s.segments as i64;
            e.1 += s.bytes as i64;
            e.2 += i64::from(open.contains(&replica.shard.group));
        }
        let m = group.raft.metrics().borrow_watched().clone();
        if open.contains(&replica.shard.group) && m.current_leader == Some(m.id) {
            per_stream.entry(stream.clone()).or_default().3 +=
                shard_hours_between(replica.shard.created_ms, since_ms, now_ms);
        }
        let label = replica.shard.group.to_string();
        let r = &metrics.raft;
        let committed = m.local_committed.as_ref().map_or(0, |l| l.index) as i64;
        let applied = m.last_applied.as_ref().map_or(0, |l| l.index) as i64;
        r.term.with_label_values(&[&label]).set(m.current_term as i64);
        r.commit_index.with_label_values(&[&label]).set(committed);
        r.applied_index.with_label_values(&[&label]).set(applied);
        r.apply_lag.with_label_values(&[&label]).set(committed - applied);
        r.is_leader
            .with_label_values(&[&label])
            .set(i64::from(m.current_leader == Some(m.id)));
        if let Some(replication) = &m.replication {
            let last = m.last_log_index.unwrap_or(0);
            for (follower, matched) in replication {
                let lag = last.saturating_sub(matched.as_ref().map_or(0, |l| l.index));
                r.replication_lag
                    .with_label_values(&[&label, &follower.to_string()])
                    .set(lag as i64);
            }
        }
    }
    for (stream, (segments, bytes, open, hours)) in per_stream {
        if hours > 0.0 {
            metrics
                .usage
                .shard_hours
                .with_label_values(&[&stream])
                .inc_by(hours);
        }
        metrics
            .storage
            .segments
            .with_label_values(&[&stream])
            .set(segments);
        metrics
            .storage
            .bytes_on_disk
            .with_label_values(&[&stream])
            .set(bytes);
        metrics
            .streams
            .open_shards
            .with_label_values(&[&stream])
            .set(open);
    }
}
