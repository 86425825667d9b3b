//! The catalog: streams, their shards and where the shards live. It is the state machine of the
//! catalog Raft group; [`Catalog::apply`] is pure and deterministic so every replica agrees.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::HashKeyRange;
use crate::model::hash_key;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardRecord {
    pub index: u32,
    /// The Raft group holding this shard's log; unique on the node and never reused.
    pub group: u64,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    pub range: HashKeyRange,
    pub created_ms: i64,
    /// Set when the shard is closed: the last log index that holds records of this shard.
    pub ending_log_index: Option<u64>,
    pub replicas: Vec<u64>,
}

impl ShardRecord {
    pub fn created_secs(&self) -> u64 {
        (self.created_ms / 1000).max(0) as u64
    }
    pub fn is_open(&self) -> bool {
        self.ending_log_index.is_none()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamRecord {
    pub name: String,
    pub status: StreamStatus,
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub created_ms: i64,
    pub status_changed_ms: i64,
    pub tags: BTreeMap<String, String>,
    pub shards: Vec<ShardRecord>,
}

impl StreamRecord {
    pub fn open_shards(&self) -> impl Iterator<Item = &ShardRecord> {
        self.shards.iter().filter(|s| s.is_open())
    }
    pub fn shard(&self, index: u32) -> Option<&ShardRecord> {
        self.shards.iter().find(|s| s.index == index)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    pub streams: BTreeMap<String, StreamRecord>,
    /// Next shard group id; 0 is the catalog's own group.
    pub next_group: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CatalogCommand {
    CreateStream {
        name: String,
        mode: StreamMode,
        shard_count: u32,
        retention_hours: u32,
        tags: BTreeMap<String, String>,
        /// Replica nodes of each shard, in shard order; the first one forms the group.
        placement: Vec<Vec<u64>>,
        now_ms: i64,
    },
    SetStatus {
        name: String,
        status: StreamStatus,
        now_ms: i64,
    },
    SetRetention {
        name: String,
        hours: u32,
    },
    /// Changes nothing: a node proposes it to learn that its replica has caught up.
    Noop,
    RemoveStream {
        name: String,
    },
    /// Adds (or overwrites) `add`, then removes `remove` (AddTagsToStream, RemoveTagsFromStream).
    SetTags {
        name: String,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// UpdateStreamMode: the stream is UPDATING until the node completes the transition.
    SetMode {
        name: String,
        mode: StreamMode,
        now_ms: i64,
    },
}

impl fmt::Display for CatalogCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CatalogReply {
    #[default]
    Done,
    AlreadyExists,
    NotFound,
}

impl Catalog {
    pub fn stream(&self, name: &str) -> Option<&StreamRecord> {
        self.streams.get(name)
    }

    pub fn apply(&mut self, cmd: CatalogCommand) -> CatalogReply {
        match cmd {
            CatalogCommand::CreateStream {
                name,
                mode,
                shard_count,
                retention_hours,
                tags,
                placement,
                now_ms,
            } => {
                if self.streams.contains_key(&name) {
                    return CatalogReply::AlreadyExists;
                }
                let first_group = self.next_group.max(1);
                let shards: Vec<ShardRecord> = hash_key::divide_evenly(shard_count)
                    .into_iter()
                    .enumerate()
                    .map(|(i, range)| ShardRecord {
                        index: i as u32,
                        group: first_group + i as u64,
                        parent: None,
                        adjacent_parent: None,
                        range,
                        created_ms: now_ms,
                        ending_log_index: None,
                        replicas: placement.get(i).cloned().unwrap_or_default(),
                    })
                    .collect();
                self.next_group = first_group + shards.len() as u64;
                self.streams.insert(
                    name.clone(),
                    StreamRecord {
                        name,
                        status: StreamStatus::Creating,
                        mode,
                        retention_hours,
                        created_ms: now_ms,
                        status_changed_ms: now_ms,
                        tags,
                        shards,
                    },
                );
                CatalogReply::Done
            }
            CatalogCommand::SetStatus { name, status, now_ms } => match self.streams.get_mut(&name) {
                Some(s) => {
                    s.status = status;
                    s.status_changed_ms = now_ms;
                    CatalogReply::Done
                }
                None => CatalogReply::NotFound,
            },
            CatalogCommand::SetRetention { name, hours } => match self.streams.get_mut(&name) {
                Some(s) => {
                    s.retention_hours = hours;
                    CatalogReply::Done
                }
                None => CatalogReply::NotFound,
            },
            CatalogCommand::Noop => CatalogReply::Done,
            CatalogCommand::RemoveStream { name } => match self.streams.remove(&name) {
                Some(_) => CatalogReply::Done,
                None => CatalogReply::NotFound,
            },
            CatalogCommand::SetTags { name, add, remove } => match self.streams.get_mut(&name) {
                Some(s) => {
                    s.tags.extend(add);
                    for k in remove {
                        s.tags.remove(&k);
                    }
                    CatalogReply::Done
                }
                None => CatalogReply::NotFound,
            },
            CatalogCommand::SetMode { name, mode, now_ms } => match self.streams.get_mut(&name) {
                Some(s) => {
                    s.mode = mode;
                    s.status = StreamStatus::Updating;
                    s.status_changed_ms = now_ms;
                    CatalogReply::Done
                }
                None => CatalogReply::NotFound,
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn create(name: &str, shards: u32) -> CatalogCommand {
        CatalogCommand::CreateStream {
            name: name.into(),
            mode: StreamMode::Provisioned,
            shard_count: shards,
            retention_hours: 24,
            tags: BTreeMap::new(),
            placement: vec![vec![1]; shards as usize],
            now_ms: 1_000,
        }
    }

    #[test]
    fn groups_are_unique_and_never_reused() {
        let mut c = Catalog::default();
        assert_eq!(c.apply(create("a", 3)), CatalogReply::Done);
        assert_eq!(c.apply(create("a", 3)), CatalogReply::AlreadyExists);
        assert_eq!(
            c.apply(CatalogCommand::RemoveStream { name: "a".into() }),
            CatalogReply::Done
        );
        assert_eq!(c.apply(create("b", 2)), CatalogReply::Done);
        let groups: Vec<u64> = c.stream("b").unwrap().shards.iter().map(|s| s.group).collect();
        assert_eq!(groups, vec![4, 5]);
    }

    #[test]
    fn tags_and_mode() {
        let mut c = Catalog::default();
        c.apply(create("a", 1));
        let add: BTreeMap<String, String> = [("k1".into(), "v1".into()), ("k2".into(), "v2".into())].into();
        let cmd = CatalogCommand::SetTags {
            name: "a".into(),
            add,
            remove: vec!["k1".into(), "absent".into()],
        };
        assert_eq!(c.apply(cmd.clone()), CatalogReply::Done);
        let tags: Vec<(&str, &str)> = c
            .stream("a")
            .unwrap()
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, vec![("k2", "v2")]);
        assert_eq!(
            c.apply(CatalogCommand::SetTags {
                name: "zz".into(),
                add: BTreeMap::new(),
                remove: vec![]
            }),
            CatalogReply::NotFound
        );
        assert_eq!(
            c.apply(CatalogCommand::SetMode {
                name: "a".into(),
                mode: StreamMode::OnDemand,
                now_ms: 9
            }),
            CatalogReply::Done
        );
        let s = c.stream("a").unwrap();
        assert_eq!(
            (s.mode, s.status, s.status_changed_ms),
            (StreamMode::OnDemand, StreamStatus::Updating, 9)
        );
    }

    #[test]
    fn status_and_retention() {
        let mut c = Catalog::default();
        c.apply(create("a", 1));
        assert_eq!(c.stream("a").unwrap().status, StreamStatus::Creating);
        c.apply(CatalogCommand::SetStatus {
            name: "a".into(),
            status: StreamStatus::Active,
            now_ms: 5,
        });
        c.apply(CatalogCommand::SetRetention {
            name: "a".into(),
            hours: 48,
        });
        let s = c.stream("a").unwrap();
        assert_eq!(
            (s.status, s.retention_hours, s.status_changed_ms),
            (StreamStatus::Active, 48, 5)
        );
        assert_eq!(
            c.apply(CatalogCommand::SetRetention {
                name: "zz".into(),
                hours: 48
            }),
            CatalogReply::NotFound
        );
    }
}
