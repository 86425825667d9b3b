//! The next step of sizing the node StatefulSet (pure): `decide_nodes` says whether to grow or
//! shrink; this module sequences a shrink safely across rounds and operator restarts.
//!
//! Shrinking takes the highest ordinal `R - 1` (node id `R`) out in four steps, each taken in a
//! later round once the previous one shows: `DrainNode` → (wait until DescribeCluster shows it
//! holds and receives nothing) → annotate the StatefulSet with [`REMOVING_ANNOTATION`] →
//! `RemoveNode` → `spec.replicas = R - 1` (dropping the annotation). The draining flag lives in
//! the catalog and the annotation on the StatefulSet, so a new operator leader picks the
//! sequence up where the last one stopped. The annotation also tells "removed, not shrunk yet"
//! apart from "scaled up, not joined yet" (both show a pod without a cluster member).

use super::node_id;
use super::topology::Topology;
use super::view::ClusterView;
use crate::policy::Seconds;
use crate::policy::nodes::NodeAction;
use crate::policy::nodes::NodeScalingConfig;
use crate::policy::nodes::decide_nodes;

/// Set on the node StatefulSet while its highest ordinal is being removed from the cluster.
pub const REMOVING_ANNOTATION: &str = "runnel.dev/removing-node";

/// What the reconciler reads for one decision.
#[derive(Clone, Debug)]
pub struct NodeScalingInput<'a> {
    pub cfg: &'a NodeScalingConfig,
    pub view: &'a ClusterView,
    /// The StatefulSet's `spec.replicas`.
    pub statefulset_replicas: u32,
    /// The node id in [`REMOVING_ANNOTATION`], if set.
    pub removing: Option<u64>,
    /// Bytes/s each node sustains.
    pub topology: &'a Topology,
    pub replication_factor: usize,
    /// When this operator last scaled or drained (for the cooldowns).
    pub last_action_at: Option<Seconds>,
    pub now: Seconds,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeStep {
    /// Nothing to do now.
    Wait { reason: String },
    /// Patch `spec.replicas` up.
    Grow { replicas: u32 },
    /// `DrainNode` of the highest ordinal.
    Drain { node_id: u64 },
    /// Annotate the StatefulSet: this node is being removed.
    MarkRemoving { node_id: u64 },
    /// `RemoveNode`.
    Remove { node_id: u64 },
    /// Patch `spec.replicas` to `replicas` and drop the annotation.
    Shrink { replicas: u32 },
}

fn wait(reason: impl Into<String>) -> NodeStep {
    NodeStep::Wait {
        reason: reason.into(),
    }
}

/// Decides the next step.
pub fn next_step(input: &NodeScalingInput<'_>) -> NodeStep {
    let r = input.statefulset_replicas;
    let view = input.view;
    let highest = node_id(r.saturating_sub(1));
    let is_member = |id: u64| view.node(id).is_some();

    // A removal under way (or finished but not yet recorded in spec.replicas).
    if let Some(id) = input.removing {
        return if r == 0 || id != highest {
            // Stale: the StatefulSet already shrank (or was changed by hand). Drop the mark.
            NodeStep::Shrink { replicas: r }
        } else if is_member(id) {
            NodeStep::Remove { node_id: id }
        } else {
            NodeStep::Shrink { replicas: r - 1 }
        };
    }
    if r == 0 {
        return wait("the node StatefulSet has no replicas");
    }
    // A drain of the highest ordinal (started by this operator, or by hand) runs to its end.
    if let Some(n) = view.node(highest).filter(|n| n.draining) {
        return if n.replicas == 0 && n.moving == 0 {
            NodeStep::MarkRemoving { node_id: highest }
        } else {
            wait(format!(
                "node {highest} is draining: {} replicas left, {} moving",
                n.replicas, n.moving
            ))
        };
    }
    if let Some(n) = view.nodes.iter().find(|n| n.draining) {
        return wait(format!(
            "node {} is draining and is not the highest ordinal; not scaling meanwhile",
            n.id
        ));
    }
    let joined = (0..r).filter(|o| is_member(node_id(*o))).count();
    if joined < r as usize {
        return wait(format!(
            "{joined} of {r} node pods are cluster members; waiting for the others to join"
        ));
    }
    let loads = view.node_loads(r, input.topology);
    match decide_nodes(
        input.cfg,
        &loads,
        input.replication_factor,
        input.last_action_at,
        input.now,
    ) {
        NodeAction::None => wait("node count within bounds"),
        NodeAction::ScaleNodes { replicas } => {
            let replicas = u32::try_from(replicas).unwrap_or(u32::MAX);
            if replicas > r {
                NodeStep::Grow { replicas }
            } else if replicas < r {
                // The highest ordinal holds nothing: take it out of the cluster first.
                NodeStep::MarkRemoving { node_id: highest }
            } else {
                wait("node count within bounds")
            }
        }
        NodeAction::DrainNode { node_id } => match node_id.parse::<u64>() {
            Ok(id) => NodeStep::Drain { node_id: id },
            Err(_) => wait(format!("policy named an unknown node {node_id:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::cluster_node;
    use super::*;
    use crate::policy::nodes::NodeScalingConfig;

    fn cfg() -> NodeScalingConfig {
        NodeScalingConfig {
            min_nodes: 3,
            max_nodes: 5,
            max_replicas_per_node: 10,
            ..NodeScalingConfig::default()
        }
    }

    fn view(nodes: &[(u64, u32, u32, bool)]) -> ClusterView {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|&(id, replicas, moving, draining)| cluster_node(id, replicas, moving, draining))
            .collect();
        ClusterView::new(&nodes, &[], |_, _| None)
    }

    fn step(view: &ClusterView, replicas: u32, removing: Option<u64>) -> NodeStep {
        next_step(&NodeScalingInput {
            cfg: &cfg(),
            view,
            statefulset_replicas: replicas,
            removing,
            topology: &Topology::uniform(100.0),
            replication_factor: 3,
            last_action_at: None,
            now: 10_000,
        })
    }

    #[test]
    fn grows_when_replicas_per_node_exceed_the_bound() {
        let v = view(&[(1, 12, 0, false), (2, 12, 0, false), (3, 12, 0, false)]);
        assert_eq!(step(&v, 3, None), NodeStep::Grow { replicas: 4 });
        let v = view(&[(1, 5, 0, false), (2, 5, 0, false), (3, 5, 0, false)]);
        assert!(matches!(step(&v, 3, None), NodeStep::Wait { .. }));
    }

    #[test]
    fn waits_for_new_pods_to_join() {
        let v = view(&[(1, 12, 0, false), (2, 12, 0, false), (3, 12, 0, false)]);
        let NodeStep::Wait { reason } = step(&v, 4, None) else {
            panic!("expected a wait");
        };
        assert!(reason.contains("3 of 4"), "{reason}");
    }

    #[test]
    fn shrinks_by_draining_removing_then_scaling() {
        // Idle 4-node cluster: drain node 4 (ordinal 3).
        let v = view(&[
            (1, 3, 0, false),
            (2, 3, 0, false),
            (3, 3, 0, false),
            (4, 3, 0, false),
        ]);
        assert_eq!(step(&v, 4, None), NodeStep::Drain { node_id: 4 });
        // Draining, replicas still there: wait.
        let v = view(&[
            (1, 4, 1, false),
            (2, 3, 0, false),
            (3, 3, 0, false),
            (4, 2, 1, true),
        ]);
        assert!(matches!(step(&v, 4, None), NodeStep::Wait { .. }));
        // Empty: mark, then remove, then shrink.
        let v = view(&[
            (1, 4, 0, false),
            (2, 4, 0, false),
            (3, 4, 0, false),
            (4, 0, 0, true),
        ]);
        assert_eq!(step(&v, 4, None), NodeStep::MarkRemoving { node_id: 4 });
        assert_eq!(step(&v, 4, Some(4)), NodeStep::Remove { node_id: 4 });
        let v = view(&[(1, 4, 0, false), (2, 4, 0, false), (3, 4, 0, false)]);
        assert_eq!(step(&v, 4, Some(4)), NodeStep::Shrink { replicas: 3 });
        // Already shrunk, annotation left behind: drop it.
        assert_eq!(step(&v, 3, Some(4)), NodeStep::Shrink { replicas: 3 });
        // Done: three nodes is the floor.
        assert!(matches!(step(&v, 3, None), NodeStep::Wait { .. }));
    }

    #[test]
    fn an_empty_highest_node_is_removed_without_draining() {
        let v = view(&[
            (1, 4, 0, false),
            (2, 4, 0, false),
            (3, 4, 0, false),
            (4, 0, 0, false),
        ]);
        assert_eq!(step(&v, 4, None), NodeStep::MarkRemoving { node_id: 4 });
    }

    #[test]
    fn another_draining_node_pauses_scaling() {
        let v = view(&[
            (1, 3, 0, false),
            (2, 3, 1, true),
            (3, 3, 0, false),
            (4, 3, 1, false),
        ]);
        assert!(matches!(step(&v, 4, None), NodeStep::Wait { .. }));
    }
}
