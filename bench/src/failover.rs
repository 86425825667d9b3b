//! The `failover` mode: how long writes to a shard stop when its leader dies. It starts
//! `--nodes` real `runnel-node` processes on loopback (as `runnel-node dev-cluster` does) and
//! creates a stream; then, each round, one writer per shard puts single records (an explicit
//! hash key in the shard's range) through a surviving node, the node leading the most shards is
//! killed with SIGKILL, and for every shard it led the report takes the time from the kill to
//! the first write acknowledged after it. The killed node is restarted and leaders rebalance
//! before the next round. With `--idle` the writers stop before each kill until every replica
//! is quiesced, so the kill strikes quiet groups, and start again at the kill.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runnel_client::Client;
use runnel_client::CreateStream;
use runnel_client::Error;
use runnel_client::PutEntry;
use runnel_client::PutResult;
use runnel_proto::v1 as proto;
use tokio::process::Child;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Options;
use crate::idle::scrape_text;
use crate::report::Report;
use crate::report::histogram;

#[derive(Debug, Clone, Args)]
pub struct FailoverOptions {
    /// `--stream`, `--shards` and `--json` apply; `--endpoint` is ignored (the mode starts its
    /// own nodes).
    #[command(flatten)]
    pub common: Options,
    /// The runnel-node binary (default: the one beside runnel-bench).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=9))]
    pub nodes: u16,
    /// Node i listens on base+10(i-1) (Kinesis), +1 (gRPC) and +2 (metrics).
    #[arg(long, default_value_t = 7567)]
    pub base_port: u16,
    /// Parent of the nodes' data directories (default: a new directory under the system's
    /// temporary directory, removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Leader kills.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Kill the leader of quiesced (idle) groups rather than of groups taking writes.
    #[arg(long)]
    pub idle: bool,
    /// Further node flags, after `--`, passed to every node.
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

/// The nodes this mode runs.
struct Nodes {
    bin: PathBuf,
    dir: PathBuf,
    base_port: u16,
    count: u16,
    args: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn port(&self, id: u16, offset: u16) -> u16 {
        self.base_port + 10 * (id - 1) + offset
    }

    fn grpc(&self, id: u16) -> String {
        format!("http://127.0.0.1:{}", self.port(id, 1))
    }

    fn metrics(&self, id: u16) -> String {
        format!("127.0.0.1:{}", self.port(id, 2))
    }

    fn spawn(&mut self, id: u16) -> anyhow::Result<()> {
        let peers: Vec<String> = (1..=self.count)
            .map(|i| format!("{i}=127.0.0.1:{}", self.port(i, 1)))
            .collect();
        let log = std::fs::File::create(self.dir.join(format!("node-{id}.log")))?;
        let child = Command::new(&self.bin)
            .arg("cluster")
            .args(["--node-id", &id.to_string(), "--peers", &peers.join(",")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{id}")))
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", self.port(id, 0))])
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.port(id, 1))])
            .args(["--metrics-addr", &self.metrics(id)])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.children[usize::from(id - 1)] = Some(child);
        Ok(())
    }

    /// SIGKILL, and wait until the process is gone.
    async fn kill9(&mut self, id: u16) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[usize::from(id - 1)].take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Replicas quiesced on every running node.
    async fn quiesced(&self) -> u64 {
        let mut total = 0;
        for id in 1..=self.count {
            if let Ok(text) = scrape_text(&self.metrics(id)).await {
                total += quiesced_groups(&text);
            }
        }
        total
    }
}

/// `runnel_raft_quiesced_groups` from one node's Prometheus text.
fn quiesced_groups(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("runnel_raft_quiesced_groups"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
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

/// Polls `attempt` every 100 ms for up to `limit`, until it gives a value.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(value) = attempt().await {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
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
    let o = &options.common;
    let bin = match &options.node_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("runnel-node"),
    };
    let (dir, remove) = match &options.data_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("runnel-failover-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    let mut nodes = Nodes {
        bin,
        dir: dir.clone(),
        base_port: options.base_port,
        count: options.nodes,
        args: options.node_args.clone(),
        children: (0..options.nodes).map(|_| None).collect(),
    };
    for id in 1..=options.nodes {
        nodes.spawn(id)?;
    }
    let result = rounds(options, &mut nodes).await;
    for id in 1..=options.nodes {
        nodes.kill9(id).await?;
    }
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut report = result?;
    report.text("stream", "stream", &o.stream);
    Ok(report)
}

async fn rounds(options: &FailoverOptions, nodes: &mut Nodes) -> anyhow::Result<Report> {
    let o = &options.common;
    let admin = until(
        "the cluster to create the stream",
        Duration::from_secs(60),
        || {
            let (endpoint, stream, shards) = (nodes.grpc(1), o.stream.clone(), o.shards);
            async move {
                let client = Client::connect(endpoint).await.ok()?;
                match client
                    .create_stream(CreateStream::provisioned(stream, shards))
                    .await
                {
                    Ok(_) | Err(Error::StreamExists(_)) => Some(client),
                    Err(_) => None,
                }
            }
        },
    )
    .await?;
    admin.wait_for_active(&o.stream, Duration::from_secs(120)).await?;

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
        let back = nodes.grpc(dead);
        let stream = o.stream.clone();
        until("the killed node to serve again", Duration::from_secs(120), || {
            let (back, stream) = (back.clone(), stream.clone());
            async move {
                let client = Client::connect(back).await.ok()?;
                client.describe_stream(&stream).await.ok().map(|_| ())
            }
        })
        .await?;
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

    #[test]
    fn reads_quiesced_groups() {
        let text = "# TYPE runnel_raft_quiesced_groups gauge\nrunnel_raft_quiesced_groups 7\nother 1\n";
        assert_eq!(quiesced_groups(text), 7);
        assert_eq!(quiesced_groups("nothing"), 0);
    }
}
