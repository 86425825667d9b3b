//! Replica placement: which nodes hold each shard's replicas and which replica leads.
//!
//! One call returns a bounded batch of actions, planned against a working copy so they are
//! consistent with each other; the reconciler applies them and calls again until the plan is
//! empty. In order of priority:
//! 1. drop replicas on nodes that are gone, move replicas off draining nodes;
//! 2. add replicas to under-replicated shards, remove surplus replicas;
//! 3. spread each shard's replicas across zones (and always across distinct nodes);
//! 4. move replicas off hot nodes (load above `hot_node_utilization` of capacity);
//! 5. even out replica counts, then leader counts (`TransferLeader`).

use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// A node that can host replicas.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementNode {
    pub node_id: String,
    /// Zone label (`topology.kubernetes.io/zone`); nodes without one share the empty zone.
    pub zone: Option<String>,
    /// Bytes per second of replicated writes the node can sustain.
    pub capacity: f64,
    /// Being drained before the StatefulSet shrinks: receives nothing, keeps nothing.
    pub draining: bool,
}

/// A shard's current replica set and observed load.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardReplicas {
    pub shard_id: String,
    pub replicas: Vec<String>,
    pub leader: Option<String>,
    /// Write bytes per second; every replica carries it.
    pub load: f64,
}

/// Placement tunables.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementConfig {
    pub replication_factor: usize,
    /// A node above this fraction of its capacity sheds replicas.
    pub hot_node_utilization: f64,
    /// Most actions per call, to pace data movement.
    pub max_actions: usize,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            replication_factor: 3,
            hot_node_utilization: 0.85,
            max_actions: 16,
        }
    }
}

/// A change to a shard's Raft membership or leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlacementAction {
    AddReplica {
        shard_id: String,
        node_id: String,
    },
    RemoveReplica {
        shard_id: String,
        node_id: String,
    },
    /// Add on `to`, catch up, then remove from `from` (a leader moves its leadership first).
    MoveReplica {
        shard_id: String,
        from: String,
        to: String,
    },
    TransferLeader {
        shard_id: String,
        from: String,
        to: String,
    },
}

/// Plans the next batch of placement actions.
pub fn plan(
    cfg: &PlacementConfig,
    nodes: &[PlacementNode],
    shards: &[ShardReplicas],
) -> Vec<PlacementAction> {
    let mut p = Planner::new(cfg, nodes, shards);
    p.drop_missing_and_draining();
    p.fix_replica_counts();
    p.spread_zones();
    p.cool_hot_nodes();
    p.balance_replicas();
    p.balance_leaders();
    p.actions
}

/// Applies actions to a copy of the shards: what the cluster looks like once they are done.
pub fn apply(shards: &[ShardReplicas], actions: &[PlacementAction]) -> Vec<ShardReplicas> {
    let mut out: Vec<ShardReplicas> = shards.to_vec();
    for action in actions {
        let shard_id = match action {
            PlacementAction::AddReplica { shard_id, .. }
            | PlacementAction::RemoveReplica { shard_id, .. }
            | PlacementAction::MoveReplica { shard_id, .. }
            | PlacementAction::TransferLeader { shard_id, .. } => shard_id,
        };
        if let Some(s) = out.iter_mut().find(|s| &s.shard_id == shard_id) {
            apply_one(s, action);
        }
    }
    out
}

fn apply_one(s: &mut ShardReplicas, action: &PlacementAction) {
    match action {
        PlacementAction::AddReplica { node_id, .. } => {
            if !s.replicas.contains(node_id) {
                s.replicas.push(node_id.clone());
            }
        }
        PlacementAction::RemoveReplica { node_id, .. } => {
            s.replicas.retain(|r| r != node_id);
            if s.leader.as_ref() == Some(node_id) {
                s.leader = s.replicas.first().cloned();
            }
        }
        PlacementAction::MoveReplica { from, to, .. } => {
            for r in s.replicas.iter_mut().filter(|r| *r == from) {
                *r = to.clone();
            }
            if s.leader.as_ref() == Some(from) {
                s.leader = Some(to.clone());
            }
        }
        PlacementAction::TransferLeader { to, .. } => s.leader = Some(to.clone()),
    }
}

struct Planner<'a> {
    cfg: &'a PlacementConfig,
    nodes: BTreeMap<&'a str, &'a PlacementNode>,
    shards: Vec<ShardReplicas>,
    actions: Vec<PlacementAction>,
}

impl<'a> Planner<'a> {
    fn new(cfg: &'a PlacementConfig, nodes: &'a [PlacementNode], shards: &[ShardReplicas]) -> Self {
        let mut shards = shards.to_vec();
        shards.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        for s in &mut shards {
            let mut seen = BTreeSet::new();
            s.replicas.retain(|r| seen.insert(r.clone()));
        }
        Planner {
            cfg,
            nodes: nodes.iter().map(|n| (n.node_id.as_str(), n)).collect(),
            shards,
            actions: Vec::new(),
        }
    }

    fn full(&self) -> bool {
        self.actions.len() >= self.cfg.max_actions
    }

    fn push(&mut self, shard: usize, action: PlacementAction) {
        apply_one(&mut self.shards[shard], &action);
        self.actions.push(action);
    }

    fn zone(&self, node: &str) -> &'a str {
        self.nodes.get(node).and_then(|n| n.zone.as_deref()).unwrap_or("")
    }

    fn usable(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|n| !n.draining)
    }

    fn replica_count(&self, node: &str) -> usize {
        self.shards
            .iter()
            .filter(|s| s.replicas.iter().any(|r| r == node))
            .count()
    }

    fn leader_count(&self, node: &str) -> usize {
        self.shards
            .iter()
            .filter(|s| s.leader.as_deref() == Some(node))
            .count()
    }

    fn utilization(&self, node: &str) -> f64 {
        let load: f64 = self
            .shards
            .iter()
            .filter(|s| s.replicas.iter().any(|r| r == node))
            .map(|s| s.load)
            .sum();
        let cap = self.nodes.get(node).map_or(0.0, |n| n.capacity);
        if cap > 0.0 { load / cap } else { f64::INFINITY }
    }

    fn usable_nodes(&self) -> Vec<&'a str> {
        self.nodes
            .values()
            .filter(|n| !n.draining)
            .map(|n| n.node_id.as_str())
            .collect()
    }

    /// The best node to receive a replica of shard `i`, ignoring `except`: not already a
    /// replica, in a zone the shard does not use yet if possible, then least utilised, then
    /// fewest replicas.
    fn best_target(&self, i: usize, except: Option<&str>, extra_load: f64) -> Option<&'a str> {
        let s = &self.shards[i];
        let zones: BTreeSet<&str> = s
            .replicas
            .iter()
            .filter(|r| Some(r.as_str()) != except)
            .map(|r| self.zone(r))
            .collect();
        self.usable_nodes()
            .into_iter()
            .filter(|n| !s.replicas.iter().any(|r| r == n))
            .filter(|n| {
                self.utilization(n) + extra_load / self.nodes.get(n).map_or(1.0, |x| x.capacity) <= 1.0
            })
            .min_by(|a, b| {
                let key = |n: &str| (zones.contains(self.zone(n)), self.replica_count(n));
                key(a)
                    .cmp(&key(b))
                    .then(self.utilization(a).total_cmp(&self.utilization(b)))
                    .then(a.cmp(b))
            })
    }

    fn drop_missing_and_draining(&mut self) {
        for i in 0..self.shards.len() {
            let replicas = self.shards[i].replicas.clone();
            for r in replicas {
                if self.full() {
                    return;
                }
                let shard_id = self.shards[i].shard_id.clone();
                if !self.nodes.contains_key(r.as_str()) {
                    self.push(i, PlacementAction::RemoveReplica { shard_id, node_id: r });
                } else if !self.usable(&r) {
                    let load = self.shards[i].load;
                    match self.best_target(i, Some(&r), load) {
                        Some(to) => self.push(
                            i,
                            PlacementAction::MoveReplica {
                                shard_id,
                                from: r,
                                to: to.to_string(),
                            },
                        ),
                        None => continue,
                    }
                }
            }
        }
    }

    fn fix_replica_counts(&mut self) {
        let rf = self.cfg.replication_factor;
        for i in 0..self.shards.len() {
            while self.shards[i].replicas.len() < rf && !self.full() {
                let Some(to) = self.best_target(i, None, self.shards[i].load) else {
                    break;
                };
                let shard_id = self.shards[i].shard_id.clone();
                self.push(
                    i,
                    PlacementAction::AddReplica {
                        shard_id,
                        node_id: to.to_string(),
                    },
                );
            }
            while self.shards[i].replicas.len() > rf && !self.full() {
                let Some(victim) = self.surplus_replica(i) else {
                    break;
                };
                let shard_id = self.shards[i].shard_id.clone();
                self.push(
                    i,
                    PlacementAction::RemoveReplica {
                        shard_id,
                        node_id: victim,
                    },
                );
            }
        }
    }

    /// The replica to remove: not the leader, in a crowded zone, on the busiest node.
    fn surplus_replica(&self, i: usize) -> Option<String> {
        let s = &self.shards[i];
        let zone_count = |z: &str| s.replicas.iter().filter(|r| self.zone(r) == z).count();
        s.replicas
            .iter()
            .filter(|r| s.leader.as_ref() != Some(*r) || s.replicas.len() == 1)
            .max_by(|a, b| {
                (zone_count(self.zone(a)), self.replica_count(a))
                    .cmp(&(zone_count(self.zone(b)), self.replica_count(b)))
                    .then(self.utilization(a).total_cmp(&self.utilization(b)))
                    .then(b.cmp(a))
            })
            .cloned()
    }

    fn spread_zones(&mut self) {
        let all_zones: BTreeSet<&str> = self.usable_nodes().into_iter().map(|n| self.zone(n)).collect();
        for i in 0..self.shards.len() {
            if self.full() {
                return;
            }
            let s = &self.shards[i];
            let used: BTreeSet<&str> = s.replicas.iter().map(|r| self.zone(r)).collect();
            let wanted = all_zones.len().min(s.replicas.len());
            if used.len() >= wanted {
                continue;
            }
            // A replica sharing its zone with another; prefer a follower.
            let crowded = s
                .replicas
                .iter()
                .filter(|r| s.replicas.iter().filter(|o| self.zone(o) == self.zone(r)).count() > 1)
                .max_by_key(|r| (s.leader.as_ref() != Some(*r), self.replica_count(r)))
                .cloned();
            let Some(from) = crowded else { continue };
            let load = s.load;
            if let Some(to) = self.best_target(i, Some(&from), load)
                && !used.contains(self.zone(to))
            {
                let shard_id = self.shards[i].shard_id.clone();
                self.push(
                    i,
                    PlacementAction::MoveReplica {
                        shard_id,
                        from,
                        to: to.to_string(),
                    },
                );
            }
        }
    }

    /// Whether moving shard `i`'s replica from `from` to `to` keeps its zone spread.
    fn keeps_spread(&self, i: usize, from: &str, to: &str) -> bool {
        let s = &self.shards[i];
        if s.replicas.iter().any(|r| r == to) {
            return false;
        }
        let others: BTreeSet<&str> = s
            .replicas
            .iter()
            .filter(|r| *r != from)
            .map(|r| self.zone(r))
            .collect();
        self.zone(to) == self.zone(from) || !others.contains(self.zone(to))
    }

    fn cool_hot_nodes(&mut self) {
        let mut guard = 0;
        while !self.full() && guard < self.shards.len() * 2 {
            guard += 1;
            let nodes = self.usable_nodes();
            let Some(hot) = nodes
                .iter()
                .copied()
                .filter(|n| self.utilization(n) > self.cfg.hot_node_utilization)
                .max_by(|a, b| self.utilization(a).total_cmp(&self.utilization(b)))
            else {
                return;
            };
            // Move the largest shard replica that fits on a cooler node and lowers the peak.
            let mut best: Option<(usize, &str, f64)> = None;
            for (i, s) in self.shards.iter().enumerate() {
                if !s.replicas.iter().any(|r| r == hot) || s.load <= 0.0 {
                    continue;
                }
                for to in &nodes {
                    let cap = self.nodes.get(to).map_or(0.0, |n| n.capacity);
                    let after = self.utilization(to) + if cap > 0.0 { s.load / cap } else { f64::INFINITY };
                    if *to == hot || !self.keeps_spread(i, hot, to) || after >= self.utilization(hot) {
                        continue;
                    }
                    if best.as_ref().is_none_or(|(bi, _, ba)| {
                        s.load > self.shards[*bi].load || (s.load == self.shards[*bi].load && after < *ba)
                    }) {
                        best = Some((i, to, after));
                    }
                }
            }
            let Some((i, to, _)) = best else { return };
            let shard_id = self.shards[i].shard_id.clone();
            self.push(
                i,
                PlacementAction::MoveReplica {
                    shard_id,
                    from: hot.to_string(),
                    to: to.to_string(),
                },
            );
        }
    }

    fn balance_replicas(&mut self) {
        let mut guard = 0;
        while !self.full() && guard < self.shards.len() * 4 {
            guard += 1;
            let Some((i, from, to)) = self.balancing_move() else {
                return;
            };
            let shard_id = self.shards[i].shard_id.clone();
            self.push(
                i,
                PlacementAction::MoveReplica {
                    shard_id,
                    from: from.to_string(),
                    to: to.to_string(),
                },
            );
        }
    }

    /// A replica move from a node with at least two more replicas than the target that keeps
    /// zone spread and does not make the target hot; fullest source and emptiest target first.
    fn balancing_move(&self) -> Option<(usize, &'a str, &'a str)> {
        let mut nodes = self.usable_nodes();
        nodes.sort_by_key(|n| (self.replica_count(n), *n));
        for to in &nodes {
            for from in nodes.iter().rev() {
                if self.replica_count(from) <= self.replica_count(to) + 1 {
                    break;
                }
                let cap = self.nodes.get(to).map_or(0.0, |n| n.capacity);
                let candidate = (0..self.shards.len())
                    .filter(|&i| self.shards[i].replicas.iter().any(|r| r == from))
                    .filter(|&i| self.keeps_spread(i, from, to))
                    .filter(|&i| {
                        cap > 0.0
                            && self.utilization(to) + self.shards[i].load / cap
                                <= self.cfg.hot_node_utilization
                    })
                    .min_by_key(|&i| (self.shards[i].leader.as_deref() == Some(*from), i));
                if let Some(i) = candidate {
                    return Some((i, from, to));
                }
            }
        }
        None
    }

    fn balance_leaders(&mut self) {
        // Leaders on draining nodes go first.
        for i in 0..self.shards.len() {
            if self.full() {
                return;
            }
            let s = &self.shards[i];
            let Some(leader) = s.leader.clone() else { continue };
            if self.usable(&leader) {
                continue;
            }
            let to = s
                .replicas
                .iter()
                .filter(|r| self.usable(r))
                .min_by_key(|r| (self.leader_count(r), (*r).clone()))
                .cloned();
            if let Some(to) = to {
                let shard_id = s.shard_id.clone();
                self.push(
                    i,
                    PlacementAction::TransferLeader {
                        shard_id,
                        from: leader,
                        to,
                    },
                );
            }
        }
        let mut guard = 0;
        while !self.full() && guard < self.shards.len() * 2 {
            guard += 1;
            let nodes = self.usable_nodes();
            let Some(most) = nodes
                .iter()
                .copied()
                .max_by_key(|n| (self.leader_count(n), std::cmp::Reverse(*n)))
            else {
                return;
            };
            let most_count = self.leader_count(most);
            let mut best: Option<(usize, String)> = None;
            for (i, s) in self.shards.iter().enumerate() {
                if s.leader.as_deref() != Some(most) {
                    continue;
                }
                let target = s
                    .replicas
                    .iter()
                    .filter(|r| self.usable(r) && self.leader_count(r) + 1 < most_count)
                    .min_by_key(|r| (self.leader_count(r), (*r).clone()));
                if let Some(t) = target
                    && best
                        .as_ref()
                        .is_none_or(|(_, b)| self.leader_count(t) < self.leader_count(b))
                {
                    best = Some((i, t.clone()));
                }
            }
            let Some((i, to)) = best else { return };
            let shard_id = self.shards[i].shard_id.clone();
            self.push(
                i,
                PlacementAction::TransferLeader {
                    shard_id,
                    from: most.to_string(),
                    to,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, zone: &str) -> PlacementNode {
        PlacementNode {
            node_id: id.into(),
            zone: Some(zone.into()),
            capacity: 100.0,
            draining: false,
        }
    }

    fn shard(id: &str, replicas: &[&str], leader: Option<&str>, load: f64) -> ShardReplicas {
        ShardReplicas {
            shard_id: id.into(),
            replicas: replicas.iter().map(|s| s.to_string()).collect(),
            leader: leader.map(String::from),
            load,
        }
    }

    /// Plans and applies until the plan is empty; returns the final state and rounds taken.
    fn converge(
        cfg: &PlacementConfig,
        nodes: &[PlacementNode],
        shards: &[ShardReplicas],
    ) -> (Vec<ShardReplicas>, usize) {
        let mut state = shards.to_vec();
        for round in 0..50 {
            let actions = plan(cfg, nodes, &state);
            if actions.is_empty() {
                return (state, round);
            }
            state = apply(&state, &actions);
        }
        panic!("placement did not converge in 50 rounds");
    }

    fn count(state: &[ShardReplicas], node: &str, leaders: bool) -> usize {
        state
            .iter()
            .filter(|s| {
                if leaders {
                    s.leader.as_deref() == Some(node)
                } else {
                    s.replicas.iter().any(|r| r == node)
                }
            })
            .count()
    }

    fn three_zones(n: usize) -> Vec<PlacementNode> {
        (0..n)
            .map(|i| node(&format!("n{i}"), &format!("z{}", i % 3)))
            .collect()
    }

    #[test]
    fn new_shards_get_replicas_in_distinct_zones() {
        let nodes = three_zones(6);
        let shards: Vec<ShardReplicas> = (0..12)
            .map(|i| shard(&format!("s{i:02}"), &[], None, 1.0))
            .collect();
        let (state, _) = converge(&PlacementConfig::default(), &nodes, &shards);
        for s in &state {
            assert_eq!(s.replicas.len(), 3);
            let zones: BTreeSet<String> = s
                .replicas
                .iter()
                .map(|r| {
                    nodes
                        .iter()
                        .find(|n| &n.node_id == r)
                        .and_then(|n| n.zone.clone())
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(zones.len(), 3, "{s:?}");
        }
        for n in &nodes {
            assert_eq!(count(&state, &n.node_id, false), 6, "36 replicas over 6 nodes");
        }
    }

    #[test]
    fn leaders_are_balanced() {
        let nodes = three_zones(3);
        let shards: Vec<ShardReplicas> = (0..9)
            .map(|i| shard(&format!("s{i}"), &["n0", "n1", "n2"], Some("n0"), 1.0))
            .collect();
        let (state, _) = converge(&PlacementConfig::default(), &nodes, &shards);
        for n in ["n0", "n1", "n2"] {
            assert_eq!(count(&state, n, true), 3);
        }
    }

    #[test]
    fn draining_and_missing_nodes_are_emptied() {
        let mut nodes = three_zones(4);
        nodes[3].draining = true;
        let shards = vec![
            shard("a", &["n0", "n1", "n3"], Some("n3"), 1.0),
            shard("b", &["n0", "gone", "n2"], Some("n0"), 1.0),
        ];
        let (state, _) = converge(&PlacementConfig::default(), &nodes, &shards);
        assert_eq!(count(&state, "n3", false), 0);
        assert_eq!(count(&state, "gone", false), 0);
        assert!(state.iter().all(|s| s.replicas.len() == 3));
        assert!(
            state
                .iter()
                .all(|s| s.leader.as_ref().is_some_and(|l| s.replicas.contains(l)))
        );
    }

    #[test]
    fn hot_node_sheds_load() {
        let nodes = vec![node("n0", "z"), node("n1", "z"), node("n2", "z"), node("n3", "z")];
        let cfg = PlacementConfig {
            replication_factor: 1,
            ..Default::default()
        };
        let shards = vec![
            shard("a", &["n0"], Some("n0"), 50.0),
            shard("b", &["n0"], Some("n0"), 40.0),
            shard("c", &["n1"], Some("n1"), 10.0),
            shard("d", &["n2"], Some("n2"), 10.0),
        ];
        let (state, _) = converge(&cfg, &nodes, &shards);
        let util = |n: &str| {
            state
                .iter()
                .filter(|s| s.replicas.iter().any(|r| r == n))
                .map(|s| s.load)
                .sum::<f64>()
        };
        assert!(util("n0") <= 85.0, "{state:?}");
    }

    #[test]
    fn balanced_cluster_is_left_alone() {
        let nodes = three_zones(3);
        let shards = vec![
            shard("a", &["n0", "n1", "n2"], Some("n0"), 1.0),
            shard("b", &["n0", "n1", "n2"], Some("n1"), 1.0),
            shard("c", &["n0", "n1", "n2"], Some("n2"), 1.0),
        ];
        assert!(plan(&PlacementConfig::default(), &nodes, &shards).is_empty());
    }

    #[test]
    fn new_node_receives_replicas_without_breaking_zone_spread() {
        let mut nodes = three_zones(3);
        let shards: Vec<ShardReplicas> = (0..6)
            .map(|i| {
                shard(
                    &format!("s{i}"),
                    &["n0", "n1", "n2"],
                    Some(["n0", "n1", "n2"][i % 3]),
                    1.0,
                )
            })
            .collect();
        nodes.push(node("n3", "z0"));
        let (state, rounds) = converge(
            &PlacementConfig {
                max_actions: 2,
                ..Default::default()
            },
            &nodes,
            &shards,
        );
        assert!(rounds >= 1);
        assert!(count(&state, "n3", false) >= 2, "{state:?}");
        for s in &state {
            let zones: BTreeSet<&str> = s
                .replicas
                .iter()
                .map(|r| {
                    nodes
                        .iter()
                        .find(|n| &n.node_id == r)
                        .and_then(|n| n.zone.as_deref())
                        .unwrap_or("")
                })
                .collect();
            assert_eq!(zones.len(), 3);
        }
    }
}
