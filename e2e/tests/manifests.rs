//! The generated CRDs, the rendered Helm chart and the examples apply cleanly to a real API
//! server (server-side apply, dry-run), with the chart rendered for that server's API versions
//! (`helm template --validate`, so the PodDisruptionBudget picks policy/v1 or v1beta1 as
//! `helm install` would).

use std::path::Path;
use std::process::Command;

use kube::Api;
use kube::Client;
use kube::api::DynamicObject;
use kube::api::GroupVersionKind;
use kube::api::Patch;
use kube::api::PatchParams;
use kube::discovery::Discovery;
use kube::discovery::Scope;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::TEST_MANAGER;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::cluster::install_crds;
use runnel_e2e::cluster::k8s_tools_dir;
use runnel_e2e::cluster::repo_root;
use serde::Deserialize as _;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn crds_chart_and_examples_apply_with_server_side_dry_run() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = cluster.client().await?;
        let root = repo_root();

        // 1. crds/ as committed, dry-run, before anything is installed.
        let mut crds = Vec::new();
        for entry in std::fs::read_dir(root.join("crds"))? {
            crds.push(std::fs::read_to_string(entry?.path())?);
        }
        let discovery = Discovery::new(client.clone()).run().await?;
        let mut applied = 0;
        for file in &crds {
            applied += dry_run_documents(&client, &discovery, file, "default").await?;
        }
        assert_eq!(applied, 2, "expected the Stream and DeliveryStream CRDs");

        // 2. Render the chart for this server (before the CRDs exist: helm refuses to render
        //    over CRDs it does not own), install the CRDs, then apply the chart into a fresh
        //    namespace.
        let ns = create_namespace(&client, "e2e-chart").await?;
        let helm = helm_binary()?;
        let output = Command::new(&helm)
            .args(["template", "runnel"])
            .arg(root.join("charts/runnel"))
            .args(["--dry-run=server", "--include-crds", "--namespace", &ns])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()?;
        assert!(
            output.status.success(),
            "helm template failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rendered = String::from_utf8(output.stdout)?;
        install_crds(&client).await?;
        let discovery = Discovery::new(client.clone()).run().await?;
        let n = dry_run_documents(&client, &discovery, &rendered, &ns).await?;
        assert!(n >= 10, "only {n} documents rendered");

        // The node StatefulSet with a keyring Secret for server-side encryption.
        let output = Command::new(&helm)
            .args(["template", "runnel"])
            .arg(root.join("charts/runnel"))
            .args(["--show-only", "templates/node-statefulset.yaml"])
            .args(["--set", "node.encryption.keyringSecret=runnel-keyring"])
            .args(["--dry-run=server", "--namespace", &ns])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let statefulset = String::from_utf8(output.stdout)?;
        assert!(
            statefulset.contains("secretName: \"runnel-keyring\""),
            "{statefulset}"
        );
        assert!(statefulset.contains("RUNNEL_KMS_KEYRING"), "{statefulset}");
        assert_eq!(
            dry_run_documents(&client, &discovery, &statefulset, &ns).await?,
            1
        );

        // 3. The examples.
        for entry in std::fs::read_dir(root.join("examples"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                dry_run_documents(&client, &discovery, &std::fs::read_to_string(&path)?, &ns).await?;
            }
        }
        Ok(())
    })
}

fn helm_binary() -> Result<String, Box<dyn std::error::Error>> {
    let cache = std::env::var("HOME").map(|h| Path::new(&h).join(".cache/runnel-helm"))?;
    let output = Command::new("bash")
        .arg(k8s_tools_dir().join("get-helm.sh"))
        .arg(cache)
        .output()?;
    if !output.status.success() {
        return Err(format!("get-helm.sh failed: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    let stdout = String::from_utf8(output.stdout)?;
    Ok(stdout.lines().last().unwrap_or_default().trim().to_string())
}

/// Server-side-applies each YAML document with dry-run; returns how many were sent.
async fn dry_run_documents(
    client: &Client,
    discovery: &Discovery,
    yaml: &str,
    namespace: &str,
) -> Result<usize, Box<dyn std::error::Error>> {
    let mut count = 0;
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_yaml::from_value(value)?;
        let types = obj.types.clone().ok_or("document without apiVersion/kind")?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), types.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
        let (resource, caps) = discovery.resolve_gvk(&gvk).ok_or_else(|| {
            format!(
                "{}/{} is not served by this API server",
                types.api_version, types.kind
            )
        })?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        let name = obj
            .metadata
            .name
            .clone()
            .ok_or("document without metadata.name")?;
        api.patch(
            &name,
            &PatchParams::apply(TEST_MANAGER).dry_run(),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(|e| format!("{} {name}: {e}", types.kind))?;
        count += 1;
    }
    Ok(count)
}
