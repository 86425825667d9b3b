//! The `catch-up` mode: how fast a replica that missed writes catches up. It starts `--nodes`
//! real `runnel-node` processes on loopback (see `cluster`), creates a stream, kills the last
//! node, puts `--prefill` records through node 1 while it is down, restarts it, and times the
//! restart until the node serves calls and until every shard replica it holds has applied as
//! far as the others had. Node flags after `--` decide whether the replica gets the entries it
//! lacks or (when retention already deleted them on the others) a snapshot with their log:
//! e.g. `-- --segment-mib 8 --retention-check-secs 1 --retention-clock-offset-secs 90000`.
//! Progress is read from the nodes' `runnel_raft_applied_index` gauges, which this mode has
//! refreshed every 50 ms (`--stats-refresh-ms`), so times are good to about 50 ms.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use tokio::time::Instant;

use crate::Options;
use crate::cluster::Nodes;
use crate::cluster::NodesOptions;
use crate::cluster::until;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;

#[derive(Debug, Clone, Args)]
pub struct CatchUpOptions {
    /// `--stream`, `--shards`, `--record-size`, `--batch-size`, `--concurrency`, `--prefill`
    /// (records put while the node is down) and `--json` apply; `--endpoint` is ignored (the
    /// mode starts its own nodes).
    #[command(flatten)]
    pub common: Options,
    #[command(flatten)]
    pub nodes_options: NodesOptions,
}

/// Whether every group of `target` is applied at least as far in `applied`.
fn caught_up(applied: &BTreeMap<u64, u64>, target: &BTreeMap<u64, u64>) -> bool {
    !target.is_empty() && target.iter().all(|(g, t)| applied.get(g).is_some_and(|a| a >= t))
}

pub async fn run(options: &CatchUpOptions) -> anyhow::Result<Report> {
    // Applied indexes are read from the nodes' gauges: refreshed every 50 ms, not every 5 s.
    let mut nodes_options = options.nodes_options.clone();
    nodes_options
        .node_args
        .extend(["--stats-refresh-ms".to_string(), "50".to_string()]);
    let mut nodes = Nodes::start(&nodes_options)?;
    let result = measure(options, &mut nodes).await;
    nodes.stop().await?;
    result
}

async fn measure(options: &CatchUpOptions, nodes: &mut Nodes) -> anyhow::Result<Report> {
    let o = &options.common;
    let client = nodes.create_stream(&o.stream, o.shards).await?;
    let lagging = nodes.count;
    // Every node hosts a replica of every shard (replication factor 3 on 3 nodes) once the
    // groups formed.
    until(
        "every node to host every shard",
        Duration::from_secs(120),
        || async {
            let mut all = true;
            for id in 1..=nodes.count {
                all &= nodes.applied(id).await.len() == o.shards as usize;
            }
            all.then_some(())
        },
    )
    .await?;
    nodes.kill9(lagging).await?;

    let mut load = Load::from_options(o, false);
    load.max_records = Some(o.prefill.max(1));
    load.deadline = Instant::now() + Duration::from_secs(3600);
    let written = produce::produce(&client, &load).await;
    anyhow::ensure!(
        written.failed_records == 0,
        "{} records failed while node {lagging} was down: {:?}",
        written.failed_records,
        written.first_error
    );
    // What the others applied (they settle once the last write is acknowledged everywhere).
    let mut target = BTreeMap::new();
    for id in 1..lagging {
        for (g, a) in nodes.applied(id).await {
            let t = target.entry(g).or_insert(0);
            *t = a.max(*t);
        }
    }

    let restarted = Instant::now();
    nodes.spawn(lagging)?;
    nodes.wait_serving(lagging, &o.stream).await?;
    let serving = restarted.elapsed();
    until(
        "the restarted node to catch up",
        Duration::from_secs(3600),
        || async { caught_up(&nodes.applied(lagging).await, &target).then_some(()) },
    )
    .await?;
    let caught = restarted.elapsed();
    let snapshot = nodes.log(lagging).contains("caught up from a snapshot");

    let mut report = Report::new("catch-up");
    report.count("nodes", "nodes", u64::from(nodes.count));
    report.count("shards", "shards", u64::from(o.shards));
    report.count("records_missed", "records put while down", written.records);
    report.number("mb_missed", "MB put while down", written.bytes as f64 / 1e6, "MB");
    report.text(
        "catch_up_by",
        "caught up by",
        if snapshot {
            "a snapshot with the log"
        } else {
            "log entries"
        },
    );
    report.number(
        "serving_ms",
        "restart → serving",
        serving.as_secs_f64() * 1000.0,
        "ms",
    );
    report.number(
        "caught_up_ms",
        "restart → caught up",
        caught.as_secs_f64() * 1000.0,
        "ms",
    );
    report.number(
        "catch_up_mb_per_sec",
        "catch-up rate (put bytes / restart → caught up)",
        written.bytes as f64 / 1e6 / caught.as_secs_f64().max(1e-3),
        "MB/s",
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up_when_every_group_is_as_far() {
        let target = BTreeMap::from([(1, 10), (2, 20)]);
        assert!(caught_up(&BTreeMap::from([(1, 10), (2, 21)]), &target));
        assert!(!caught_up(&BTreeMap::from([(1, 10), (2, 19)]), &target));
        assert!(!caught_up(&BTreeMap::from([(1, 10)]), &target));
        assert!(!caught_up(&BTreeMap::new(), &BTreeMap::new()));
    }
}
