//! Real `runnel-node` (standalone or cluster members), `runnel-operator` and `runnel-bench` processes on loopback.
//!
//! Binaries: `RUNNEL_NODE_BIN` / `RUNNEL_OPERATOR_BIN` / `RUNNEL_BENCH_BIN` when set; otherwise
//! `cargo build -p runnel-node -p runnel-operator -p runnel-bench` runs once (a no-op when up
//! to date, so a stale binary is never tested) and they are taken from this test executable's
//! target directory.

use std::io::Read;
use std::io::Write;
use std::net::SocketAddr;
use std::net::TcpStream;
use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;
use std::time::Instant;

use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::streams_client::StreamsClient;
use tonic::transport::Channel;

use crate::E2eError;
use crate::Result;

/// An unused loopback port.
/// A free loopback port below the ephemeral range (`runnel_testkit::free_port`).
pub fn free_port() -> Result<u16> {
    runnel_testkit::free_port().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no free loopback port").into()
    })
}

fn build_once() -> std::result::Result<(), String> {
    static BUILT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "runnel-node",
                    "-p",
                    "runnel-operator",
                    "-p",
                    "runnel-bench",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "cargo build -p runnel-node -p runnel-operator -p runnel-bench failed: {status}"
                ))
            }
        })
        .clone()
}

fn binary(var: &str, name: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    build_once().map_err(E2eError::Setup)?;
    // The test executable is <target>/<profile>/deps/<test>-<hash>.
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| E2eError::Setup(format!("unexpected test path {}", exe.display())))?;
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(E2eError::Setup(format!(
            "{} not found after building it",
            path.display()
        )))
    }
}

fn wait_listening(child: &mut Child, addr: SocketAddr, what: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(E2eError::Setup(format!("{what} exited early ({status}):\n{log}")));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(E2eError::Setup(format!("{what} did not listen on {addr}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `runnel-node standalone` on free loopback ports, standing in for a StatefulSet pod.
/// Killed on drop.
pub struct NodeProcess {
    child: Child,
    /// `127.0.0.1:PORT` of the gRPC (admin) API, as passed to `--nodes`.
    pub grpc_addr: String,
    /// `127.0.0.1:PORT` of its `/metrics`, as passed to `--node-metrics`.
    pub metrics_addr: String,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Free loopback ports for a node, chosen before it starts (cluster peers name each other).
#[derive(Clone, Copy, Debug)]
pub struct NodePorts {
    pub grpc: u16,
    pub kinesis: u16,
    pub metrics: u16,
}

impl NodePorts {
    pub fn free() -> Result<NodePorts> {
        Ok(NodePorts {
            grpc: free_port()?,
            kinesis: free_port()?,
            metrics: free_port()?,
        })
    }

    /// `127.0.0.1:<grpc>`.
    pub fn grpc_addr(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }
}

/// `HOST:PORT,...` of the nodes' gRPC addresses (the operator's `--nodes`).
pub fn grpc_addrs(ports: &[NodePorts]) -> String {
    ports
        .iter()
        .map(NodePorts::grpc_addr)
        .collect::<Vec<_>>()
        .join(",")
}

/// Starts the initial members of a `runnel-node cluster`: node `i + 1` on `ports[i]`, each
/// with all of them as `--peers` (as the chart's first `initialMembers` pods do).
pub fn start_members(ports: &[NodePorts]) -> Result<Vec<NodeProcess>> {
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}={}", i + 1, p.grpc_addr()))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| NodeProcess::start_cluster(i as u64 + 1, p, &peers, None))
        .collect()
}

impl NodeProcess {
    pub fn start() -> Result<NodeProcess> {
        Self::start_with(&[])
    }

    /// A node with extra `runnel-node standalone` flags.
    pub fn start_with(extra: &[&str]) -> Result<NodeProcess> {
        let ports = NodePorts::free()?;
        let mut args = vec!["standalone".to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        Self::spawn(&ports, &args)
    }

    /// A `runnel-node cluster` member with id `id`: one of the initial `peers` (`ID=HOST:PORT`
    /// list, this node's entry using `ports.grpc`), or (`peers` empty) joining through `join`.
    pub fn start_cluster(id: u64, ports: &NodePorts, peers: &str, join: Option<&str>) -> Result<NodeProcess> {
        let mut args = vec!["cluster".to_string(), "--node-id".into(), id.to_string()];
        match join {
            Some(seed) => args.extend(["--join".to_string(), seed.to_string()]),
            None => args.extend(["--peers".to_string(), peers.to_string()]),
        }
        Self::spawn(ports, &args)
    }

    fn spawn(ports: &NodePorts, args: &[String]) -> Result<NodeProcess> {
        let dir = tempfile::Builder::new().prefix("runnel-e2e-node-").tempdir()?;
        let log_path = dir.path().join("node.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(binary("RUNNEL_NODE_BIN", "runnel-node")?)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--grpc-addr", &format!("127.0.0.1:{}", ports.grpc)])
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", ports.kinesis)])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", ports.metrics)])
            // Whether a burst of test requests exceeds a per-shard rate would depend on timing.
            .args(["--throttling", "off"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], ports.grpc));
        wait_listening(&mut child, addr, "runnel-node", &log_path)?;
        let metrics_addr = SocketAddr::from(([127, 0, 0, 1], ports.metrics));
        wait_listening(&mut child, metrics_addr, "runnel-node metrics", &log_path)?;
        Ok(NodeProcess {
            child,
            grpc_addr: addr.to_string(),
            metrics_addr: metrics_addr.to_string(),
            log_path,
            _dir: dir,
        })
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The text of its /metrics.
    pub fn metrics(&self) -> Result<String> {
        let addr: SocketAddr = self
            .metrics_addr
            .parse()
            .map_err(|e| E2eError::Setup(format!("bad metrics address: {e}")))?;
        http_get(addr, "/metrics")
    }

    /// An admin client connected to this node.
    pub async fn admin(&self) -> Result<AdminClient<Channel>> {
        AdminClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .map_err(|e| E2eError::Setup(format!("connecting to the node: {e}")))
    }

    /// A data-plane (PutRecords, GetRecords) client connected to this node.
    pub async fn streams(&self) -> Result<StreamsClient<Channel>> {
        StreamsClient::connect(format!("http://{}", self.grpc_addr))
            .await
            .map_err(|e| E2eError::Setup(format!("connecting to the node: {e}")))
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `runnel-operator` process. Killed (SIGKILL) on drop.
pub struct OperatorProcess {
    child: Child,
    /// Address of its /metrics.
    pub metrics_addr: SocketAddr,
    /// Identity in the Lease and Events.
    pub identity: String,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl OperatorProcess {
    /// Starts the operator with `--nodes`, `--metrics-addr`, `--identity` and `extra` flags.
    pub fn start(kubeconfig: &Path, nodes: &str, identity: &str, extra: &[&str]) -> Result<OperatorProcess> {
        Self::start_with_env(kubeconfig, nodes, identity, extra, &[])
    }

    /// [`OperatorProcess::start`] with these environment variables set too (e.g. `POD_NAMESPACE`,
    /// as a pod of the chart's Deployment gets it).
    pub fn start_with_env(
        kubeconfig: &Path,
        nodes: &str,
        identity: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<OperatorProcess> {
        let dir = tempfile::Builder::new()
            .prefix("runnel-e2e-operator-")
            .tempdir()?;
        let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let log_path = dir.path().join("operator.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(binary("RUNNEL_OPERATOR_BIN", "runnel-operator")?)
            .args(["--nodes", nodes])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .args(["--identity", identity])
            .args(extra)
            .envs(env.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,runnel_operator=debug")
            .env("NO_COLOR", "1")
            // The operator logs to stdout (tracing-subscriber's default), panics go to stderr.
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        wait_listening(&mut child, metrics_addr, "runnel-operator", &log_path)?;
        Ok(OperatorProcess {
            child,
            metrics_addr,
            identity: identity.to_string(),
            log_path,
            _dir: dir,
        })
    }

    /// SIGKILL: no cleanup, no lease release.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, as the kubelet stops a pod, then waits until it exits (SIGKILL after a minute).
    /// Returns its exit status, or `None` when it had to be killed.
    pub fn terminate(&mut self) -> Result<Option<std::process::ExitStatus>> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            return Err(E2eError::Setup(format!("kill -TERM failed: {status}")));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(exit) = self.child.try_wait()? {
                return Ok(Some(exit));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill()?;
        Ok(None)
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The text of its /metrics.
    pub fn metrics(&self) -> Result<String> {
        http_get(self.metrics_addr, "/metrics")
    }

    /// The value of an unlabelled metric, or the sum of a labelled one over matching series.
    pub fn metric_sum(&self, name: &str, label_filter: &str) -> Result<f64> {
        let text = self.metrics()?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter(|l| l.contains(label_filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- operator {} log:\n{}", self.identity, self.log());
        }
    }
}

/// A `runnel-bench` run (load generator) against a node. Killed on drop.
pub struct BenchProcess {
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl BenchProcess {
    /// Starts `runnel-bench <args>`.
    pub fn start(args: &[&str]) -> Result<BenchProcess> {
        let dir = tempfile::Builder::new().prefix("runnel-e2e-bench-").tempdir()?;
        let log_path = dir.path().join("bench.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(binary("RUNNEL_BENCH_BIN", "runnel-bench")?)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(BenchProcess {
            child,
            log_path,
            _dir: dir,
        })
    }

    /// Its stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Still producing?
    pub fn running(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }
}

impl Drop for BenchProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- runnel-bench log:\n{}", self.log());
        }
    }
}

/// A minimal HTTP/1.0 GET returning the body (enough for /metrics and /readyz).
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}
