//! A cluster of real `runnel-node cluster` processes on loopback: each member keeps its ports
//! across restarts (its peers name them), `kill -9` and restart on the same data directory.

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

/// One cluster member process.
pub struct Member {
    pub id: u64,
    pub grpc: u16,
    pub metrics: u16,
    pub kinesis: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn spawn(&mut self, peers: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(super::node_bin())
            .arg("cluster")
            .args(["--node-id", &self.id.to_string(), "--peers", peers])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc)])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.metrics)])
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", self.kinesis)])
            // Producers write as fast as they can; cluster tests are not about limits.
            .args(["--throttling", "off"])
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
    pub peers: String,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(n: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut members: Vec<Member> = (1..=n)
            .map(|id| Member {
                id,
                grpc: free_port(),
                metrics: free_port(),
                kinesis: free_port(),
                dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                child: None,
            })
            .collect();
        let peers = members
            .iter()
            .map(|m| format!("{}=127.0.0.1:{}", m.id, m.grpc))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            m.spawn(&peers);
        }
        Cluster {
            members,
            peers,
            _dir: dir,
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

    /// Restarts member `i` (by position) with the cluster's peers.
    pub fn restart(&mut self, i: usize) {
        let peers = self.peers.clone();
        self.members[i].spawn(&peers);
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
