//! Node count: grow the node StatefulSet when replicas per node or load per node exceed their
//! bounds, shrink it (after draining the highest ordinal) when the rest can carry the load.

use super::Seconds;

/// Bounds for the node StatefulSet.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeScalingConfig {
    pub min_nodes: usize,
    pub max_nodes: usize,
    /// Most shard replicas one node should host.
    pub max_replicas_per_node: usize,
    /// Grow when the average node load exceeds this fraction of node capacity.
    pub high_watermark: f64,
    /// Shrink only when the remaining nodes would stay under this fraction.
    pub low_watermark: f64,
    pub scale_up_cooldown: Seconds,
    pub scale_down_cooldown: Seconds,
}

impl Default for NodeScalingConfig {
    fn default() -> Self {
        NodeScalingConfig {
            min_nodes: 3,
            max_nodes: 32,
            max_replicas_per_node: 300,
            high_watermark: 0.75,
            low_watermark: 0.4,
            scale_up_cooldown: 300,
            scale_down_cooldown: 1800,
        }
    }
}

/// One node (StatefulSet pod) and what it carries.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeLoad {
    pub node_id: String,
    /// StatefulSet ordinal; the StatefulSet removes the highest ordinal first.
    pub ordinal: u32,
    pub replicas: usize,
    /// Bytes per second written to this node (leader and follower traffic).
    pub load: f64,
    /// Bytes per second the node can sustain.
    pub capacity: f64,
}

/// What to do with the node StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAction {
    None,
    /// Set the StatefulSet's replicas.
    ScaleNodes {
        replicas: usize,
    },
    /// Move every replica off this node (placement does it) before the StatefulSet shrinks.
    DrainNode {
        node_id: String,
    },
}

/// Decides the node count. `replication_factor` is a floor: each shard needs that many nodes.
pub fn decide_nodes(
    cfg: &NodeScalingConfig,
    nodes: &[NodeLoad],
    replication_factor: usize,
    last_action_at: Option<Seconds>,
    now: Seconds,
) -> NodeAction {
    let current = nodes.len();
    let since = last_action_at.map_or(Seconds::MAX, |t| now.saturating_sub(t));
    let replicas: usize = nodes.iter().map(|n| n.replicas).sum();
    let load: f64 = nodes.iter().map(|n| n.load).sum();
    let capacity_per_node = if current == 0 {
        0.0
    } else {
        nodes.iter().map(|n| n.capacity).sum::<f64>() / current as f64
    };
    let floor = cfg.min_nodes.max(replication_factor).min(cfg.max_nodes);
    let for_replicas = replicas.div_ceil(cfg.max_replicas_per_node.max(1));
    let for_load = if capacity_per_node > 0.0 {
        (load / (capacity_per_node * cfg.high_watermark)).ceil() as usize
    } else {
        0
    };
    let needed = for_replicas.max(for_load).max(floor).min(cfg.max_nodes);
    if needed > current {
        return if since >= cfg.scale_up_cooldown {
            NodeAction::ScaleNodes { replicas: needed }
        } else {
            NodeAction::None
        };
    }
    if current <= floor || since < cfg.scale_down_cooldown {
        return NodeAction::None;
    }
    let fewer = current - 1;
    let fits_load = capacity_per_node > 0.0 && load / (capacity_per_node * fewer as f64) < cfg.low_watermark;
    let fits_replicas = replicas <= fewer * cfg.max_replicas_per_node * 4 / 5;
    if !(fits_load && fits_replicas) {
        return NodeAction::None;
    }
    match nodes.iter().max_by_key(|n| n.ordinal) {
        Some(last) if last.replicas > 0 => NodeAction::DrainNode {
            node_id: last.node_id.clone(),
        },
        Some(_) => NodeAction::ScaleNodes { replicas: fewer },
        None => NodeAction::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(loads: &[(usize, f64)]) -> Vec<NodeLoad> {
        loads
            .iter()
            .enumerate()
            .map(|(i, &(replicas, load))| NodeLoad {
                node_id: format!("runnel-node-{i}"),
                ordinal: i as u32,
                replicas,
                load,
                capacity: 100.0,
            })
            .collect()
    }

    #[test]
    fn grows_on_load_and_on_replica_count() {
        let cfg = NodeScalingConfig::default();
        assert_eq!(
            decide_nodes(&cfg, &nodes(&[(10, 90.0); 3]), 3, None, 0),
            NodeAction::ScaleNodes { replicas: 4 }
        );
        assert_eq!(
            decide_nodes(&cfg, &nodes(&[(400, 10.0); 3]), 3, None, 0),
            NodeAction::ScaleNodes { replicas: 4 }
        );
        assert_eq!(
            decide_nodes(&cfg, &nodes(&[(10, 50.0); 3]), 3, None, 0),
            NodeAction::None
        );
    }

    #[test]
    fn never_below_replication_factor_or_min() {
        let cfg = NodeScalingConfig {
            min_nodes: 1,
            ..Default::default()
        };
        assert_eq!(
            decide_nodes(&cfg, &nodes(&[(1, 0.0); 3]), 3, None, 10_000),
            NodeAction::None
        );
    }

    #[test]
    fn drains_highest_ordinal_before_shrinking() {
        let cfg = NodeScalingConfig::default();
        let mut n = nodes(&[(5, 5.0); 5]);
        assert_eq!(
            decide_nodes(&cfg, &n, 3, None, 10_000),
            NodeAction::DrainNode {
                node_id: "runnel-node-4".into()
            }
        );
        n[4].replicas = 0;
        n[4].load = 0.0;
        assert_eq!(
            decide_nodes(&cfg, &n, 3, None, 10_000),
            NodeAction::ScaleNodes { replicas: 4 }
        );
        assert_eq!(
            decide_nodes(&cfg, &n, 3, Some(9_000), 10_000),
            NodeAction::None,
            "cooldown"
        );
    }
}
