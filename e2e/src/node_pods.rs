//! The node StatefulSet as the API server holds it in these tests: the StatefulSet object
//! (what node scaling reads and patches), and Pod objects named like its pods
//! (`<statefulset>-<ordinal>`, node id = ordinal + 1) bound by `spec.nodeName` to Kubernetes
//! Node objects with zone labels (and optionally the capacity annotation): what the operator
//! reads to find each node's zone. There is no scheduler and no kubelet: the API server
//! accepts such pods (binding by `spec.nodeName` needs neither), and neither they nor the
//! StatefulSet's ever run; the `runnel-node` processes on loopback stand in for them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::Client;
use kube::api::DeleteParams;
use kube::api::PostParams;
use serde_json::json;

use crate::E2eError;
use crate::Result;

/// The zone label Kubernetes sets on Nodes.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The zone label before Kubernetes 1.17.
pub const LEGACY_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";

/// Where one Runnel node runs.
#[derive(Clone, Copy, Debug)]
pub struct Placed<'a> {
    pub node_id: u64,
    /// [`ZONE_LABEL`] or [`LEGACY_ZONE_LABEL`].
    pub label: &'a str,
    pub zone: &'a str,
    /// The Node's `runnel.dev/capacity-bytes-per-sec` annotation, if any.
    pub capacity: Option<&'a str>,
}

impl<'a> Placed<'a> {
    /// Node `node_id` on a Kubernetes Node labelled `label: zone`, without the capacity
    /// annotation.
    pub const fn new(node_id: u64, label: &'a str, zone: &'a str) -> Placed<'a> {
        Placed {
            node_id,
            label,
            zone,
            capacity: None,
        }
    }

    /// The same with the capacity annotation.
    pub const fn with_capacity(self, capacity: &'a str) -> Placed<'a> {
        Placed {
            capacity: Some(capacity),
            ..self
        }
    }
}

/// The Kubernetes Node of node `node_id`: `<prefix>-k<ordinal>`. Nodes are cluster-scoped, so
/// `prefix` must be unique to the test run (another cluster of `$KUBECONFIG` has Nodes of its
/// own).
pub fn host_name(prefix: &str, node_id: u64) -> String {
    format!("{prefix}-k{}", node_id.saturating_sub(1))
}

/// Creates one Kubernetes Node per entry of `layout`, labelled with its zone. Delete them with
/// [`delete_hosts`], also when the test fails.
pub async fn create_hosts(client: &Client, prefix: &str, layout: &[Placed<'_>]) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for p in layout {
        let annotations: BTreeMap<&str, &str> = p
            .capacity
            .map(|c| ("runnel.dev/capacity-bytes-per-sec", c))
            .into_iter()
            .collect();
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": host_name(prefix, p.node_id),
                "labels": {p.label: p.zone},
                "annotations": annotations,
            },
        }))
        .map_err(|e| E2eError::Setup(format!("Node: {e}")))?;
        api.create(&PostParams::default(), &node).await?;
    }
    Ok(())
}

/// Creates the StatefulSet pod of each node of `layout` in `namespace`, bound to its Node.
pub async fn create_pods(
    client: &Client,
    namespace: &str,
    statefulset: &str,
    prefix: &str,
    layout: &[Placed<'_>],
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for p in layout {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": format!("{statefulset}-{}", p.node_id.saturating_sub(1)),
                "labels": {"app": statefulset},
            },
            "spec": {
                "nodeName": host_name(prefix, p.node_id),
                "containers": [{"name": "node", "image": "runnel:test"}]
            }
        }))
        .map_err(|e| E2eError::Setup(format!("Pod: {e}")))?;
        api.create(&PostParams::default(), &pod).await?;
    }
    Ok(())
}

/// Deletes the Nodes [`create_hosts`] made (errors ignored: cleanup).
pub async fn delete_hosts(client: &Client, prefix: &str, layout: &[Placed<'_>]) {
    let api: Api<Node> = Api::all(client.clone());
    for p in layout {
        let _ = api
            .delete(&host_name(prefix, p.node_id), &DeleteParams::default())
            .await;
    }
}

/// Node id → zone of `layout`.
pub fn zone_of<'a>(layout: &[Placed<'a>]) -> BTreeMap<u64, &'a str> {
    layout.iter().map(|p| (p.node_id, p.zone)).collect()
}

/// Creates the node StatefulSet `name` with `replicas` pods (which never run).
pub async fn create_statefulset(client: &Client, namespace: &str, name: &str, replicas: i32) -> Result<()> {
    let sts: StatefulSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": format!("{name}-headless"),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "node", "image": "runnel:test"}]}
            }
        }
    }))
    .map_err(|e| E2eError::Setup(format!("StatefulSet: {e}")))?;
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &sts).await?;
    Ok(())
}
