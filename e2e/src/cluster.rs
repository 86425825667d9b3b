//! The Kubernetes cluster under test: `$KUBECONFIG` when set, otherwise a private instance of
//! the local control plane (`../shared/tools/k8s/control-plane.sh`: etcd + kube-apiserver
//! v1.20.2, no kubelet), started on free ports with its own state directory and stopped (and
//! purged) when the [`Cluster`] is dropped.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::Client;
use kube::Config;
use kube::api::ObjectMeta;
use kube::api::Patch;
use kube::api::PatchParams;
use kube::api::PostParams;
use kube::config::KubeConfigOptions;
use kube::config::Kubeconfig;

use crate::E2eError;
use crate::Result;
use crate::process::free_port;
use crate::wait;

/// Field manager of the tests' own writes.
pub const TEST_MANAGER: &str = "runnel-e2e";

/// The repository root (parent of `e2e/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `../shared/tools/k8s/` relative to the repository root.
pub fn k8s_tools_dir() -> PathBuf {
    repo_root().join("../shared/tools/k8s")
}

/// A reachable cluster.
pub struct Cluster {
    /// Kubeconfig to hand to the operator processes.
    pub kubeconfig: PathBuf,
    /// The control plane started for this run, stopped on drop.
    _started: Option<StartedPlane>,
}

struct StartedPlane {
    script: PathBuf,
    env: Vec<(String, String)>,
    _state: tempfile::TempDir,
}

impl Cluster {
    /// Uses `$KUBECONFIG`, or starts the local control plane. `Ok(None)` when neither is
    /// possible on this machine (the reason is printed and the caller skips), unless
    /// `RUNNEL_E2E_REQUIRED=1`, which turns that into an error (CI sets it).
    pub fn connect_or_start() -> Result<Option<Cluster>> {
        if let Some(path) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
            eprintln!("e2e: using the cluster of KUBECONFIG={}", path.to_string_lossy());
            return Ok(Some(Cluster {
                kubeconfig: PathBuf::from(path),
                _started: None,
            }));
        }
        match Self::start_local() {
            Ok(cluster) => Ok(Some(cluster)),
            Err(e) if std::env::var("RUNNEL_E2E_REQUIRED").as_deref() == Ok("1") => Err(e),
            Err(e) => {
                eprintln!(
                    "SKIPPED: KUBECONFIG is unset and the local control plane could not be started: {e}"
                );
                Ok(None)
            }
        }
    }

    fn start_local() -> Result<Cluster> {
        let script = k8s_tools_dir().join("control-plane.sh");
        if !script.exists() {
            return Err(E2eError::Setup(format!("{} not found", script.display())));
        }
        let state = tempfile::Builder::new().prefix("runnel-e2e-k8s-").tempdir()?;
        let env = vec![
            ("K8S_STATE_DIR".to_string(), state.path().display().to_string()),
            ("K8S_API_PORT".to_string(), free_port()?.to_string()),
            ("K8S_ETCD_PORT".to_string(), free_port()?.to_string()),
            ("K8S_ETCD_PEER_PORT".to_string(), free_port()?.to_string()),
            // No controller-manager: nothing here needs garbage collection or pods.
            ("K8S_WITH_KCM".to_string(), "0".to_string()),
        ];
        eprintln!("e2e: starting the local control plane ({})", script.display());
        let plane = StartedPlane {
            script: script.clone(),
            env: env.clone(),
            _state: state,
        };
        let output = Command::new("bash")
            .arg(&script)
            .arg("up")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()?;
        if !output.status.success() {
            // `plane` is dropped here, stopping whatever did start.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
            return Err(E2eError::Setup(format!(
                "control-plane.sh up failed ({}):\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        let kubeconfig = plane._state.path().join("kubeconfig");
        Ok(Cluster {
            kubeconfig,
            _started: Some(plane),
        })
    }

    /// A client for the cluster.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }
}

/// A client configured by the kubeconfig file `path` (its current context).
pub async fn client_from(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| E2eError::Kubeconfig(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| E2eError::Kubeconfig(e.to_string()))?;
    Ok(Client::try_from(config)?)
}

impl Drop for StartedPlane {
    fn drop(&mut self) {
        eprintln!("e2e: stopping the local control plane");
        let _ = Command::new("bash")
            .arg(&self.script)
            .args(["down", "--purge"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }
}

/// Installs (server-side apply) the CRDs generated from the Rust types and waits until the
/// API server serves them.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in runnel_operator::crdgen::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        wait_established(client, &name).await?;
    }
    Ok(())
}

/// Waits until the API server serves the CRD `name`.
pub async fn wait_established(client: &Client, name: &str) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait::until(
        &format!("CRD {name} Established"),
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                let crd = api.get(name).await.map_err(|e| e.to_string())?;
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                Ok(established.then_some(()))
            }
        },
    )
    .await
}

/// Creates a namespace `<prefix>-<random>` and returns its name.
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<String> {
    let name = format!("{prefix}-{}", random_suffix());
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    api.create(&PostParams::default(), &ns).await?;
    Ok(name)
}

/// Eight lowercase hex digits, different per call and per process.
pub fn random_suffix() -> String {
    use std::hash::BuildHasher;
    let n = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{:08x}", n & 0xffff_ffff)
}
