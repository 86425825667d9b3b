//! Retention: the only thing that removes records. Whole sealed segments whose newest record is
//! older than the stream's retention period are deleted from every replica on this node.

use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::raft::catalog_sm::CatalogView;
use crate::shard::ShardHost;

const EVERY: Duration = Duration::from_secs(30);

/// The oldest arrival time a stream with this retention keeps, at `now_ms`.
pub fn cutoff_ms(now_ms: i64, retention_hours: u32) -> i64 {
    now_ms - i64::from(retention_hours) * 3_600_000
}

pub async fn run(host: Arc<ShardHost>, view: CatalogView) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        enforce(&host, &view, clock::now_ms());
    }
}

/// One pass over every replica; returns how many segments were deleted.
pub fn enforce(host: &ShardHost, view: &CatalogView, now_ms: i64) -> usize {
    let mut deleted = 0;
    for (stream, replica) in host.all() {
        let Some(hours) = view.read(|c| c.stream(&stream).map(|s| s.retention_hours)) else {
            continue;
        };
        let cutoff = cutoff_ms(now_ms, hours);
        let result = match replica.group().log.lock() {
            Ok(mut log) => log.delete_expired(cutoff),
            Err(_) => continue,
        };
        match result {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_retention_hours_back() {
        assert_eq!(cutoff_ms(100 * 3_600_000, 24), 76 * 3_600_000);
    }
}
