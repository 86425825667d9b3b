//! Real `runnel-node standalone` processes for the integration tests: free loopback ports, a
//! temporary data directory, readiness from the "ready" line on stdout, `kill -9`, graceful
//! SIGTERM, restart on the same directory, and gRPC clients.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod faults;
pub mod joiner;
pub mod membership;
pub mod partition;
pub mod proxy;
pub mod read_probe;
pub mod sdk;
pub mod wait;
pub mod workload;

use std::cmp::Ordering;
use std::io::BufRead;
use std::io::BufReader;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::streams_client::StreamsClient;
use tonic::transport::Channel;

/// Largest message the test clients send or accept (above the server's 16 MiB on purpose).
pub const CLIENT_MAX_MESSAGE: usize = 64 << 20;

pub fn node_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runnel-node"))
}

/// A free loopback port below the ephemeral range (`runnel_testkit::free_port`).
pub fn free_port() -> u16 {
    runnel_testkit::free_port().expect("a free loopback port")
}

/// A standalone node process with its own data directory; killed (SIGKILL) on drop.
pub struct Node {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub grpc_port: u16,
    pub metrics_port: u16,
    pub kinesis_port: u16,
    /// How many times the process was started on this directory.
    pub starts: u32,
    /// Extra command-line arguments of every start.
    args: Vec<String>,
}

/// The arguments of [`Node::start`]: per-shard throttling off, because whether a burst of test
/// requests exceeds a rate depends on how fast the machine runs them (tests/throttling.rs
/// starts nodes with small limits instead).
pub const UNTHROTTLED: &[&str] = &["--throttling", "off"];

impl Node {
    /// Starts a node on a fresh data directory and waits until it is ready.
    pub async fn start() -> Node {
        Node::start_with(UNTHROTTLED).await
    }

    /// Starts a node with extra command-line arguments (kept for restarts).
    pub async fn start_with(args: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut node = Node {
            child: None,
            dir,
            grpc_port: 0,
            metrics_port: 0,
            kinesis_port: 0,
            starts: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        node.spawn().await;
        node
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// The node's stderr of every run so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Starts the process on this node's data directory, on fresh ports (a killed process's
    /// ports may linger), and waits for its ready line.
    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "node already running");
        self.grpc_port = free_port();
        self.metrics_port = free_port();
        self.kinesis_port = free_port();
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("node log file");
        let mut child = Command::new(node_bin())
            .arg("standalone")
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc_port)])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.metrics_port)])
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", self.kinesis_port)])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start runnel-node");
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        // Drain stdout until the process exits, so that its prints never hit a closed pipe.
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("runnel-node standalone ready")
                    && let Some(tx) = ready_tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        match tokio::time::timeout(Duration::from_secs(60), ready_rx).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                let status = self.child.as_mut().and_then(|c| c.wait().ok());
                panic!(
                    "runnel-node exited before it was ready ({status:?}):\n{}",
                    self.log()
                );
            }
            Err(_) => panic!("runnel-node was not ready within 60 s:\n{}", self.log()),
        }
    }

    /// `kill -9` and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful shutdown) and wait for the process to exit; returns whether it exited
    /// successfully within 20 s (it is killed otherwise).
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        for _ in 0..400 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Starts the node again on the same data directory (after `kill9` or `terminate`).
    pub async fn restart(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub async fn streams(&self) -> StreamsClient<Channel> {
        streams_client(&self.endpoint()).await.expect("connect Streams")
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        admin_client(&self.endpoint()).await.expect("connect Admin")
    }

    /// GET /metrics on the metrics port with a hand-written HTTP/1.1 request.
    pub async fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics").await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub async fn channel(endpoint: &str) -> Result<Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(endpoint.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

pub async fn streams_client(endpoint: &str) -> Result<StreamsClient<Channel>, tonic::transport::Error> {
    Ok(StreamsClient::new(channel(endpoint).await?)
        .max_decoding_message_size(CLIENT_MAX_MESSAGE)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE))
}

pub async fn admin_client(endpoint: &str) -> Result<AdminClient<Channel>, tonic::transport::Error> {
    Ok(AdminClient::new(channel(endpoint).await?)
        .max_decoding_message_size(CLIENT_MAX_MESSAGE)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE))
}

/// [`http_get`], or the empty string while nothing listens on `port` (a restarting node).
pub async fn http_get_if_up(port: u16, path: &str) -> String {
    match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => http_get_on(s, port, path).await,
        Err(_) => String::new(),
    }
}

/// A minimal HTTP/1.1 GET returning the body (connection closed by the server).
pub async fn http_get(port: u16, path: &str) -> String {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    http_get_on(s, port, path).await
}

async fn http_get_on(mut s: tokio::net::TcpStream, port: u16, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send request");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("metrics response within 10 s")
        .expect("read response");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Creates a provisioned stream and waits until it is ACTIVE; returns its shard ids.
pub async fn create_active_stream(admin: &mut AdminClient<Channel>, name: &str, shards: u32) -> Vec<String> {
    admin
        .create_stream(pb::CreateStreamRequest {
            stream_name: name.to_string(),
            shard_count: Some(shards),
            mode: pb::StreamMode::Provisioned as i32,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create stream {name}: {e:?}"));
    wait_active(admin, name).await
}

/// Polls DescribeStream until the stream is ACTIVE; returns its shard ids.
pub async fn wait_active(admin: &mut AdminClient<Channel>, name: &str) -> Vec<String> {
    for _ in 0..300 {
        let d = admin
            .describe_stream(pb::DescribeStreamRequest {
                stream_name: name.to_string(),
            })
            .await;
        if let Ok(d) = d {
            let s = d.into_inner().stream.expect("stream description");
            if s.status == pb::StreamStatus::Active as i32 {
                return s.shards.into_iter().map(|s| s.shard_id).collect();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("stream {name} did not become ACTIVE within 15 s");
}

/// Reads a shard from trim horizon to its end (an empty read of an open shard, or no next
/// position of a closed one), following `next_position`.
pub async fn read_shard(client: &mut StreamsClient<Channel>, stream: &str, shard: &str) -> Vec<pb::Record> {
    let mut out = Vec::new();
    let mut position = trim_horizon();
    loop {
        let r = client
            .get_records(pb::GetRecordsRequest {
                stream_name: stream.to_string(),
                shard_id: shard.to_string(),
                position: Some(position),
                limit: 10_000,
            })
            .await
            .unwrap_or_else(|e| panic!("GetRecords {stream}/{shard}: {e:?}"))
            .into_inner();
        if r.records.is_empty() && r.next_position.is_some() {
            return out;
        }
        out.extend(r.records);
        // A closed shard read to its end has no next position.
        let Some(next) = r.next_position else {
            return out;
        };
        position = next;
    }
}

/// Every record of every shard of the stream.
pub async fn read_stream(
    client: &mut StreamsClient<Channel>,
    admin: &mut AdminClient<Channel>,
    stream: &str,
) -> Vec<(String, Vec<pb::Record>)> {
    let d = admin
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: stream.to_string(),
        })
        .await
        .expect("describe")
        .into_inner()
        .stream
        .expect("stream");
    let mut out = Vec::new();
    for s in d.shards {
        let records = read_shard(client, stream, &s.shard_id).await;
        out.push((s.shard_id, records));
    }
    out
}

pub fn trim_horizon() -> pb::Position {
    pb::Position {
        kind: Some(pb::position::Kind::TrimHorizon(pb::Empty {})),
    }
}

pub fn latest() -> pb::Position {
    pb::Position {
        kind: Some(pb::position::Kind::Latest(pb::Empty {})),
    }
}

pub fn at_seq(s: &str) -> pb::Position {
    pb::Position {
        kind: Some(pb::position::Kind::AtSequenceNumber(s.to_string())),
    }
}

pub fn after_seq(s: &str) -> pb::Position {
    pb::Position {
        kind: Some(pb::position::Kind::AfterSequenceNumber(s.to_string())),
    }
}

pub fn at_timestamp(ms: i64) -> pb::Position {
    pb::Position {
        kind: Some(pb::position::Kind::AtTimestampMs(ms)),
    }
}

pub fn entry(key: &str, data: impl Into<Vec<u8>>) -> pb::PutRecordsEntry {
    pb::PutRecordsEntry {
        partition_key: key.to_string(),
        data: data.into().into(),
        explicit_hash_key: None,
    }
}

pub fn entry_hash(key: &str, data: impl Into<Vec<u8>>, hash: &str) -> pb::PutRecordsEntry {
    pb::PutRecordsEntry {
        explicit_hash_key: Some(hash.to_string()),
        ..entry(key, data)
    }
}

/// Puts records and asserts every entry succeeded; returns (shard id, sequence number) per entry.
pub async fn put_ok(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    records: Vec<pb::PutRecordsEntry>,
) -> Vec<(String, String)> {
    let n = records.len();
    let r = client
        .put_records(pb::PutRecordsRequest {
            stream_name: stream.to_string(),
            records,
        })
        .await
        .unwrap_or_else(|e| panic!("PutRecords {stream}: {e:?}"))
        .into_inner();
    assert_eq!(r.failed_record_count, 0, "{r:?}");
    assert_eq!(r.records.len(), n);
    r.records
        .into_iter()
        .map(|r| (r.shard_id, r.sequence_number))
        .collect()
}

/// Numeric order of decimal sequence numbers (no leading zeros): by length, then by digits.
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The Kinesis error type a node attached to a status.
pub fn error_type(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("x-runnel-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Whether a directory holds anything (the node wrote its data there).
pub fn non_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
}
