//! Where each Runnel node runs, the Kubernetes way (pure): node id → StatefulSet pod
//! `<sts>-<id - 1>` → the pod's `spec.nodeName` → that Kubernetes Node's zone label and
//! optional capacity annotation. The reconciler reads the pods and Nodes; this module only
//! maps them, so a missing pod, an unscheduled pod or a missing Node simply leaves that Runnel
//! node without a zone (and with the default capacity).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::Pod;

/// The zone label Kubernetes sets on Nodes.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The zone label before Kubernetes 1.17, still set by some providers.
pub const LEGACY_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";
/// Optional annotation on a Kubernetes Node: write bytes/s a Runnel node on it sustains
/// (replicated writes), overriding `--node-capacity-bytes-per-sec`. A positive number, with an
/// optional suffix `k`, `M`, `G` (powers of 1000) or `Ki`, `Mi`, `Gi` (powers of 1024).
pub const CAPACITY_ANNOTATION: &str = "runnel.dev/capacity-bytes-per-sec";

/// The name of the StatefulSet pod running node `node_id` (`None` for id 0).
pub fn pod_name(statefulset: &str, node_id: u64) -> Option<String> {
    super::ordinal(node_id).map(|o| format!("{statefulset}-{o}"))
}

/// The zone of each Runnel node whose zone is known, by node id: what the Stream status shows
/// beside each replica.
pub type NodeZones = BTreeMap<u64, String>;

/// What is known about one Runnel node's placement.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeTopology {
    /// The Kubernetes Node its pod is scheduled on.
    pub host: Option<String>,
    pub zone: Option<String>,
    /// From [`CAPACITY_ANNOTATION`]; `None`: the default.
    pub capacity: Option<f64>,
}

/// Zones and capacities of the Runnel nodes, by node id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Topology {
    /// `--node-capacity-bytes-per-sec`: the capacity of nodes without an annotation.
    pub default_capacity: f64,
    pub nodes: BTreeMap<u64, NodeTopology>,
    /// Annotations that could not be read (logged by the reconciler).
    pub problems: Vec<String>,
}

impl Topology {
    /// No zones, every node `capacity` bytes/s.
    pub fn uniform(capacity: f64) -> Topology {
        Topology {
            default_capacity: capacity,
            ..Topology::default()
        }
    }

    /// Maps the node ids to zones and capacities through the pods of `statefulset` (matched by
    /// name; other pods are ignored) and the Kubernetes Nodes they are scheduled on.
    pub fn map(
        statefulset: &str,
        node_ids: &[u64],
        pods: &[Pod],
        nodes: &[Node],
        default_capacity: f64,
    ) -> Topology {
        let mut topology = Topology::uniform(default_capacity);
        for &id in node_ids {
            let Some(host) = pod_name(statefulset, id)
                .and_then(|name| pods.iter().find(|p| p.metadata.name.as_deref() == Some(&name)))
                .and_then(|p| p.spec.as_ref()?.node_name.clone())
            else {
                continue;
            };
            let node = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(&host));
            let labels = node.and_then(|n| n.metadata.labels.as_ref());
            let zone = labels
                .and_then(|l| l.get(ZONE_LABEL).or_else(|| l.get(LEGACY_ZONE_LABEL)))
                .filter(|z| !z.is_empty())
                .cloned();
            let annotation = node
                .and_then(|n| n.metadata.annotations.as_ref())
                .and_then(|a| a.get(CAPACITY_ANNOTATION));
            let capacity = annotation.and_then(|v| match parse_capacity(v) {
                Some(c) => Some(c),
                None => {
                    topology.problems.push(format!(
                        "Node {host}: {CAPACITY_ANNOTATION}={v:?} is not a positive number of bytes/s; \
                         using the default"
                    ));
                    None
                }
            });
            topology.nodes.insert(
                id,
                NodeTopology {
                    host: Some(host),
                    zone,
                    capacity,
                },
            );
        }
        topology
    }

    pub fn zone(&self, node_id: u64) -> Option<&str> {
        self.nodes.get(&node_id)?.zone.as_deref()
    }

    /// The nodes with a known zone.
    pub fn zones(&self) -> NodeZones {
        self.nodes
            .iter()
            .filter_map(|(id, n)| Some((*id, n.zone.clone()?)))
            .collect()
    }

    pub fn capacity(&self, node_id: u64) -> f64 {
        self.nodes
            .get(&node_id)
            .and_then(|n| n.capacity)
            .unwrap_or(self.default_capacity)
    }

    /// The Kubernetes Nodes the pods run on, each once.
    pub fn hosts(pods: &[Pod]) -> Vec<String> {
        let mut hosts: Vec<String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref()?.node_name.clone())
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// A positive byte rate: a number with an optional `k`/`M`/`G` or `Ki`/`Mi`/`Gi` suffix.
pub fn parse_capacity(value: &str) -> Option<f64> {
    let value = value.trim();
    let (number, factor) = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ]
    .iter()
    .find_map(|(suffix, factor)| value.strip_suffix(suffix).map(|n| (n, *factor)))
    .unwrap_or((value, 1.0));
    let n: f64 = number.trim().parse().ok()?;
    let bytes = n * factor;
    (bytes.is_finite() && bytes > 0.0).then_some(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pod(name: &str, host: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "node"}], "nodeName": host},
        }))
        .unwrap()
    }

    pub(crate) fn k8s_node(name: &str, labels: &[(&str, &str)], capacity: Option<&str>) -> Node {
        let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
        let annotations: BTreeMap<&str, &str> =
            capacity.map(|c| (CAPACITY_ANNOTATION, c)).into_iter().collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
        }))
        .unwrap()
    }

    #[test]
    fn pods_are_named_by_ordinal() {
        assert_eq!(pod_name("runnel-node", 1).as_deref(), Some("runnel-node-0"));
        assert_eq!(pod_name("runnel-node", 4).as_deref(), Some("runnel-node-3"));
        assert_eq!(pod_name("runnel-node", 0), None);
    }

    #[test]
    fn zones_and_capacities_come_from_the_pods_nodes() {
        let pods = [
            pod("runnel-node-0", Some("k1")),
            pod("runnel-node-1", Some("k2")),
            pod("runnel-node-2", Some("k3")),
            pod("runnel-node-3", None),
            pod("other-0", Some("k1")),
        ];
        let nodes = [
            k8s_node(
                "k1",
                &[(ZONE_LABEL, "a"), (LEGACY_ZONE_LABEL, "old")],
                Some("100Mi"),
            ),
            k8s_node("k2", &[(LEGACY_ZONE_LABEL, "b")], None),
            k8s_node("k3", &[], Some("2500")),
        ];
        let t = Topology::map("runnel-node", &[1, 2, 3, 4, 5], &pods, &nodes, 64.0);
        assert_eq!(t.zone(1), Some("a"), "the current label wins over the legacy one");
        assert_eq!(t.capacity(1), 100.0 * 1024.0 * 1024.0);
        assert_eq!(t.zone(2), Some("b"), "the legacy label is the fallback");
        assert_eq!(t.capacity(2), 64.0);
        assert_eq!(t.zone(3), None, "a Node without a zone label");
        assert_eq!(t.capacity(3), 2500.0);
        assert_eq!(t.nodes[&3].host.as_deref(), Some("k3"));
        // Node 4's pod is not scheduled, node 5 has no pod: no zone, the default capacity.
        for id in [4, 5] {
            assert_eq!(t.zone(id), None);
            assert_eq!(t.capacity(id), 64.0);
            assert!(!t.nodes.contains_key(&id));
        }
        assert!(t.problems.is_empty(), "{:?}", t.problems);
        assert_eq!(Topology::hosts(&pods), ["k1", "k2", "k3"]);
        let zones = t.zones();
        let zones: Vec<(u64, &str)> = zones.iter().map(|(id, z)| (*id, z.as_str())).collect();
        assert_eq!(zones, [(1, "a"), (2, "b")], "only the nodes with a zone");
    }

    #[test]
    fn a_missing_node_or_a_bad_annotation_keeps_the_defaults() {
        let pods = [pod("sts-0", Some("gone")), pod("sts-1", Some("k1"))];
        let nodes = [k8s_node("k1", &[(ZONE_LABEL, "")], Some("lots"))];
        let t = Topology::map("sts", &[1, 2], &pods, &nodes, 10.0);
        assert_eq!((t.zone(1), t.capacity(1)), (None, 10.0));
        assert_eq!(t.zone(2), None, "an empty label is no zone");
        assert_eq!(t.capacity(2), 10.0);
        assert_eq!(t.problems.len(), 1);
        assert!(t.problems[0].contains("\"lots\""), "{:?}", t.problems);
    }

    #[test]
    fn capacities_parse_with_suffixes() {
        assert_eq!(parse_capacity("1000"), Some(1000.0));
        assert_eq!(parse_capacity(" 1.5k "), Some(1500.0));
        assert_eq!(parse_capacity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_capacity("2G"), Some(2e9));
        assert_eq!(parse_capacity("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        for bad in ["", "0", "-5", "fast", "Mi", "NaN", "inf"] {
            assert_eq!(parse_capacity(bad), None, "{bad}");
        }
    }
}
