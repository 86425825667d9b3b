//! What the cluster looks like, from the admin API and the load sampler: pure conversions into
//! the policies' inputs.

use std::collections::BTreeMap;

use runnel_proto::v1 as pb;

use super::topology::Topology;
use crate::observed::ObservedStream;
use crate::plan::OWNER_TAG;
use crate::policy::nodes::NodeLoad;
use crate::policy::placement::PlacementNode;
use crate::policy::placement::ShardReplicas;

/// A node as DescribeCluster reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub id: u64,
    pub draining: bool,
    /// Replicas it holds or is receiving.
    pub replicas: u32,
    /// Replicas moving onto or off it.
    pub moving: u32,
}

impl From<&pb::ClusterNode> for NodeState {
    fn from(n: &pb::ClusterNode) -> Self {
        NodeState {
            id: n.node_id,
            draining: n.draining,
            replicas: n.replicas,
            moving: n.moving,
        }
    }
}

/// One shard (open or closed: closed shards keep their replicas until retention removes them).
#[derive(Clone, Debug, PartialEq)]
pub struct ShardState {
    pub stream: String,
    pub shard_id: String,
    pub replicas: Vec<u64>,
    pub leader: Option<u64>,
    /// Measured write bytes per second (0 when unknown or closed).
    pub load: f64,
    /// The `Stream` resource owning the stream (namespace, name), from the owner tag.
    pub owner: Option<(String, String)>,
}

impl ShardState {
    /// The shard's key in the placement policy: `stream/shardId` (stream names and shard ids
    /// never contain `/`).
    pub fn key(&self) -> String {
        shard_key(&self.stream, &self.shard_id)
    }
}

/// `stream/shardId`.
pub fn shard_key(stream: &str, shard_id: &str) -> String {
    format!("{stream}/{shard_id}")
}

/// Splits a [`shard_key`] back into stream and shard id.
pub fn split_shard_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
}

/// The cluster's nodes and every stream's shards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    pub nodes: Vec<NodeState>,
    pub shards: Vec<ShardState>,
}

impl ClusterView {
    /// Builds the view. `load(stream, shard)` answers the latest measured write bytes/s.
    pub fn new(
        nodes: &[pb::ClusterNode],
        streams: &[ObservedStream],
        load: impl Fn(&str, &str) -> Option<f64>,
    ) -> ClusterView {
        let mut nodes: Vec<NodeState> = nodes.iter().map(NodeState::from).collect();
        nodes.sort_by_key(|n| n.id);
        let shards = streams
            .iter()
            .flat_map(|s| {
                let owner = s
                    .tags
                    .get(OWNER_TAG)
                    .and_then(|o| o.split_once('/'))
                    .map(|(ns, name)| (ns.to_string(), name.to_string()));
                let load = &load;
                s.shards.iter().map(move |sh| ShardState {
                    stream: s.name.clone(),
                    shard_id: sh.shard_id.clone(),
                    replicas: sh.replicas.clone(),
                    leader: sh.leader,
                    load: if sh.closed {
                        0.0
                    } else {
                        load(&s.name, &sh.shard_id).unwrap_or(0.0).max(0.0)
                    },
                    owner: owner.clone(),
                })
            })
            .collect();
        ClusterView { nodes, shards }
    }

    pub fn node(&self, id: u64) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn shard(&self, key: &str) -> Option<&ShardState> {
        let (stream, shard) = split_shard_key(key)?;
        self.shards
            .iter()
            .find(|s| s.stream == stream && s.shard_id == shard)
    }

    /// Replica moves under way in the whole cluster (each counts on its source and target).
    pub fn moves_under_way(&self) -> usize {
        let ends: u64 = self.nodes.iter().map(|n| u64::from(n.moving)).sum();
        usize::try_from(ends.div_ceil(2)).unwrap_or(usize::MAX)
    }

    /// The placement policy's nodes: every member, with its zone and capacity from `topology`
    /// (no zone and the default capacity when its pod or Kubernetes Node is unknown).
    pub fn placement_nodes(&self, topology: &Topology) -> Vec<PlacementNode> {
        self.nodes
            .iter()
            .map(|n| PlacementNode {
                node_id: n.id.to_string(),
                zone: topology.zone(n.id).map(str::to_string),
                capacity: topology.capacity(n.id),
                draining: n.draining,
            })
            .collect()
    }

    /// The placement policy's shards, keyed by [`shard_key`].
    pub fn placement_shards(&self) -> Vec<ShardReplicas> {
        self.shards
            .iter()
            .map(|s| ShardReplicas {
                shard_id: s.key(),
                replicas: s.replicas.iter().map(u64::to_string).collect(),
                leader: s.leader.map(|l| l.to_string()),
                load: s.load,
            })
            .collect()
    }

    /// Write bytes/s replicated to node `id`.
    pub fn node_load(&self, id: u64) -> f64 {
        self.shards
            .iter()
            .filter(|s| s.replicas.contains(&id))
            .map(|s| s.load)
            .sum()
    }

    /// The node-count policy's nodes: the members that are pods of a StatefulSet of
    /// `statefulset_replicas` (ids 1..=replicas), with their ordinals and capacities.
    pub fn node_loads(&self, statefulset_replicas: u32, topology: &Topology) -> Vec<NodeLoad> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let ordinal = super::ordinal(n.id).filter(|o| *o < statefulset_replicas)?;
                Some(NodeLoad {
                    node_id: n.id.to_string(),
                    ordinal,
                    replicas: n.replicas as usize,
                    load: self.node_load(n.id),
                    capacity: topology.capacity(n.id),
                })
            })
            .collect()
    }
}

/// Per-node replica counts from the shards (what DescribeCluster's `replicas` shows once no
/// move is under way).
pub fn replica_counts(shards: &[ShardState]) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for s in shards {
        for r in &s.replicas {
            *out.entry(*r).or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::cluster::topology::NodeTopology;
    use crate::cluster::topology::ZONE_LABEL;
    use crate::cluster::topology::tests::k8s_node;
    use crate::cluster::topology::tests::pod;
    use crate::observed::ObservedShard;
    use crate::policy::placement;
    use crate::policy::placement::PlacementConfig;

    pub(crate) fn cluster_node(id: u64, replicas: u32, moving: u32, draining: bool) -> pb::ClusterNode {
        pb::ClusterNode {
            node_id: id,
            address: format!("127.0.0.1:{}", 4000 + id),
            voter: true,
            draining,
            replicas,
            moving,
        }
    }

    pub(crate) fn stream(name: &str, owner: Option<&str>, shards: &[(&str, &[u64], bool)]) -> ObservedStream {
        ObservedStream {
            name: name.into(),
            tags: owner
                .map(|o| BTreeMap::from([(OWNER_TAG.to_string(), o.to_string())]))
                .unwrap_or_default(),
            shards: shards
                .iter()
                .map(|(id, replicas, closed)| ObservedShard {
                    shard_id: (*id).into(),
                    replicas: replicas.to_vec(),
                    leader: replicas.first().copied(),
                    closed: *closed,
                    ..ObservedShard::default()
                })
                .collect(),
            ..ObservedStream::default()
        }
    }

    #[test]
    fn describe_results_become_policy_inputs() {
        let nodes = [
            cluster_node(2, 2, 0, false),
            cluster_node(1, 2, 0, false),
            cluster_node(3, 0, 0, true),
        ];
        let streams = [
            stream(
                "orders",
                Some("shop/orders"),
                &[
                    ("shardId-000000000000", &[1, 2], false),
                    ("shardId-000000000001", &[2, 1], true),
                ],
            ),
            stream("raw", None, &[]),
        ];
        let view = ClusterView::new(&nodes, &streams, |s, sh| {
            (s == "orders" && sh.ends_with('0') || sh.ends_with('1')).then_some(1000.0)
        });
        assert_eq!(view.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(view.shards.len(), 2);
        assert_eq!(view.shards[0].owner, Some(("shop".into(), "orders".into())));
        assert_eq!(view.shards[0].load, 1000.0);
        assert_eq!(view.shards[1].load, 0.0, "closed shards carry no load");

        let pn = view.placement_nodes(&Topology::uniform(5000.0));
        assert_eq!(pn[2].node_id, "3");
        assert!(pn[2].draining);
        assert_eq!(pn[0].capacity, 5000.0);

        let ps = view.placement_shards();
        assert_eq!(ps[0].shard_id, "orders/shardId-000000000000");
        assert_eq!(ps[0].replicas, ["1", "2"]);
        assert_eq!(ps[0].leader.as_deref(), Some("1"));
        assert_eq!(
            view.shard(&ps[1].shard_id).map(|s| s.shard_id.as_str()),
            Some("shardId-000000000001")
        );
        assert_eq!(view.node_load(1), 1000.0);
        assert_eq!(replica_counts(&view.shards), BTreeMap::from([(1, 2), (2, 2)]));
    }

    #[test]
    fn node_loads_cover_the_statefulset_pods_only() {
        let nodes = [
            cluster_node(1, 4, 0, false),
            cluster_node(2, 4, 0, false),
            cluster_node(3, 4, 0, false),
            cluster_node(4, 0, 0, false),
        ];
        let view = ClusterView::new(&nodes, &[], |_, _| None);
        let mut topology = Topology::uniform(100.0);
        topology.nodes.insert(
            2,
            NodeTopology {
                capacity: Some(40.0),
                ..NodeTopology::default()
            },
        );
        let loads = view.node_loads(3, &topology);
        assert_eq!(
            loads
                .iter()
                .map(|n| (n.node_id.as_str(), n.ordinal))
                .collect::<Vec<_>>(),
            [("1", 0), ("2", 1), ("3", 2)]
        );
        assert_eq!(loads[0].replicas, 4);
        assert_eq!(
            loads.iter().map(|n| n.capacity).collect::<Vec<_>>(),
            [100.0, 40.0, 100.0]
        );
    }

    #[test]
    fn moves_under_way_count_each_move_once() {
        let nodes = [
            cluster_node(1, 3, 1, false),
            cluster_node(2, 3, 0, false),
            cluster_node(4, 1, 1, false),
        ];
        let view = ClusterView::new(&nodes, &[], |_, _| None);
        assert_eq!(view.moves_under_way(), 1);
        assert_eq!(ClusterView::default().moves_under_way(), 0);
    }

    /// The zones read from pods and Kubernetes Nodes reach the placement policy: the shards the
    /// nodes placed without knowing zones end up with their replicas in three distinct zones.
    #[test]
    fn zones_from_the_pods_nodes_make_placement_spread_replicas() {
        let members: Vec<_> = (1..=4).map(|id| cluster_node(id, 3, 0, false)).collect();
        // What the nodes' own placement does with 4 shards on 4 nodes (least loaded first).
        let layout: [&[u64]; 4] = [&[1, 2, 3], &[4, 1, 2], &[3, 4, 1], &[2, 3, 4]];
        let ids = [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003",
        ];
        let shards: Vec<_> = ids.iter().zip(layout).map(|(id, r)| (*id, r, false)).collect();
        let view = ClusterView::new(&members, &[stream("s", None, &shards)], |_, _| None);
        let pods: Vec<_> = (0..4)
            .map(|o| pod(&format!("runnel-node-{o}"), Some(&format!("k{o}"))))
            .collect();
        let nodes = [
            k8s_node("k0", &[(ZONE_LABEL, "a")], None),
            k8s_node("k1", &[(ZONE_LABEL, "a")], None),
            k8s_node("k2", &[(ZONE_LABEL, "b")], None),
            k8s_node("k3", &[(ZONE_LABEL, "c")], Some("1Gi")),
        ];
        let topology = Topology::map("runnel-node", &[1, 2, 3, 4], &pods, &nodes, 1000.0);
        let pn = view.placement_nodes(&topology);
        assert_eq!(
            pn.iter()
                .map(|n| (n.zone.as_deref(), n.capacity))
                .collect::<Vec<_>>(),
            [
                (Some("a"), 1000.0),
                (Some("a"), 1000.0),
                (Some("b"), 1000.0),
                (Some("c"), 1024.0 * 1024.0 * 1024.0)
            ]
        );
        let zone_of = |r: &str| pn.iter().find(|n| n.node_id == r).and_then(|n| n.zone.clone());
        let mut state = view.placement_shards();
        let spread = |state: &[ShardReplicas]| {
            state.iter().all(|s| {
                s.replicas
                    .iter()
                    .map(|r| zone_of(r))
                    .collect::<BTreeSet<_>>()
                    .len()
                    == 3
            })
        };
        assert!(!spread(&state), "the nodes' layout ignores zones");
        let cfg = PlacementConfig::default();
        for _ in 0..20 {
            let actions = placement::plan(&cfg, &pn, &state);
            if actions.is_empty() {
                break;
            }
            state = placement::apply(&state, &actions);
        }
        assert!(
            placement::plan(&cfg, &pn, &state).is_empty(),
            "converged: {state:?}"
        );
        assert!(spread(&state), "{state:?}");
        for s in &state {
            assert_eq!(s.replicas.len(), 3, "{s:?}");
        }
    }
}
