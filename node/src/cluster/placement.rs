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

#[cfg(test)]
mod tests {
    use super::*;

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
