//! Test support for Runnel's end-to-end tests against a real Kubernetes API server: the
//! cluster (`$KUBECONFIG`, or the local control plane from `../shared/tools/k8s/`), real
//! `runnel-node` and `runnel-operator` processes on loopback, and polling helpers.
//!
//! There is no kubelet on the test machines: the node processes stand in for the StatefulSet's
//! pods, and the operator is pointed at them with `--nodes`.

pub mod chart;
pub mod cluster;
pub mod identity;
pub mod node_pods;
pub mod process;
pub mod replicas;
pub mod streams;
pub mod wait;

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("{0}")]
    Setup(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("timed out after {secs}s waiting for {what}; last seen: {last}")]
    Timeout { what: String, secs: u64, last: String },
}

/// Result of the harness.
pub type Result<T> = std::result::Result<T, E2eError>;
