//! A cluster of real `runnel-node cluster` processes on loopback: each member keeps its ports
//! across restarts (its peers name them), `kill -9` and restart on the same data directory.
//! A partitionable cluster routes every member's connections to every other member through a
//! proxy of its own ([`Network`]): member i's `--peers` names its real gRPC address for itself
//! and the proxies i→j for the others, so links can be cut one way or both.

use std::io::BufRead;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use tonic::transport::Channel;

use super::free_port;
use super::partition::Network;

/// One cluster member process.
pub struct Member {
    pub id: u64,
    pub grpc: u16,
    pub metrics: u16,
    pub kinesis: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// This member's `--peers`.
    pub peers: String,
    /// Further arguments of every start ([`UNTHROTTLED`](super::UNTHROTTLED) unless the cluster
    /// was started with others).
    pub args: Vec<String>,
    child: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(super::node_bin())
            .arg("cluster")
            .args(["--node-id", &self.id.to_string(), "--peers", &self.peers])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc)])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.metrics)])
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", self.kinesis)])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// How many shard and catalog groups this member leads.
    pub async fn leads(&self) -> usize {
        let text = super::http_get(self.metrics, "/metrics").await;
        text.lines()
            .filter(|l| l.starts_with("runnel_raft_is_leader{") && l.ends_with(" 1"))
            .count()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `n` members on fresh data directories, all started.
pub struct Cluster {
    pub members: Vec<Member>,
    /// The links between members, when started with [`Cluster::start_partitionable`].
    pub network: Option<Network>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Members reaching each other directly. Producers write as fast as they can: cluster
    /// tests are not about limits, so throttling is off.
    pub fn start(n: u64) -> Cluster {
        Cluster::start_with(n, super::UNTHROTTLED)
    }

    /// Members reaching each other directly, each started with `args`.
    pub fn start_with(n: u64, args: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(n);
        for m in &mut cluster.members {
            m.args = args.iter().map(|a| a.to_string()).collect();
        }
        let peers = (0..cluster.members.len())
            .map(|j| (j, format!("127.0.0.1:{}", cluster.members[j].grpc)))
            .collect::<Vec<_>>();
        for m in &mut cluster.members {
            m.peers = peers_flag(&peers);
        }
        cluster.spawn_all();
        cluster
    }

    /// Members reaching each other through a [`Network`] of proxies.
    pub async fn start_partitionable(n: u64) -> Cluster {
        Cluster::start_partitionable_with(n, super::UNTHROTTLED).await
    }

    /// Members reaching each other through a [`Network`] of proxies, each started with `args`.
    pub async fn start_partitionable_with(n: u64, args: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(n);
        for m in &mut cluster.members {
            m.args = args.iter().map(|a| a.to_string()).collect();
        }
        let grpc: Vec<std::net::SocketAddr> = cluster
            .members
            .iter()
            .map(|m| std::net::SocketAddr::from(([127, 0, 0, 1], m.grpc)))
            .collect();
        let network = Network::start(&grpc).await;
        for (i, m) in cluster.members.iter_mut().enumerate() {
            let peers = (0..grpc.len())
                .map(|j| {
                    let addr = if i == j { grpc[j] } else { network.route(i, j) };
                    (j, addr.to_string())
                })
                .collect::<Vec<_>>();
            m.peers = peers_flag(&peers);
        }
        cluster.network = Some(network);
        cluster.spawn_all();
        cluster
    }

    fn prepare(n: u64) -> Cluster {
        let mut dir = tempfile::tempdir().unwrap();
        // Keeps the members' data and logs for a post-mortem.
        if std::env::var_os("CLUSTER_KEEP_DATA").is_some() {
            dir.disable_cleanup(true);
            println!("cluster data and logs in {}", dir.path().display());
        }
        let members: Vec<Member> = (1..=n)
            .map(|id| Member {
                id,
                grpc: free_port(),
                metrics: free_port(),
                kinesis: free_port(),
                dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                peers: String::new(),
                args: super::UNTHROTTLED.iter().map(|a| a.to_string()).collect(),
                child: None,
            })
            .collect();
        Cluster {
            members,
            network: None,
            _dir: dir,
        }
    }

    fn spawn_all(&mut self) {
        for m in &mut self.members {
            m.spawn();
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::endpoint).collect()
    }

    /// Every member's log, for assertion messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Restarts member `i` (by position) with its peers.
    pub fn restart(&mut self, i: usize) {
        self.members[i].spawn();
    }

    /// Shard-group replicas the members report quiesced (`runnel_raft_quiesced_groups`);
    /// members that do not answer count none.
    pub async fn quiesced_replicas(&self) -> u64 {
        let mut n = 0;
        for m in &self.members {
            let text = super::http_get_if_up(m.metrics, "/metrics").await;
            n += text
                .lines()
                .find_map(|l| l.strip_prefix("runnel_raft_quiesced_groups "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        n
    }

    /// The sum over the members of `name{labels}` (0 where absent or down).
    pub async fn metric_sum(&self, name: &str, labels: &str) -> f64 {
        let prefix = format!("{name}{{{labels}}} ");
        let mut total = 0.0;
        for m in &self.members {
            let page = super::http_get_if_up(m.metrics, "/metrics").await;
            total += page
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map_or(0.0, |v| v.trim().parse::<f64>().unwrap_or(0.0));
        }
        total
    }

    /// Creates a stream through member `via` once the cluster answers; returns the admin
    /// client used.
    pub async fn create_stream(&self, via: usize, stream: &str, shards: u32) -> AdminClient<Channel> {
        let endpoint = self.members[via].endpoint();
        for _ in 0..300 {
            if let Ok(mut a) = super::admin_client(&endpoint).await {
                let req = pb::CreateStreamRequest {
                    stream_name: stream.into(),
                    shard_count: Some(shards),
                    ..Default::default()
                };
                if a.create_stream(req).await.is_ok() {
                    return a;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the cluster never accepted CreateStream; logs:\n{}", self.logs());
    }
}

/// `--peers` from (member position, address) pairs: member j is node j + 1.
fn peers_flag(peers: &[(usize, String)]) -> String {
    peers
        .iter()
        .map(|(j, addr)| format!("{}={addr}", j + 1))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until a (re)started node serves client calls (it answers Unavailable until it has
/// caught up with the catalog).
pub async fn wait_ready(endpoint: &str, stream: &str) {
    for _ in 0..600 {
        if let Ok(mut a) = super::admin_client(endpoint).await {
            let req = pb::DescribeStreamRequest {
                stream_name: stream.into(),
            };
            if a.describe_stream(req).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} did not become ready");
}
