//! From placement actions to admin calls (pure). Only `MoveReplica` has an RPC; what cannot or
//! need not be done is reported as skipped with a reason.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use super::view::ClusterView;
use super::view::split_shard_key;
use crate::policy::placement::PlacementAction;

/// One `Admin.MoveReplica` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaMove {
    pub stream: String,
    pub shard_id: String,
    pub from: u64,
    pub to: u64,
}

/// Why a placement action is not carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// AddReplica / RemoveReplica: no admin RPC changes a shard's replica count (the node's
    /// `--replication-factor` decides it when the shard is created). Also what placement asks
    /// when the operator's `--replication-factor` differs from the nodes'.
    NoReplicaCountRpc,
    /// TransferLeader: the nodes hand each shard's leadership to its preferred leader (the
    /// first replica) themselves.
    NodesBalanceLeaders,
    /// A move off a draining node: `DrainNode` already planned it and the node carries it out.
    DrainedByNode,
    /// The shard's previous move is still under way.
    ShardBusy,
    /// As many moves as allowed are under way.
    InFlightLimit,
    /// The action names a node id or shard the admin API does not know.
    Unknown,
}

impl SkipReason {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoReplicaCountRpc => "no_replica_count_rpc",
            SkipReason::NodesBalanceLeaders => "nodes_balance_leaders",
            SkipReason::DrainedByNode => "drained_by_node",
            SkipReason::ShardBusy => "shard_busy",
            SkipReason::InFlightLimit => "in_flight_limit",
            SkipReason::Unknown => "unknown",
        }
    }
}

/// What the reconciler does with one placement action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Move(ReplicaMove),
    Skip {
        action: PlacementAction,
        reason: SkipReason,
    },
}

/// Turns a plan into steps: at most `max_in_flight - in_flight` moves, none for a shard in
/// `busy` and at most one per shard.
pub fn steps(
    actions: &[PlacementAction],
    view: &ClusterView,
    busy: &BTreeSet<String>,
    in_flight: usize,
    max_in_flight: usize,
) -> Vec<Step> {
    let mut budget = max_in_flight.saturating_sub(in_flight);
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    let skip = |action: &PlacementAction, reason| Step::Skip {
        action: action.clone(),
        reason,
    };
    let mut out = Vec::with_capacity(actions.len());
    for action in actions {
        let step = match action {
            PlacementAction::AddReplica { .. } | PlacementAction::RemoveReplica { .. } => {
                skip(action, SkipReason::NoReplicaCountRpc)
            }
            PlacementAction::TransferLeader { .. } => skip(action, SkipReason::NodesBalanceLeaders),
            PlacementAction::MoveReplica { shard_id, from, to } => {
                match (split_shard_key(shard_id), from.parse::<u64>(), to.parse::<u64>()) {
                    (Some((stream, shard)), Ok(from), Ok(to))
                        if view.shard(shard_id).is_some() && view.node(to).is_some() =>
                    {
                        if view.node(from).is_some_and(|n| n.draining) {
                            skip(action, SkipReason::DrainedByNode)
                        } else if busy.contains(shard_id) || touched.contains(shard_id.as_str()) {
                            skip(action, SkipReason::ShardBusy)
                        } else if budget == 0 {
                            skip(action, SkipReason::InFlightLimit)
                        } else {
                            budget -= 1;
                            touched.insert(shard_id);
                            Step::Move(ReplicaMove {
                                stream: stream.to_string(),
                                shard_id: shard.to_string(),
                                from,
                                to,
                            })
                        }
                    }
                    _ => skip(action, SkipReason::Unknown),
                }
            }
        };
        out.push(step);
    }
    out
}

/// The moves this operator started and has not seen finish.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MovesInFlight {
    moves: BTreeMap<String, ReplicaMove>,
}

impl MovesInFlight {
    pub fn started(&mut self, m: ReplicaMove) {
        self.moves
            .insert(super::view::shard_key(&m.stream, &m.shard_id), m);
    }

    /// Forgets the moves that are done (the shard's replicas name `to` and not `from`), whose
    /// shard is gone, and all of them when the cluster reports no move under way (one the
    /// leader gave up on must not block its shard forever). Returns the finished moves.
    pub fn update(&mut self, view: &ClusterView) -> Vec<ReplicaMove> {
        let nothing_moving = view.moves_under_way() == 0;
        let mut finished = Vec::new();
        self.moves.retain(|key, m| {
            let done = view
                .shard(key)
                .is_none_or(|s| s.replicas.contains(&m.to) && !s.replicas.contains(&m.from));
            if done {
                finished.push(m.clone());
            }
            !done && !nothing_moving
        });
        finished
    }

    /// Keys of the shards with a move under way.
    pub fn busy(&self) -> BTreeSet<String> {
        self.moves.keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.moves.len()
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::cluster_node;
    use super::super::view::tests::stream;
    use super::*;

    const S0: &str = "orders/shardId-000000000000";
    const S1: &str = "orders/shardId-000000000001";

    fn view(moving: u32) -> ClusterView {
        let nodes = [
            cluster_node(1, 2, moving, false),
            cluster_node(2, 2, 0, false),
            cluster_node(3, 2, 0, true),
            cluster_node(4, 0, moving, false),
        ];
        let streams = [stream(
            "orders",
            None,
            &[
                ("shardId-000000000000", &[1, 2, 3], false),
                ("shardId-000000000001", &[3, 2, 1], false),
            ],
        )];
        ClusterView::new(&nodes, &streams, |_, _| None)
    }

    fn mv(shard: &str, from: u64, to: u64) -> PlacementAction {
        PlacementAction::MoveReplica {
            shard_id: shard.into(),
            from: from.to_string(),
            to: to.to_string(),
        }
    }

    fn reasons(steps: &[Step]) -> Vec<Option<SkipReason>> {
        steps
            .iter()
            .map(|s| match s {
                Step::Move(_) => None,
                Step::Skip { reason, .. } => Some(*reason),
            })
            .collect()
    }

    #[test]
    fn only_moves_become_calls() {
        let actions = [
            PlacementAction::AddReplica {
                shard_id: S0.into(),
                node_id: "4".into(),
            },
            PlacementAction::RemoveReplica {
                shard_id: S0.into(),
                node_id: "9".into(),
            },
            PlacementAction::TransferLeader {
                shard_id: S0.into(),
                from: "1".into(),
                to: "2".into(),
            },
            mv(S0, 1, 4),
        ];
        let out = steps(&actions, &view(0), &BTreeSet::new(), 0, 2);
        assert_eq!(
            reasons(&out),
            [
                Some(SkipReason::NoReplicaCountRpc),
                Some(SkipReason::NoReplicaCountRpc),
                Some(SkipReason::NodesBalanceLeaders),
                None
            ]
        );
        assert_eq!(
            out[3],
            Step::Move(ReplicaMove {
                stream: "orders".into(),
                shard_id: "shardId-000000000000".into(),
                from: 1,
                to: 4
            })
        );
    }

    #[test]
    fn moves_are_bounded_and_one_per_shard() {
        let actions = [mv(S0, 1, 4), mv(S0, 2, 4), mv(S1, 2, 4)];
        let out = steps(&actions, &view(0), &BTreeSet::new(), 0, 1);
        assert_eq!(
            reasons(&out),
            [None, Some(SkipReason::ShardBusy), Some(SkipReason::InFlightLimit)]
        );
        let out = steps(&actions, &view(0), &BTreeSet::new(), 0, 5);
        assert_eq!(reasons(&out), [None, Some(SkipReason::ShardBusy), None]);
        let out = steps(&actions, &view(0), &BTreeSet::new(), 5, 5);
        assert!(
            reasons(&out)
                .iter()
                .all(|r| matches!(r, Some(SkipReason::ShardBusy | SkipReason::InFlightLimit)))
        );
    }

    #[test]
    fn busy_shards_draining_sources_and_unknown_nodes_are_skipped() {
        let busy = BTreeSet::from([S0.to_string()]);
        let actions = [
            mv(S0, 1, 4),
            mv(S1, 3, 4),
            mv(S1, 1, 9),
            mv("orders/shardId-000000000007", 1, 4),
            mv(S1, 1, 4),
        ];
        let out = steps(&actions, &view(0), &busy, 0, 5);
        assert_eq!(
            reasons(&out),
            [
                Some(SkipReason::ShardBusy),
                Some(SkipReason::DrainedByNode),
                Some(SkipReason::Unknown),
                Some(SkipReason::Unknown),
                None
            ]
        );
    }

    #[test]
    fn moves_in_flight_end_when_the_replicas_show_them() {
        let mut in_flight = MovesInFlight::default();
        in_flight.started(ReplicaMove {
            stream: "orders".into(),
            shard_id: "shardId-000000000000".into(),
            from: 1,
            to: 4,
        });
        // Under way: the cluster reports a move, the replicas have not changed yet.
        assert!(in_flight.update(&view(1)).is_empty());
        assert_eq!(in_flight.busy(), BTreeSet::from([S0.to_string()]));
        // Done: the replicas name 4 instead of 1.
        let mut done = view(0);
        done.shards[0].replicas = vec![4, 2, 3];
        assert_eq!(in_flight.update(&done).len(), 1);
        assert!(in_flight.is_empty());
        // Given up: nothing moves in the cluster any more.
        in_flight.started(ReplicaMove {
            stream: "orders".into(),
            shard_id: "shardId-000000000001".into(),
            from: 2,
            to: 4,
        });
        assert!(in_flight.update(&view(0)).is_empty());
        assert_eq!(in_flight.len(), 0);
    }
}
