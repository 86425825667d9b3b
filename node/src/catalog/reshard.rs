//! Resharding as pure decisions: which children a split or merge makes, and the rounds of
//! splits and merges that take a stream to a uniform shard count (UpdateShardCount).
//!
//! A reshard round closes its parent shards and opens their children in one catalog change
//! (after each parent's Raft group has sealed its log), so every hash key has exactly one
//! writable shard at any time.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::model::HashKeyRange;
use crate::model::hash_key;

/// One split or merge of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReshardStep {
    /// SplitShard: the children own `[start, at - 1]` and `[at, end]`.
    Split { parent: u32, at: u128 },
    /// MergeShards: the child owns the union; `parent` becomes its ParentShardId and
    /// `adjacent` its AdjacentParentShardId.
    Merge { parent: u32, adjacent: u32 },
}

/// A child shard a round creates, in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child {
    pub parent: u32,
    pub adjacent_parent: Option<u32>,
    pub range: HashKeyRange,
}

/// Why a round cannot start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("shard {0} does not exist")]
    UnknownShard(u32),
    #[error("shard {0} is closed or not yet open")]
    NotOpen(u32),
    #[error("shard {0} appears in two steps of one round")]
    Reused(u32),
    #[error("split key is not inside shard {0}")]
    BadSplitKey(u32),
    #[error("shards {0} and {1} are not adjacent")]
    NotAdjacent(u32, u32),
}

/// Whether two ranges touch end to start, in either order.
pub fn adjacent(a: HashKeyRange, b: HashKeyRange) -> bool {
    a.end.checked_add(1) == Some(b.start) || b.end.checked_add(1) == Some(a.start)
}

/// The children of `steps`, given the writable shards as `index -> range`. A split key must
/// leave both children non-empty (SplitShard's stricter AWS rule is checked by the service).
pub fn children(
    writable: &BTreeMap<u32, HashKeyRange>,
    steps: &[ReshardStep],
) -> Result<Vec<Child>, StepError> {
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    let range_of = |i: u32, used: &mut BTreeSet<u32>| -> Result<HashKeyRange, StepError> {
        let r = *writable.get(&i).ok_or(StepError::NotOpen(i))?;
        if !used.insert(i) {
            return Err(StepError::Reused(i));
        }
        Ok(r)
    };
    for step in steps {
        match *step {
            ReshardStep::Split { parent, at } => {
                let r = range_of(parent, &mut used)?;
                if at <= r.start || at > r.end {
                    return Err(StepError::BadSplitKey(parent));
                }
                out.push(Child {
                    parent,
                    adjacent_parent: None,
                    range: HashKeyRange {
                        start: r.start,
                        end: at - 1,
                    },
                });
                out.push(Child {
                    parent,
                    adjacent_parent: None,
                    range: HashKeyRange {
                        start: at,
                        end: r.end,
                    },
                });
            }
            ReshardStep::Merge {
                parent,
                adjacent: adj,
            } => {
                let a = range_of(parent, &mut used)?;
                let b = range_of(adj, &mut used)?;
                if !adjacent(a, b) {
                    return Err(StepError::NotAdjacent(parent, adj));
                }
                out.push(Child {
                    parent,
                    adjacent_parent: Some(adj),
                    range: HashKeyRange {
                        start: a.start.min(b.start),
                        end: a.end.max(b.end),
                    },
                });
            }
        }
    }
    Ok(out)
}

/// The next round towards `target` uniform shards (as CreateStream would divide the key space),
/// or nothing when the writable shards already are that division.
///
/// First every shard that straddles a target boundary is split at its lowest one (at most one
/// split per shard per round); once no shard straddles a boundary, shards inside the same
/// target range are merged pairwise, left to right. Each round only uses AWS's two primitives,
/// so lineage keeps the ParentShardId / AdjacentParentShardId shape and per-key order holds.
pub fn next_round(writable: &BTreeMap<u32, HashKeyRange>, target: u32) -> Vec<ReshardStep> {
    let goal = hash_key::divide_evenly(target);
    let boundaries: Vec<u128> = goal.iter().skip(1).map(|r| r.start).collect();
    let splits: Vec<ReshardStep> = writable
        .iter()
        .filter_map(|(&i, r)| {
            boundaries
                .iter()
                .find(|&&b| b > r.start && b <= r.end)
                .map(|&at| ReshardStep::Split { parent: i, at })
        })
        .collect();
    if !splits.is_empty() {
        return splits;
    }
    // Every shard now lies inside one target range: merge neighbours within each.
    let mut by_start: Vec<(u32, HashKeyRange)> = writable.iter().map(|(&i, &r)| (i, r)).collect();
    by_start.sort_by_key(|(_, r)| r.start);
    let goal_of = |key: u128| goal.iter().position(|g| g.contains(key)).unwrap_or(0);
    let mut merges = Vec::new();
    let mut i = 0;
    while i + 1 < by_start.len() {
        let (a, ra) = by_start[i];
        let (b, rb) = by_start[i + 1];
        if goal_of(ra.start) == goal_of(rb.start) {
            merges.push(ReshardStep::Merge {
                parent: a,
                adjacent: b,
            });
            i += 2;
        } else {
            i += 1;
        }
    }
    merges
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn layout(count: u32) -> BTreeMap<u32, HashKeyRange> {
        hash_key::divide_evenly(count)
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i as u32, r))
            .collect()
    }

    /// Applies rounds like the catalog does until `next_round` is empty.
    fn converge(
        mut shards: BTreeMap<u32, HashKeyRange>,
        target: u32,
    ) -> (BTreeMap<u32, HashKeyRange>, usize) {
        let mut next = shards.keys().max().map_or(0, |m| m + 1);
        for rounds in 0..64 {
            let steps = next_round(&shards, target);
            if steps.is_empty() {
                return (shards, rounds);
            }
            let kids = children(&shards, &steps).expect("planned steps are valid");
            for s in &steps {
                match *s {
                    ReshardStep::Split { parent, .. } => {
                        shards.remove(&parent);
                    }
                    ReshardStep::Merge { parent, adjacent } => {
                        shards.remove(&parent);
                        shards.remove(&adjacent);
                    }
                }
            }
            for k in kids {
                shards.insert(next, k.range);
                next += 1;
            }
        }
        panic!("no convergence");
    }

    fn covers_everything(shards: &BTreeMap<u32, HashKeyRange>) -> bool {
        let mut ranges: Vec<HashKeyRange> = shards.values().copied().collect();
        ranges.sort_by_key(|r| r.start);
        ranges.first().map(|r| r.start) == Some(0)
            && ranges.last().map(|r| r.end) == Some(u128::MAX)
            && ranges.windows(2).all(|w| w[0].end + 1 == w[1].start)
    }

    #[test]
    fn split_and_merge_children() {
        let shards = layout(2);
        let mid = shards[&0].start + (shards[&0].end - shards[&0].start) / 2;
        let kids = children(&shards, &[ReshardStep::Split { parent: 0, at: mid }]).unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].range.end + 1, kids[1].range.start);
        assert_eq!(
            (kids[0].range.start, kids[1].range.end),
            (shards[&0].start, shards[&0].end)
        );
        let merged = children(
            &shards,
            &[ReshardStep::Merge {
                parent: 1,
                adjacent: 0,
            }],
        )
        .unwrap();
        assert_eq!(merged[0].range, HashKeyRange::FULL);
        assert_eq!((merged[0].parent, merged[0].adjacent_parent), (1, Some(0)));
    }

    #[test]
    fn invalid_steps_are_rejected() {
        let shards = layout(3);
        let s0 = shards[&0];
        assert_eq!(
            children(
                &shards,
                &[ReshardStep::Split {
                    parent: 0,
                    at: s0.start
                }]
            ),
            Err(StepError::BadSplitKey(0))
        );
        assert_eq!(
            children(
                &shards,
                &[ReshardStep::Split {
                    parent: 0,
                    at: s0.end + 1
                }]
            ),
            Err(StepError::BadSplitKey(0))
        );
        assert!(
            children(
                &shards,
                &[ReshardStep::Split {
                    parent: 0,
                    at: s0.end
                }]
            )
            .is_ok()
        );
        assert_eq!(
            children(
                &shards,
                &[ReshardStep::Merge {
                    parent: 0,
                    adjacent: 2
                }]
            ),
            Err(StepError::NotAdjacent(0, 2))
        );
        assert_eq!(
            children(&shards, &[ReshardStep::Split { parent: 7, at: 5 }]),
            Err(StepError::NotOpen(7))
        );
        assert_eq!(
            children(
                &shards,
                &[
                    ReshardStep::Merge {
                        parent: 0,
                        adjacent: 1
                    },
                    ReshardStep::Merge {
                        parent: 1,
                        adjacent: 2
                    }
                ]
            ),
            Err(StepError::Reused(1))
        );
    }

    #[test]
    fn doubling_and_halving_take_one_round() {
        let (after, rounds) = converge(layout(4), 8);
        assert_eq!(rounds, 1);
        let mut got: Vec<HashKeyRange> = after.values().copied().collect();
        got.sort_by_key(|r| r.start);
        assert_eq!(got, hash_key::divide_evenly(8));
        let (after, rounds) = converge(layout(8), 4);
        assert_eq!(rounds, 1);
        let mut got: Vec<HashKeyRange> = after.values().copied().collect();
        got.sort_by_key(|r| r.start);
        assert_eq!(got, hash_key::divide_evenly(4));
    }

    #[test]
    fn every_target_in_range_converges_to_the_uniform_layout() {
        for from in 1..=12u32 {
            for to in from.div_ceil(2)..=from * 2 {
                let (after, _) = converge(layout(from), to);
                let mut got: Vec<HashKeyRange> = after.values().copied().collect();
                got.sort_by_key(|r| r.start);
                assert_eq!(got, hash_key::divide_evenly(to), "{from} -> {to}");
                assert!(covers_everything(&after));
            }
        }
    }

    #[test]
    fn uneven_layouts_converge_too() {
        let mut shards = layout(1);
        let kids = children(&shards, &[ReshardStep::Split { parent: 0, at: 12345 }]).unwrap();
        shards.clear();
        shards.insert(1, kids[0].range);
        shards.insert(2, kids[1].range);
        for to in [1, 2, 3, 4] {
            let (after, _) = converge(shards.clone(), to);
            let mut got: Vec<HashKeyRange> = after.values().copied().collect();
            got.sort_by_key(|r| r.start);
            assert_eq!(got, hash_key::divide_evenly(to), "-> {to}");
        }
    }
}
