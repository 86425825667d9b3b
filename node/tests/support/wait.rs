//! Waiting for conditions of real processes, with generous bounds (never a timing assertion).

use std::time::Duration;

/// Polls `check` every 100 ms, up to `what`'s generous bound; panics with the logs otherwise.
pub async fn eventually<F, Fut>(what: &str, logs: impl Fn() -> String, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; logs:\n{}", logs());
}

/// Applied log index of every shard group (not the catalog, group 0) a node reports (none
/// while it is down).
pub async fn applied(metrics_port: u16) -> std::collections::BTreeMap<u64, u64> {
    let text = super::http_get_if_up(metrics_port, "/metrics").await;
    text.lines()
        .filter_map(|l| l.strip_prefix("runnel_raft_applied_index{group=\""))
        .filter_map(|l| {
            let (group, rest) = l.split_once('"')?;
            let value = rest.rsplit(' ').next()?;
            Some((group.parse().ok()?, value.parse::<f64>().ok()? as u64))
        })
        .filter(|(g, _)| *g != 0)
        .collect()
}
