//! A real `runnel-node standalone` process for the end-to-end tests.
//!
//! `env!("CARGO_BIN_EXE_runnel-node")` only exists for binaries of this crate, so the node
//! binary is found as follows:
//! 1. `RUNNEL_NODE_BIN`, when set, is used as is (and `RUNNEL_BENCH_BIN` for `runnel-bench`);
//! 2. otherwise `cargo build -p runnel-node -p runnel-bench` is run (a no-op when they are up to
//!    date, so a stale node binary is never tested) and the binaries are taken from the directory
//!    of this crate's `runnel` binary, which is the same target directory (`$CARGO_TARGET_DIR`
//!    or `target/`, profile `debug`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::SocketAddr;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Output;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use std::time::Instant;

/// The `runnel` CLI built for these tests.
pub fn cli_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runnel"))
}

fn built_bins() -> &'static Result<(), String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "runnel-node", "-p", "runnel-bench"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|err| format!("cannot run cargo: {err}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build -p runnel-node failed: {status}"))
        }
    })
}

fn sibling_bin(var: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return PathBuf::from(path);
    }
    if let Err(err) = built_bins() {
        panic!("{err}");
    }
    let dir = cli_bin().parent().map(PathBuf::from).unwrap_or_default();
    let path = dir.join(name);
    assert!(path.exists(), "{} not found after building it", path.display());
    path
}

pub fn node_bin() -> PathBuf {
    sibling_bin("RUNNEL_NODE_BIN", "runnel-node")
}

pub fn bench_bin() -> PathBuf {
    sibling_bin("RUNNEL_BENCH_BIN", "runnel-bench")
}

fn free_port() -> u16 {
    runnel_testkit::free_port().expect("a free loopback port")
}

/// A standalone node on free loopback ports with its own data directory; killed on drop.
pub struct Node {
    child: Child,
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl Node {
    /// A node without per-shard throttling: whether a burst of test requests exceeds a rate
    /// would depend on how fast the machine runs them.
    pub fn start() -> Node {
        Node::start_with(&["--throttling", "off"])
    }

    /// A node started with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Node {
        let (grpc, kinesis, metrics) = (free_port(), free_port(), free_port());
        let mut all = vec!["standalone".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let node = Node::spawn(&all, grpc, kinesis, metrics);
        node.wait_serving();
        node
    }

    /// `count` `runnel-node cluster` processes on loopback forming one cluster (replication
    /// factor 3 by default), each serving once the cluster has formed.
    pub fn start_cluster(count: u64) -> Vec<Node> {
        let ports: Vec<(u16, u16, u16)> = (0..count)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (grpc, _, _))| format!("{}=127.0.0.1:{grpc}", i + 1))
            .collect();
        let peers = peers.join(",");
        let nodes: Vec<Node> = ports
            .iter()
            .enumerate()
            .map(|(i, &(grpc, kinesis, metrics))| {
                let args: Vec<String> = [
                    "cluster",
                    "--node-id",
                    &(i + 1).to_string(),
                    "--peers",
                    &peers,
                    "--throttling",
                    "off",
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                Node::spawn(&args, grpc, kinesis, metrics)
            })
            .collect();
        for node in &nodes {
            node.wait_serving();
        }
        nodes
    }

    fn spawn(args: &[String], grpc: u16, kinesis: u16, metrics: u16) -> Node {
        let data = tempfile::tempdir().expect("temporary data directory");
        let log = std::fs::File::create(data.path().join("node.log")).expect("node log file");
        let (mode, rest) = args.split_first().expect("a mode");
        let child = Command::new(node_bin())
            .arg(mode)
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--kinesis-addr", &format!("127.0.0.1:{kinesis}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(rest)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start runnel-node");
        Node {
            child,
            endpoint: format!("http://127.0.0.1:{grpc}"),
            _data: data,
        }
    }

    /// Waits until the node listens and answers (its catalog is ready).
    fn wait_serving(&self) {
        let addr: SocketAddr = self
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("address");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "runnel-node did not listen on {addr} within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Listening is not serving: the node answers Unavailable until its catalog is ready.
        while !self.cli(&["stream", "list"], None).status.success() {
            assert!(
                Instant::now() < deadline,
                "runnel-node did not serve within 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._data.path().join("node.log")).unwrap_or_default()
    }

    /// Runs the CLI against this node with `args` and optional stdin.
    pub fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        run(cli_bin(), &self.endpoint, args, stdin)
    }

    /// Runs the CLI and returns its stdout, failing the test when it fails.
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let output = self.cli(args, stdin);
        assert!(
            output.status.success(),
            "runnel {args:?} failed: {}",
            describe(&output)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Starts the CLI in the background with stdout piped.
    pub fn cli_spawn(&self, args: &[&str]) -> Child {
        Command::new(cli_bin())
            .args(["--endpoint", &self.endpoint])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runnel")
    }

    pub fn bench(&self, args: &[&str]) -> Output {
        let mut command = Command::new(bench_bin());
        command
            .args(args)
            .args(["--endpoint", &self.endpoint])
            .stdin(Stdio::null());
        command.output().expect("run runnel-bench")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(bin: PathBuf, endpoint: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(bin)
        .args(["--endpoint", endpoint])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start runnel");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait for runnel")
}

pub fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Reads a child's stdout until `needle` appears or `timeout` passes; returns what was read.
pub fn read_until(child: &mut Child, needle: &str, timeout: Duration) -> String {
    read_until_done(child, |seen| seen.contains(needle), timeout)
}

/// Reads a child's stdout until it has printed `count` lines or `timeout` passes.
pub fn read_lines(child: &mut Child, count: usize, timeout: Duration) -> String {
    read_until_done(child, |seen| seen.matches('\n').count() >= count, timeout)
}

fn read_until_done(child: &mut Child, done: impl Fn(&str) -> bool, timeout: Duration) -> String {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while !done(&String::from_utf8_lossy(&seen)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).to_string()
}
