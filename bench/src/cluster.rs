//! Real `runnel-node` processes on loopback, started and killed by the modes that measure a
//! cluster's reaction to a node's death (`failover`, `catch-up`), on the ports
//! `runnel-node dev-cluster` would use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runnel_client::Client;
use runnel_client::CreateStream;
use runnel_client::Error;
use tokio::process::Child;
use tokio::process::Command;
use tokio::time::Instant;

use crate::idle::scrape_text;

#[derive(Debug, Clone, Args)]
pub struct NodesOptions {
    /// The runnel-node binary (default: the one beside runnel-bench).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=9))]
    pub nodes: u16,
    /// Node i listens on base+10(i-1) (Kinesis), +1 (gRPC) and +2 (metrics).
    #[arg(long, default_value_t = 7567)]
    pub base_port: u16,
    /// Parent of the nodes' data directories and logs (default: a new directory under the
    /// system's temporary directory, removed at the end).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Further node flags, after `--`, passed to every node.
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

/// The running nodes; node ids are 1..=count.
pub struct Nodes {
    bin: PathBuf,
    dir: PathBuf,
    remove_dir: bool,
    base_port: u16,
    pub count: u16,
    args: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    /// Starts every node.
    pub fn start(options: &NodesOptions) -> anyhow::Result<Nodes> {
        let bin = match &options.node_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.with_file_name("runnel-node"),
        };
        let (dir, remove_dir) = match &options.data_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("runnel-bench-{}", std::process::id())),
                true,
            ),
        };
        std::fs::create_dir_all(&dir)?;
        let mut nodes = Nodes {
            bin,
            dir,
            remove_dir,
            base_port: options.base_port,
            count: options.nodes,
            args: options.node_args.clone(),
            children: (0..options.nodes).map(|_| None).collect(),
        };
        for id in 1..=options.nodes {
            nodes.spawn(id)?;
        }
        Ok(nodes)
    }

    /// Kills every node (and removes the data a default directory holds).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for id in 1..=self.count {
            self.kill9(id).await?;
        }
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Ok(())
    }

    fn port(&self, id: u16, offset: u16) -> u16 {
        self.base_port + 10 * (id - 1) + offset
    }

    pub fn grpc(&self, id: u16) -> String {
        format!("http://127.0.0.1:{}", self.port(id, 1))
    }

    pub fn metrics(&self, id: u16) -> String {
        format!("127.0.0.1:{}", self.port(id, 2))
    }

    /// Starts node `id` (again), on its data directory.
    pub fn spawn(&mut self, id: u16) -> anyhow::Result<()> {
        let peers: Vec<String> = (1..=self.count)
            .map(|i| format!("{i}=127.0.0.1:{}", self.port(i, 1)))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{id}.log")))?;
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
    pub async fn kill9(&mut self, id: u16) -> anyhow::Result<()> {
        if let Some(mut child) = self.children[usize::from(id - 1)].take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }

    /// Creates a PROVISIONED stream through node 1 once the cluster answers; a client of node 1.
    pub async fn create_stream(&self, stream: &str, shards: u32) -> anyhow::Result<Client> {
        let admin = until(
            "the cluster to create the stream",
            Duration::from_secs(60),
            || {
                let (endpoint, stream) = (self.grpc(1), stream.to_string());
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
        admin.wait_for_active(stream, Duration::from_secs(120)).await?;
        Ok(admin)
    }

    /// Waits until node `id` serves client calls again (after a restart).
    pub async fn wait_serving(&self, id: u16, stream: &str) -> anyhow::Result<()> {
        until("the node to serve again", Duration::from_secs(120), || {
            let (endpoint, stream) = (self.grpc(id), stream.to_string());
            async move {
                let client = Client::connect(endpoint).await.ok()?;
                client.describe_stream(&stream).await.ok().map(|_| ())
            }
        })
        .await
    }

    /// What node `id` logged (all its starts).
    pub fn log(&self, id: u16) -> String {
        std::fs::read_to_string(self.dir.join(format!("node-{id}.log"))).unwrap_or_default()
    }

    /// Replicas quiesced on every running node.
    pub async fn quiesced(&self) -> u64 {
        let mut total = 0;
        for id in 1..=self.count {
            if let Ok(text) = scrape_text(&self.metrics(id)).await {
                total += gauge_sum(&text, "runnel_raft_quiesced_groups");
            }
        }
        total
    }

    /// The applied log index of every shard group node `id` hosts (none while it is down).
    pub async fn applied(&self, id: u16) -> BTreeMap<u64, u64> {
        scrape_text(&self.metrics(id))
            .await
            .map(|text| applied_indexes(&text))
            .unwrap_or_default()
    }
}

/// The sum of a gauge's samples in a node's Prometheus text.
fn gauge_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|l| l.starts_with(' ') || l.starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// `runnel_raft_applied_index` of every shard group (group 0, the catalog, left out).
fn applied_indexes(text: &str) -> BTreeMap<u64, u64> {
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

/// Polls `attempt` every 100 ms for up to `limit`, until it gives a value.
pub async fn until<T, F, Fut>(what: &str, limit: Duration, mut attempt: F) -> anyhow::Result<T>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gauges() {
        let text = "# TYPE runnel_raft_quiesced_groups gauge\nrunnel_raft_quiesced_groups 7\n\
                    runnel_raft_quiesced_groups_other 3\nother 1\n";
        assert_eq!(gauge_sum(text, "runnel_raft_quiesced_groups"), 7);
        assert_eq!(gauge_sum("nothing", "runnel_raft_quiesced_groups"), 0);
    }

    #[test]
    fn reads_applied_indexes_of_shard_groups() {
        let text = "runnel_raft_applied_index{group=\"0\"} 9\nrunnel_raft_applied_index{group=\"3\"} 41\n\
                    runnel_raft_applied_index{group=\"5\"} 7\n";
        assert_eq!(applied_indexes(text), BTreeMap::from([(3, 41), (5, 7)]));
    }
}
