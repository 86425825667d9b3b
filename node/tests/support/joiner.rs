//! A node process that joins a running cluster (`runnel-node cluster --join`).

use std::process::Child;
use std::process::Command;
use std::process::Stdio;

/// A node process started with `--join`.
pub struct Joiner {
    child: Child,
    pub grpc: u16,
    pub metrics: u16,
    pub dir: tempfile::TempDir,
}

impl Joiner {
    pub fn start(id: u64, seed: u16) -> Joiner {
        Joiner::start_with(id, seed, &[])
    }

    /// [`Joiner::start`] with further node flags.
    pub fn start_with(id: u64, seed: u16, args: &[&str]) -> Joiner {
        let dir = tempfile::tempdir().unwrap();
        let (grpc, metrics) = (super::free_port(), super::free_port());
        let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
        let child = Command::new(super::node_bin())
            .arg("cluster")
            .args(["--node-id", &id.to_string()])
            .args(["--join", &format!("127.0.0.1:{seed}")])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--grpc-addr", &format!("127.0.0.1:{grpc}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", super::free_port())])
            .args(["--throttling", "off"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Joiner {
            child,
            grpc,
            metrics,
            dir,
        }
    }

    /// Kills the process (its data directory stays).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }
}

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
