//! The Helm chart (`charts/runnel`) as real `helm` renders it (`../shared/tools/k8s/get-helm.sh`
//! provides the binary), and its documents applied to the API server with server-side apply.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

use kube::Api;
use kube::Client;
use kube::api::DynamicObject;
use kube::api::GroupVersionKind;
use kube::api::Patch;
use kube::api::PatchParams;
use kube::discovery::Discovery;
use kube::discovery::Scope;
use serde::Deserialize as _;

use crate::E2eError;
use crate::Result;
use crate::cluster::TEST_MANAGER;
use crate::cluster::k8s_tools_dir;
use crate::cluster::repo_root;

/// The path of a real `helm` binary (fetched once into `~/.cache/runnel-helm`).
pub fn helm_binary() -> Result<PathBuf> {
    let home = std::env::var("HOME").map_err(|_| E2eError::Setup("HOME is not set".into()))?;
    let output = Command::new("bash")
        .arg(k8s_tools_dir().join("get-helm.sh"))
        .arg(Path::new(&home).join(".cache/runnel-helm"))
        .output()?;
    if !output.status.success() {
        return Err(E2eError::Setup(format!(
            "get-helm.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(PathBuf::from(stdout.lines().last().unwrap_or_default().trim()))
}

/// `helm template <release> charts/runnel --namespace <namespace> <args>`: the rendered YAML.
/// With `kubeconfig`, helm talks to that cluster (for `--dry-run=server`).
pub fn render(release: &str, namespace: &str, args: &[&str], kubeconfig: Option<&Path>) -> Result<String> {
    let mut command = Command::new(helm_binary()?);
    command
        .args(["template", release])
        .arg(repo_root().join("charts/runnel"))
        .args(["--namespace", namespace])
        .args(args);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(E2eError::Setup(format!(
            "helm template failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    String::from_utf8(output.stdout).map_err(|e| E2eError::Setup(format!("helm output: {e}")))
}

/// The YAML documents of `yaml` (empty ones skipped).
pub fn documents(yaml: &str) -> Result<Vec<DynamicObject>> {
    let mut objects = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| E2eError::Setup(format!("YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        objects
            .push(serde_yaml::from_value(value).map_err(|e| E2eError::Setup(format!("YAML document: {e}")))?);
    }
    Ok(objects)
}

/// `apiVersion`/`kind` of a document, as `Kind` (`""` when missing).
pub fn kind_of(obj: &DynamicObject) -> &str {
    obj.types.as_ref().map(|t| t.kind.as_str()).unwrap_or_default()
}

/// Server-side applies one document (field manager `runnel-e2e`, forcing conflicts),
/// namespaced ones into `namespace`; with `dry_run` the server only validates it (and reports
/// conflicts).
pub async fn apply(
    client: &Client,
    discovery: &Discovery,
    obj: &DynamicObject,
    namespace: &str,
    dry_run: bool,
) -> Result<()> {
    let types = obj
        .types
        .as_ref()
        .ok_or_else(|| E2eError::Setup("document without apiVersion/kind".into()))?;
    let (group, version) = match types.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", types.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &types.kind);
    let (resource, caps) = discovery.resolve_gvk(&gvk).ok_or_else(|| {
        E2eError::Setup(format!(
            "{}/{} is not served by this API server",
            types.api_version, types.kind
        ))
    })?;
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let name = obj
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| E2eError::Setup(format!("{} without metadata.name", types.kind)))?;
    let params = if dry_run {
        PatchParams::apply(TEST_MANAGER).dry_run()
    } else {
        PatchParams::apply(TEST_MANAGER).force()
    };
    api.patch(name, &params, &Patch::Apply(obj))
        .await
        .map_err(|e| E2eError::Setup(format!("{} {name}: {e}", types.kind)))?;
    Ok(())
}

/// A release of the chart as `helm template` renders it, CRDs included; nothing is installed.
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub objects: Vec<DynamicObject>,
}

impl Release {
    /// Renders release `name` into `namespace` with extra `helm template` arguments (`--set`).
    pub fn render(name: &str, namespace: &str, args: &[&str]) -> Result<Release> {
        let mut all = vec!["--include-crds"];
        all.extend_from_slice(args);
        Ok(Release {
            name: name.to_string(),
            namespace: namespace.to_string(),
            objects: documents(&render(name, namespace, &all, None)?)?,
        })
    }

    /// The documents of these kinds, in the rendered order.
    pub fn of_kinds<'a>(&'a self, kinds: &'a [&str]) -> impl Iterator<Item = &'a DynamicObject> + 'a {
        self.objects.iter().filter(|o| kinds.contains(&kind_of(o)))
    }

    /// The one document of `kind`.
    pub fn one(&self, kind: &str) -> Result<&DynamicObject> {
        let mut found = self.objects.iter().filter(|o| kind_of(o) == kind);
        match (found.next(), found.next()) {
            (Some(obj), None) => Ok(obj),
            _ => Err(E2eError::Setup(format!(
                "release {}: expected one {kind}",
                self.name
            ))),
        }
    }

    /// The arguments the operator Deployment's container runs `runnel-operator` with.
    pub fn operator_args(&self) -> Result<Vec<String>> {
        let deployment = self.one("Deployment")?;
        let args = deployment.data["spec"]["template"]["spec"]["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "operator"))
            .and_then(|c| c["args"].as_array())
            .ok_or_else(|| {
                E2eError::Setup("the operator Deployment has no operator container args".into())
            })?;
        Ok(args
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect())
    }
}
