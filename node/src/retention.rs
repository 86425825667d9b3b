//! Retention: the only thing that removes records. Whole sealed segments whose newest record is
//! older than the stream's retention period are deleted from every replica on this node,
//! through Raft: each replica snapshots and purges its log through the expired entries, so a
//! peer that needs them later is sent the log that is left instead (`raft::catch_up`).

use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::raft::catalog_sm::CatalogView;
use openraft::async_runtime::WatchReceiver;

use crate::raft::group::ShardGroup;
use crate::shard::ShardHost;

/// When retention runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSchedule {
    pub every: Duration,
    /// For tests of expiry: retention acts as if the clock were this far ahead.
    pub clock_offset_ms: i64,
}

impl Default for RetentionSchedule {
    fn default() -> Self {
        RetentionSchedule {
            every: Duration::from_secs(30),
            clock_offset_ms: 0,
        }
    }
}
/// How long one step of expiring a replica's segments is awaited.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The oldest arrival time a stream with this retention keeps, at `now_ms`.
pub fn cutoff_ms(now_ms: i64, retention_hours: u32) -> i64 {
    now_ms - i64::from(retention_hours) * 3_600_000
}

pub async fn run(host: Arc<ShardHost>, view: CatalogView, schedule: RetentionSchedule) {
    let mut tick = tokio::time::interval(schedule.every);
    loop {
        tick.tick().await;
        enforce(&host, &view, clock::now_ms() + schedule.clock_offset_ms).await;
    }
}

/// One pass over every replica; returns how many segments were deleted.
pub async fn enforce(host: &ShardHost, view: &CatalogView, now_ms: i64) -> usize {
    let mut deleted = 0;
    for (stream, replica) in host.all() {
        let Some(hours) = view.read(|c| c.stream(&stream).map(|s| s.retention_hours)) else {
            continue;
        };
        let group = replica.group();
        let through = match group.log.lock() {
            Ok(log) => log.expired_through(cutoff_ms(now_ms, hours)),
            Err(_) => continue,
        };
        let Some(through) = through else { continue };
        match expire(group, through).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(stream = %stream, shard = %replica.id(), segments = n, "retention deleted expired segments");
                deleted += n;
            }
            Err(e) => tracing::warn!(stream = %stream, shard = %replica.id(), error = %e, "retention failed"),
        }
    }
    deleted
}

/// Deletes a replica's entries through `through` (whole expired segments) by way of Raft: a
/// snapshot is taken so that peers that would need those entries get a snapshot instead, and
/// Raft's purge deletes them. Returns how many segments went.
async fn expire(group: &ShardGroup, through: u64) -> Result<usize, String> {
    let segments = |g: &ShardGroup| g.log.lock().map(|l| l.stats().segments).unwrap_or(0);
    let before = segments(group);
    let metrics = group.raft.metrics().borrow_watched().clone();
    let applied = metrics.last_applied.as_ref().map_or(0, |l| l.index);
    // A replica that has not applied its expired entries yet purges what it has applied.
    let target = through.min(applied);
    if metrics.snapshot.as_ref().is_none_or(|s| s.index < target) {
        group.raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
        group
            .raft
            .wait(Some(STEP_TIMEOUT))
            .metrics(
                |m| m.snapshot.as_ref().is_some_and(|s| s.index >= target),
                "snapshot covers the expired entries",
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    group
        .raft
        .trigger()
        .purge_log(through)
        .await
        .map_err(|e| e.to_string())?;
    // The purge waits for replication in flight; if it is still pending, the next pass goes on.
    let purged = match group
        .raft
        .wait(Some(STEP_TIMEOUT))
        .metrics(
            |m| m.purged.as_ref().is_some_and(|p| p.index >= target),
            "expired entries purged",
        )
        .await
    {
        Ok(m) => m.purged.map_or(0, |p| p.index),
        Err(_) => return Ok(0),
    };
    // Raft no longer needs them: delete what expired.
    group
        .log
        .lock()
        .map_err(|_| "log lock poisoned".to_owned())?
        .purge_through(through.min(purged))
        .map_err(|e| e.to_string())?;
    Ok(before.saturating_sub(segments(group)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_retention_hours_back() {
        assert_eq!(cutoff_ms(100 * 3_600_000, 24), 76 * 3_600_000);
    }
}
