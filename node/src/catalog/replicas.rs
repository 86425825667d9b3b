//! Moving shard replicas between nodes and draining nodes: the catalog side. A change is
//! recorded as a shard's target replica set; the shard's leader carries it out in its Raft group
//! (learners catch up, then the voters are replaced) and reports it done, after which the nodes
//! that left stop their replicas and delete their data.

use super::Catalog;
use super::CatalogReply;

impl Catalog {
    /// Records `target` as the replica set the shard moves to. Refused for a pending child,
    /// an empty or duplicated target, or while a different change of the shard is under way.
    pub(super) fn set_replica_target(&mut self, stream: &str, shard: u32, target: Vec<u64>) -> CatalogReply {
        let Some(sh) = self
            .streams
            .get_mut(stream)
            .and_then(|s| s.shards.iter_mut().find(|sh| sh.index == shard))
        else {
            return CatalogReply::NotFound;
        };
        if sh.pending {
            return CatalogReply::Conflict("the shard is not open yet".into());
        }
        let mut unique = target.clone();
        unique.sort_unstable();
        unique.dedup();
        if target.is_empty() || unique.len() != target.len() {
            return CatalogReply::Conflict("a replica set names distinct nodes".into());
        }
        match &sh.target_replicas {
            Some(t) if *t == target => CatalogReply::Done,
            Some(_) => CatalogReply::Conflict("another replica change of the shard is under way".into()),
            None if sh.replicas == target => CatalogReply::Done,
            None => {
                sh.target_replicas = Some(target);
                CatalogReply::Done
            }
        }
    }

    /// The shard's group now has `replicas` as its voters: the change is complete.
    pub(super) fn finish_replica_change(
        &mut self,
        stream: &str,
        shard: u32,
        replicas: Vec<u64>,
    ) -> CatalogReply {
        let Some(sh) = self
            .streams
            .get_mut(stream)
            .and_then(|s| s.shards.iter_mut().find(|sh| sh.index == shard))
        else {
            return CatalogReply::NotFound;
        };
        match &sh.target_replicas {
            Some(t) if *t == replicas => {
                sh.replicas = replicas;
                sh.target_replicas = None;
                CatalogReply::Done
            }
            None if sh.replicas == replicas => CatalogReply::Done,
            _ => CatalogReply::Conflict("not the replica change under way".into()),
        }
    }

    /// Marks a node as draining (new replicas avoid it) or not.
    pub(super) fn set_draining(&mut self, node: u64, draining: bool) -> CatalogReply {
        if draining {
            self.draining.insert(node);
        } else {
            self.draining.remove(&node);
        }
        CatalogReply::Done
    }

    /// The nodes holding a replica of any shard, or about to.
    pub fn nodes_in_use(&self) -> std::collections::BTreeSet<u64> {
        self.streams
            .values()
            .flat_map(|s| s.shards.iter())
            .flat_map(|sh| sh.replicas.iter().chain(sh.target_replicas.iter().flatten()))
            .copied()
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::CatalogCommand;
    use super::super::StreamMode;
    use super::*;

    fn catalog() -> Catalog {
        let mut c = Catalog::default();
        c.apply(CatalogCommand::CreateStream {
            name: "a".into(),
            mode: StreamMode::Provisioned,
            shard_count: 1,
            retention_hours: 24,
            tags: BTreeMap::new(),
            placement: vec![vec![1, 2, 3]],
            now_ms: 1,
            max_record_size_kib: None,
        });
        c
    }

    #[test]
    fn a_move_is_recorded_then_completed_once() {
        let mut c = catalog();
        let target = |t: Vec<u64>| CatalogCommand::SetReplicaTarget {
            stream: "a".into(),
            shard: 0,
            target: t,
        };
        assert!(matches!(
            c.apply(target(vec![1, 2, 2])),
            CatalogReply::Conflict(_)
        ));
        assert_eq!(c.apply(target(vec![1, 2, 4])), CatalogReply::Done);
        assert_eq!(c.nodes_in_use().into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        // The same target again is fine; another one waits for the first to finish.
        assert_eq!(c.apply(target(vec![1, 2, 4])), CatalogReply::Done);
        assert!(matches!(
            c.apply(target(vec![1, 2, 5])),
            CatalogReply::Conflict(_)
        ));
        let finish = |r: Vec<u64>| CatalogCommand::FinishReplicaChange {
            stream: "a".into(),
            shard: 0,
            replicas: r,
        };
        assert!(matches!(
            c.apply(finish(vec![1, 2, 5])),
            CatalogReply::Conflict(_)
        ));
        assert_eq!(c.apply(finish(vec![1, 2, 4])), CatalogReply::Done);
        let sh = &c.stream("a").unwrap().shards[0];
        assert_eq!(
            (sh.replicas.clone(), sh.target_replicas.clone()),
            (vec![1, 2, 4], None)
        );
        // Finishing twice is harmless.
        assert_eq!(c.apply(finish(vec![1, 2, 4])), CatalogReply::Done);
        assert_eq!(c.apply(target(vec![1, 2, 5])), CatalogReply::Done);
        assert_eq!(
            c.apply(CatalogCommand::SetReplicaTarget {
                stream: "zz".into(),
                shard: 0,
                target: vec![1]
            }),
            CatalogReply::NotFound
        );
    }
}
