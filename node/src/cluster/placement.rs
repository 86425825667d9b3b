//! Default replica placement: a pure function of the nodes and their current load, so the
//! operator can later replace its inputs with observed load.

use std::collections::BTreeMap;

/// Replicas and preferred leaderships a node already holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeLoad {
    pub replicas: usize,
    pub leaders: usize,
}

/// Chooses `replication` distinct nodes for each of `shards` new shards. Each shard goes to the
/// least loaded nodes (fewest replicas, then lowest id); the first node of each list is the
/// shard's preferred leader (it forms the group), chosen among them as the one leading least.
/// With fewer nodes than `replication`, every node gets a replica.
pub fn place(
    nodes: &[u64],
    load: &BTreeMap<u64, NodeLoad>,
    replication: usize,
    shards: usize,
) -> Vec<Vec<u64>> {
    let mut load: BTreeMap<u64, NodeLoad> = nodes
        .iter()
        .map(|n| (*n, load.get(n).copied().unwrap_or_default()))
        .collect();
    let rf = replication.clamp(1, nodes.len().max(1));
    let mut out = Vec::with_capacity(shards);
    for _ in 0..shards {
        let mut candidates: Vec<u64> = load.keys().copied().collect();
        candidates.sort_by_key(|n| (load[n].replicas, *n));
        let mut chosen: Vec<u64> = candidates.into_iter().take(rf).collect();
        chosen.sort_by_key(|n| (load[n].leaders, *n));
        for (i, n) in chosen.iter().enumerate() {
            if let Some(l) = load.get_mut(n) {
                l.replicas += 1;
                if i == 0 {
                    l.leaders += 1;
                }
            }
        }
        out.push(chosen);
    }
    out
}

/// The current load of each node, from the shards' replica lists.
pub fn load_of<'a>(replica_lists: impl Iterator<Item = &'a [u64]>) -> BTreeMap<u64, NodeLoad> {
    let mut load: BTreeMap<u64, NodeLoad> = BTreeMap::new();
    for list in replica_lists {
        for (i, n) in list.iter().enumerate() {
            let l = load.entry(*n).or_default();
            l.replicas += 1;
            if i == 0 {
                l.leaders += 1;
            }
        }
    }
    load
}

/// A shard's replica set with `node` replaced by the least loaded of `nodes` that holds none of
/// its replicas (fewest replicas, then lowest id), added last (the first replica keeps being an
/// old member: it is the one that would form the group); `None` when no node is left. Updates
/// `load` with the move.
pub fn replace(
    replicas: &[u64],
    node: u64,
    nodes: &[u64],
    load: &mut BTreeMap<u64, NodeLoad>,
) -> Option<Vec<u64>> {
    let to = nodes
        .iter()
        .filter(|n| **n != node && !replicas.contains(n))
        .min_by_key(|n| (load.get(n).map_or(0, |l| l.replicas), **n))
        .copied()?;
    load.entry(to).or_default().replicas += 1;
    if let Some(l) = load.get_mut(&node) {
        l.replicas = l.replicas.saturating_sub(1);
    }
    let mut moved: Vec<u64> = replicas.iter().copied().filter(|n| *n != node).collect();
    moved.push(to);
    Some(moved)
}

/// Moves every replica off `node` (draining it): for each replica set holding it, the set with
/// `node` replaced (see [`replace`]), spreading the moved replicas over the least loaded of
/// `nodes`. Sets that cannot move (no node left to take the replica) are returned apart.
pub fn plan_drain<K: Clone>(
    node: u64,
    shards: &[(K, Vec<u64>)],
    nodes: &[u64],
) -> (Vec<(K, Vec<u64>)>, Vec<K>) {
    let mut load = load_of(shards.iter().map(|(_, r)| r.as_slice()));
    let mut moves = Vec::new();
    let mut stuck = Vec::new();
    for (key, replicas) in shards.iter().filter(|(_, r)| r.contains(&node)) {
        match replace(replicas, node, nodes, &mut load) {
            Some(target) => moves.push((key.clone(), target)),
            None => stuck.push(key.clone()),
        }
    }
    (moves, stuck)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_spreads_the_moved_replicas() {
        // Four nodes, six shards on 1, 2, 3: draining 3 moves all six to the new node 4 (the
        // only node without a replica of each), and node 3 ends with nothing.
        let shards: Vec<(u32, Vec<u64>)> = (0..6).map(|i| (i, vec![1, 2, 3])).collect();
        let (moves, stuck) = plan_drain(3, &shards, &[1, 2, 3, 4]);
        assert!(stuck.is_empty());
        assert_eq!(moves.len(), 6);
        assert!(moves.iter().all(|(_, r)| r == &vec![1, 2, 4]));
        // Five nodes: the moved replicas alternate between the two free nodes.
        let (moves, _) = plan_drain(3, &shards, &[1, 2, 3, 4, 5]);
        let on4 = moves.iter().filter(|(_, r)| r.contains(&4)).count();
        assert_eq!(on4, 3);
        // Nowhere to go: three nodes, three replicas.
        let (moves, stuck) = plan_drain(3, &shards, &[1, 2, 3]);
        assert!(moves.is_empty());
        assert_eq!(stuck.len(), 6);
        // Sets without the node are left alone.
        let (moves, stuck) = plan_drain(9, &shards, &[1, 2, 3, 4]);
        assert!(moves.is_empty() && stuck.is_empty());
    }

    fn counts(p: &[Vec<u64>]) -> BTreeMap<u64, NodeLoad> {
        load_of(p.iter().map(|v| v.as_slice()))
    }

    #[test]
    fn replicas_are_distinct_and_balanced() {
        let p = place(&[1, 2, 3, 4, 5], &BTreeMap::new(), 3, 10);
        for r in &p {
            let mut d = r.clone();
            d.dedup();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
        }
        let c = counts(&p);
        let (min, max) = (
            c.values().map(|l| l.replicas).min().unwrap(),
            c.values().map(|l| l.replicas).max().unwrap(),
        );
        assert!(max - min <= 1, "{c:?}");
        let (lmin, lmax) = (
            c.values().map(|l| l.leaders).min().unwrap(),
            c.values().map(|l| l.leaders).max().unwrap(),
        );
        assert!(lmax - lmin <= 1, "{c:?}");
    }

    #[test]
    fn existing_load_is_respected() {
        let mut load = BTreeMap::new();
        load.insert(
            1,
            NodeLoad {
                replicas: 10,
                leaders: 10,
            },
        );
        let p = place(&[1, 2, 3, 4], &load, 3, 1);
        assert_eq!(p[0].len(), 3);
        assert!(!p[0].contains(&1));
    }

    #[test]
    fn fewer_nodes_than_replication_factor() {
        assert_eq!(place(&[7], &BTreeMap::new(), 3, 2), vec![vec![7], vec![7]]);
        assert_eq!(place(&[1, 2], &BTreeMap::new(), 3, 1)[0].len(), 2);
    }

    #[test]
    fn three_nodes_three_replicas_spread_leaders() {
        let p = place(&[1, 2, 3], &BTreeMap::new(), 3, 6);
        let c = counts(&p);
        assert!(c.values().all(|l| l.replicas == 6 && l.leaders == 2), "{c:?}");
    }
}
