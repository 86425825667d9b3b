//! Which shards of a stream may be read now: parents before children.
//!
//! A shard is started only after its parent and adjacent parent are fully read, so a consumer
//! sees each partition key's records in order across splits and merges (DESIGN invariant 3).
//! Parents that are not known (removed by retention) count as read.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// A shard and its lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardNode {
    pub shard_id: String,
    /// The parent and adjacent parent, when set.
    pub parents: Vec<String>,
    /// True when the shard is closed (has an ending sequence number).
    pub closed: bool,
}

impl ShardNode {
    pub fn new(shard_id: impl Into<String>, parents: &[&str], closed: bool) -> Self {
        ShardNode {
            shard_id: shard_id.into(),
            parents: parents
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.to_string())
                .collect(),
            closed,
        }
    }
}

/// Tracks which shards are started and finished and hands out those ready to read.
#[derive(Debug, Default, Clone)]
pub struct ShardOrder {
    nodes: BTreeMap<String, ShardNode>,
    started: BTreeSet<String>,
    finished: BTreeSet<String>,
}

impl ShardOrder {
    pub fn new(nodes: impl IntoIterator<Item = ShardNode>) -> Self {
        let mut order = ShardOrder::default();
        for node in nodes {
            order.add(node);
        }
        order
    }

    /// Adds a shard discovered after the start (a child of a shard just read). Known shards
    /// keep what is known of them.
    pub fn add(&mut self, node: ShardNode) {
        self.nodes.entry(node.shard_id.clone()).or_insert(node);
    }

    pub fn contains(&self, shard_id: &str) -> bool {
        self.nodes.contains_key(shard_id)
    }

    /// Marks a shard as fully read.
    pub fn finish(&mut self, shard_id: &str) {
        self.started.insert(shard_id.to_string());
        self.finished.insert(shard_id.to_string());
    }

    /// Marks every closed shard as read without reading it (for a start at LATEST).
    pub fn skip_closed(&mut self) {
        let closed: Vec<String> = self
            .nodes
            .values()
            .filter(|n| n.closed)
            .map(|n| n.shard_id.clone())
            .collect();
        for id in closed {
            self.finish(&id);
        }
    }

    /// Keeps only `shard_id` and its descendants; every other shard counts as read.
    pub fn restrict_to_lineage(&mut self, shard_id: &str) {
        let lineage = self.lineage(shard_id);
        let others: Vec<String> = self
            .nodes
            .keys()
            .filter(|id| !lineage.contains(*id))
            .cloned()
            .collect();
        for id in others {
            self.finish(&id);
        }
    }

    /// `shard_id` and every shard descending from it.
    pub fn lineage(&self, shard_id: &str) -> BTreeSet<String> {
        let mut set = BTreeSet::from([shard_id.to_string()]);
        loop {
            let before = set.len();
            for node in self.nodes.values() {
                if node.parents.iter().any(|p| set.contains(p)) {
                    set.insert(node.shard_id.clone());
                }
            }
            if set.len() == before {
                return set;
            }
        }
    }

    /// Shards not yet started whose parents are all read, now marked started, in id order.
    pub fn take_ready(&mut self) -> Vec<String> {
        let ready: Vec<String> = self
            .nodes
            .values()
            .filter(|n| !self.started.contains(&n.shard_id))
            .filter(|n| {
                n.parents
                    .iter()
                    .all(|p| self.finished.contains(p) || !self.nodes.contains_key(p))
            })
            .map(|n| n.shard_id.clone())
            .collect();
        self.started.extend(ready.iter().cloned());
        ready
    }

    /// True when every known shard is read.
    pub fn all_finished(&self) -> bool {
        self.nodes.keys().all(|id| self.finished.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0 split into 1 and 2; 1 and 2 merged into 3; 4 is an unrelated open shard.
    fn split_and_merge() -> ShardOrder {
        ShardOrder::new([
            ShardNode::new("s3", &["s1", "s2"], false),
            ShardNode::new("s1", &["s0"], true),
            ShardNode::new("s2", &["s0", ""], true),
            ShardNode::new("s0", &[], true),
            ShardNode::new("s4", &[], false),
        ])
    }

    #[test]
    fn parents_before_children() {
        let mut order = split_and_merge();
        assert_eq!(order.take_ready(), vec!["s0", "s4"]);
        assert!(order.take_ready().is_empty());
        order.finish("s0");
        assert_eq!(order.take_ready(), vec!["s1", "s2"]);
        order.finish("s1");
        assert!(
            order.take_ready().is_empty(),
            "merge child waits for its adjacent parent"
        );
        order.finish("s2");
        assert_eq!(order.take_ready(), vec!["s3"]);
        order.finish("s3");
        assert!(!order.all_finished());
        order.finish("s4");
        assert!(order.all_finished());
    }

    #[test]
    fn unknown_parents_count_as_read() {
        let mut order = ShardOrder::new([ShardNode::new("s5", &["expired"], false)]);
        assert_eq!(order.take_ready(), vec!["s5"]);
    }

    #[test]
    fn children_discovered_later() {
        let mut order = ShardOrder::new([ShardNode::new("s0", &[], false)]);
        assert_eq!(order.take_ready(), vec!["s0"]);
        order.add(ShardNode::new("s1", &["s0"], false));
        order.add(ShardNode::new("s2", &["s0"], false));
        assert!(order.take_ready().is_empty());
        order.finish("s0");
        assert_eq!(order.take_ready(), vec!["s1", "s2"]);
    }

    #[test]
    fn latest_skips_closed_shards() {
        let mut order = split_and_merge();
        order.skip_closed();
        assert_eq!(order.take_ready(), vec!["s3", "s4"]);
    }

    #[test]
    fn lineage_of_one_shard() {
        let mut order = split_and_merge();
        assert_eq!(
            order.lineage("s1").into_iter().collect::<Vec<_>>(),
            vec!["s1", "s3"]
        );
        order.restrict_to_lineage("s1");
        assert_eq!(order.take_ready(), vec!["s1"]);
        order.finish("s1");
        assert_eq!(order.take_ready(), vec!["s3"]);
    }
}
