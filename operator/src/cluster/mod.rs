//! The cluster reconciler: replica placement and the node StatefulSet's size, wired to the
//! nodes' admin API.
//!
//! - [`view`] (pure) turns DescribeCluster, every stream's DescribeStream and the measured
//!   per-shard write rates into the inputs of the placement and node-count policies.
//! - [`topology`] (pure) maps each node to its zone and capacity through its StatefulSet pod's
//!   Kubernetes Node (label `topology.kubernetes.io/zone`, annotation
//!   `runnel.dev/capacity-bytes-per-sec`).
//! - [`moves`] (pure) turns placement actions into admin calls: only `MoveReplica` has an RPC;
//!   the rest are reported as skipped with a reason. It bounds the moves in flight and never
//!   starts a second move of a shard whose move is still under way.
//! - [`node_scaling`] (pure) decides the next step of growing or shrinking the StatefulSet:
//!   scale up; or drain the highest ordinal, wait until it holds nothing, remove it from the
//!   cluster, then scale down.
//! - [`reconciler`] gathers the inputs every interval, makes the calls, logs, counts and emits
//!   Events. It runs only while this operator replica leads.
//!
//! **Node ids and pod ordinals**: the pod with ordinal `i` of the node StatefulSet runs as node
//! id `i + 1` (the chart passes `--node-id $((ordinal + 1))`; ids start at 1). [`node_id`] and
//! [`ordinal`] are the one place that mapping lives.

pub mod moves;
pub mod node_scaling;
pub mod reconciler;
pub mod topology;
pub mod view;

/// The node id of the StatefulSet pod with this ordinal.
pub fn node_id(ordinal: u32) -> u64 {
    u64::from(ordinal) + 1
}

/// The StatefulSet ordinal of this node id (None for id 0 or ids beyond u32).
pub fn ordinal(node_id: u64) -> Option<u32> {
    node_id.checked_sub(1).and_then(|o| u32::try_from(o).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_ordinals_plus_one() {
        assert_eq!(node_id(0), 1);
        assert_eq!(node_id(3), 4);
        assert_eq!(ordinal(1), Some(0));
        assert_eq!(ordinal(4), Some(3));
        assert_eq!(ordinal(0), None);
        for o in [0, 1, 7, 41] {
            assert_eq!(ordinal(node_id(o)), Some(o));
        }
    }
}
