//! The generated CRDs, the rendered Helm chart and the examples apply cleanly to a real API
//! server (server-side apply, dry-run), with the chart rendered for that server's API versions
//! (`helm template --validate`, so the PodDisruptionBudget picks policy/v1 or v1beta1 as
//! `helm install` would).

use kube::Client;
use kube::discovery::Discovery;
use runnel_e2e::chart;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::cluster::install_crds;
use runnel_e2e::cluster::repo_root;

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
        let rendered = chart::render(
            "runnel",
            &ns,
            &["--dry-run=server", "--include-crds"],
            Some(&cluster.kubeconfig),
        )?;
        install_crds(&client).await?;
        let discovery = Discovery::new(client.clone()).run().await?;
        let n = dry_run_documents(&client, &discovery, &rendered, &ns).await?;
        assert!(n >= 10, "only {n} documents rendered");

        // The node StatefulSet with a keyring Secret for server-side encryption.
        let statefulset = chart::render(
            "runnel",
            &ns,
            &[
                "--show-only",
                "templates/node-statefulset.yaml",
                "--set",
                "node.encryption.keyringSecret=runnel-keyring",
                "--dry-run=server",
            ],
            Some(&cluster.kubeconfig),
        )?;
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

/// Server-side-applies each YAML document with dry-run; returns how many were sent.
async fn dry_run_documents(
    client: &Client,
    discovery: &Discovery,
    yaml: &str,
    namespace: &str,
) -> Result<usize, Box<dyn std::error::Error>> {
    let objects = chart::documents(yaml)?;
    for obj in &objects {
        chart::apply(client, discovery, obj, namespace, true).await?;
    }
    Ok(objects.len())
}
