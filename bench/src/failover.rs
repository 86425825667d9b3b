//! The `failover` mode: how long writes to a shard stop when its leader dies. It starts
//! `--nodes` real `runnel-node` processes on loopback (as `runnel-node dev-cluster` does) and
//! creates a stream; then, each round, one writer per shard puts single records (an explicit
//! hash key in the shard's range) through a surviving node, the node leading the most shards is
//! killed with SIGKILL, and for every shard it led the report takes the time from the kill to
//! the first write acknowledged after it. The killed node is restarted and leaders rebalance
//! before the next round. With `--idle` the writers stop before each kill until every replica
//! is quiesced, so the kill strikes quiet groups, and start again at the kill.

use std::time::Duration;

use clap::Args;
use runnel_client::Client;
use runnel_client::PutEntry;
use runnel_client::PutResult;
use runnel_proto::v1 as proto;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Options;
use crate::cluster::Nodes;
use crate::cluster::NodesOptions;
use crate::cluster::until;
use crate::report::Report;
use crate::report::histogram;

#[derive(Debug, Clone, Args)]
pub struct FailoverOptions {
    /// `--stream`, `--shards` and `--json` apply; `--endpoint` is ignored (the mode starts its
    /// own nodes).
    #[command(flatten)]
    pub common: Options,
    #[command(flatten)]
    pub nodes_options: NodesOptions,
    /// Leader kills.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Kill the leader of quiesced (idle) groups rather than of groups taking writes.
    #[arg(long)]
    pub idle: bool,
}

/// The node leading the most shards (the lowest id among equals), and how many it leads.
fn victim(leaders: &[u64]) -> Option<(u64, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for l in leaders.iter().filter(|l| **l != 0) {
        *counts.entry(*l).or_insert(0usize) += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
}

/// Each open shard's id, the first hash key of its range, and its leader (0 when unknown).
fn shards(stream: &proto::StreamDescription) -> Vec<(String, String, u64)> {
    stream
        .shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_empty())
        .filter_map(|s| {
            let key = s.hash_key_range.as_ref()?.starting_hash_key.clone();
            Some((s.shard_id.clone(), key, s.leader))
        })
        .collect()
}

/// Puts one record at a time to `shard` until aborted; reports the first acknowledgement after
/// the kill time `killed` announces.
async fn write(
    client: Client,
    stream: String,
    shard: (String, String),
    mut killed: watch::Receiver<Option<Instant>>,
) -> Duration {
    let (shard_id, key) = shard;
    loop {
        let mut entry = PutEntry::new("failover", &b"failover probe"[..]);
        entry.explicit_hash_key = Some(key.clone());
        let acked = matches!(
            client.put_batch(&stream, vec![entry]).await.as_deref(),
            Ok([PutResult::Ok { shard_id: s, .. }]) if *s == shard_id
        );
        let now = Instant::now();
        let kill = *killed.borrow_and_update();
        if acked && let Some(t) = kill.filter(|t| now > *t) {
            return now - t;
        }
        if !acked {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub async fn run(options: &FailoverOptions) -> anyhow::Result<Report> {
    let mut nodes = Nodes::start(&options.nodes_options)?;
    let result = rounds(options, &mut nodes).await;
    nodes.stop().await?;
    let mut report = result?;
    report.text("stream", "stream", &options.common.stream);
    Ok(report)
}

async fn rounds(options: &FailoverOptions, nodes: &mut Nodes) -> anyhow::Result<Report> {
    let o = &options.common;
    let admin = nodes.create_stream(&o.stream, o.shards).await?;

    let mut all = histogram();
    let mut worst_round = Vec::new();
    for round in 1..=options.rounds {
        // Every shard led, and the leaders settled (a restarted node takes its share back).
        let led = until("every shard to have a leader", Duration::from_secs(120), || {
            let (admin, stream) = (admin.clone(), o.stream.clone());
            async move {
                let led = shards(&admin.describe_stream(&stream).await.ok()?);
                (!led.is_empty() && led.iter().all(|s| s.2 != 0)).then_some(led)
            }
        })
        .await?;
        let leaders: Vec<u64> = led.iter().map(|s| s.2).collect();
        let Some((dead, count)) = victim(&leaders) else {
            anyhow::bail!("no shard has a leader");
        };
        let dead = u16::try_from(dead)?;
        let survivor = (1..=nodes.count).find(|i| *i != dead).unwrap_or(1);
        let client = Client::connect(nodes.grpc(survivor)).await?;

        let (kill_tx, kill_rx) = watch::channel(None);
        let mut writers = JoinSet::new();
        let start_writers = |writers: &mut JoinSet<Duration>| {
            for (id, key, leader) in &led {
                if *leader == u64::from(dead) {
                    let args = (
                        client.clone(),
                        o.stream.clone(),
                        (id.clone(), key.clone()),
                        kill_rx.clone(),
                    );
                    writers.spawn(write(args.0, args.1, args.2, args.3));
                }
            }
        };
        if options.idle {
            let replicas = led.len() as u64 * u64::from(nodes.count.min(3));
            let nodes = &*nodes;
            until(
                "every replica to be quiesced",
                Duration::from_secs(120),
                || async move { (nodes.quiesced().await >= replicas).then_some(()) },
            )
            .await?;
        } else {
            start_writers(&mut writers);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let killed = Instant::now();
        nodes.kill9(dead).await?;
        kill_tx.send_replace(Some(killed));
        if options.idle {
            start_writers(&mut writers);
        }
        let mut times = Vec::new();
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        while times.len() < count {
            tokio::select! {
                Some(Ok(t)) = writers.join_next() => times.push(t),
                () = &mut deadline => break,
            }
        }
        writers.abort_all();
        let worst = times.iter().max().copied().unwrap_or_default();
        eprintln!(
            "round {round}: killed node {dead} leading {count} of {} shards; writes resumed on {} of them, the last after {:.0} ms",
            led.len(),
            times.len(),
            worst.as_secs_f64() * 1000.0
        );
        anyhow::ensure!(
            times.len() == count,
            "round {round}: {} of {count} shards took no write within 60 s of the kill",
            count - times.len()
        );
        for t in &times {
            all.saturating_record(t.as_micros() as u64);
        }
        worst_round.push(worst);

        nodes.spawn(dead)?;
        nodes.wait_serving(dead, &o.stream).await?;
        // Leader balancing hands the restarted node its share back.
        tokio::time::sleep(Duration::from_secs(10)).await;
    }

    let mut report = Report::new("failover");
    report.count("nodes", "nodes", u64::from(nodes.count));
    report.count("shards", "shards", u64::from(o.shards));
    report.count("rounds", "leader kills", u64::from(options.rounds));
    report.text(
        "groups",
        "groups at the kill",
        if options.idle { "quiesced" } else { "taking writes" },
    );
    report.count("failovers", "shards failed over", all.len());
    report.latency("failover", "kill → first acknowledged write", &all);
    let worst = worst_round.iter().max().copied().unwrap_or_default();
    report.number(
        "worst_round_ms",
        "slowest shard of the worst round",
        worst.as_secs_f64() * 1000.0,
        "ms",
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_victim_leads_the_most_shards() {
        assert_eq!(victim(&[1, 2, 2, 3]), Some((2, 2)));
        assert_eq!(victim(&[3, 1, 3, 1]), Some((1, 2)));
        assert_eq!(victim(&[0, 0]), None);
    }
}
