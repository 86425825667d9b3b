//! The catalog: streams, their shards and where the shards live. It is the state machine of the
//! catalog Raft group; [`Catalog::apply`] is pure and deterministic so every replica agrees.

pub mod consumers;
pub mod delivery;
pub mod leases;
pub mod replicas;
pub mod reshard;

use std::collections::BTreeMap;
use std::fmt;

pub use consumers::ConsumerArn;
pub use consumers::ConsumerRecord;
pub use consumers::ConsumerStatus;
pub use delivery::DeliveryStreamRecord;
pub use delivery::DeliveryStreamStatus;
pub use leases::Checkpoint;
pub use leases::Lease;
pub use leases::LeaseCommand;
pub use reshard::ReshardStep;

use crate::model::HashKeyRange;
use crate::model::hash_key;

/// How long UpdateShardCount calls are remembered (AWS limits them per rolling 24 hours).
pub const SCALING_WINDOW_MS: i64 = 24 * 3600 * 1000;

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
    /// A child of a reshard round that has not completed: its group exists, but it takes no
    /// writes and is not listed until its parents are sealed.
    #[serde(default)]
    pub pending: bool,
    /// When the shard closed (the reshard round completed).
    #[serde(default)]
    pub closed_ms: Option<i64>,
    /// A replica change under way: the nodes the shard's group moves to (see `replicas`).
    #[serde(default)]
    pub target_replicas: Option<Vec<u64>>,
}

impl ShardRecord {
    pub fn created_secs(&self) -> u64 {
        (self.created_ms / 1000).max(0) as u64
    }
    /// Takes writes: not closed and not a pending child.
    pub fn is_open(&self) -> bool {
        self.ending_log_index.is_none() && !self.pending
    }

    /// An open shard over the whole hash range, created at 0 on node 1 (unit tests).
    #[cfg(test)]
    pub fn fixture(index: u32, group: u64) -> ShardRecord {
        ShardRecord {
            index,
            group,
            parent: None,
            adjacent_parent: None,
            range: HashKeyRange::FULL,
            created_ms: 0,
            ending_log_index: None,
            replicas: vec![1],
            pending: false,
            closed_ms: None,
            target_replicas: None,
        }
    }
}

/// A reshard round in progress: parents being sealed, children waiting to open.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingReshard {
    pub parents: Vec<u32>,
    pub children: Vec<u32>,
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
    #[serde(default)]
    pub reshard: Option<PendingReshard>,
    /// UpdateShardCount's goal while rounds of splits and merges run.
    #[serde(default)]
    pub target_shard_count: Option<u32>,
    /// When UpdateShardCount was accepted, within the last 24 hours.
    #[serde(default)]
    pub scaling_ms: Vec<i64>,
    /// Enhanced fan-out consumers by name.
    #[serde(default)]
    pub consumers: BTreeMap<String, ConsumerRecord>,
    /// Shard leases and checkpoints of consuming applications, by application name.
    #[serde(default)]
    pub applications: BTreeMap<String, leases::Leases>,
    /// Largest record accepted (MaxRecordSizeInKiB); `None` is AWS's default, 1024 KiB.
    #[serde(default)]
    pub max_record_size_kib: Option<u32>,
    /// Server-side encryption of the records written from now on (StartStreamEncryption).
    #[serde(default)]
    pub encryption: Option<StreamEncryption>,
    /// When StartStreamEncryption applied a key, within the last 24 hours.
    #[serde(default)]
    pub encryption_changes_ms: Vec<i64>,
}

/// A stream's encryption: the `KeyId` as the caller gave it (a key id, alias or ARN), resolved
/// against the keyring by each shard's leader when it seals a batch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamEncryption {
    pub key_id: String,
}

/// The window of AWS's limit on StartStreamEncryption calls (25 per rolling 24 hours).
pub const ENCRYPTION_WINDOW_MS: i64 = SCALING_WINDOW_MS;

/// AWS's default and the bounds of MaxRecordSizeInKiB.
pub const DEFAULT_MAX_RECORD_SIZE_KIB: u32 = 1024;
pub const MAX_MAX_RECORD_SIZE_KIB: u32 = 10240;

impl StreamRecord {
    /// MaxRecordSizeInKiB of the stream.
    pub fn max_record_size_kib(&self) -> u32 {
        self.max_record_size_kib.unwrap_or(DEFAULT_MAX_RECORD_SIZE_KIB)
    }
    /// Shards that take writes (open and not pending).
    pub fn open_shards(&self) -> impl Iterator<Item = &ShardRecord> {
        self.shards.iter().filter(|s| s.is_open())
    }
    /// Closed shards that hold nothing any more at `now_ms`: closed longer ago than the
    /// retention period, so every record they had is past retention. The shard with the highest
    /// index always stays (it is never a parent, so never closed; kept regardless, because new
    /// shard indexes follow it).
    pub fn expired_shards(&self, now_ms: i64) -> Vec<u32> {
        let retention_ms = i64::from(self.retention_hours) * 3_600_000;
        let last = self.shards.iter().map(|sh| sh.index).max();
        self.shards
            .iter()
            .filter(|sh| Some(sh.index) != last && sh.ending_log_index.is_some())
            .filter(|sh| sh.closed_ms.is_some_and(|c| c < now_ms - retention_ms))
            .map(|sh| sh.index)
            .collect()
    }
    /// Shards clients can see: all but pending children.
    pub fn listed_shards(&self) -> impl Iterator<Item = &ShardRecord> {
        self.shards.iter().filter(|s| !s.pending)
    }
    /// The shards whose parent or adjacent parent is `index`.
    pub fn children_of(&self, index: u32) -> impl Iterator<Item = &ShardRecord> {
        self.listed_shards()
            .filter(move |s| s.parent == Some(index) || s.adjacent_parent == Some(index))
    }
    pub fn open_ranges(&self) -> BTreeMap<u32, HashKeyRange> {
        self.open_shards().map(|s| (s.index, s.range)).collect()
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
    /// Nodes being drained: new replicas are not placed on them.
    #[serde(default)]
    pub draining: std::collections::BTreeSet<u64>,
    /// Declared delivery streams (Firehose), by name.
    #[serde(default)]
    pub delivery_streams: BTreeMap<String, DeliveryStreamRecord>,
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
        /// MaxRecordSizeInKiB; `None` for the default.
        #[serde(default)]
        max_record_size_kib: Option<u32>,
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
    /// UpdateMaxRecordSize.
    SetMaxRecordSize {
        name: String,
        kib: u32,
    },
    /// StartStreamEncryption (`key_id` set) or StopStreamEncryption: the stream is UPDATING
    /// until the node completes the transition.
    SetEncryption {
        name: String,
        key_id: Option<String>,
        now_ms: i64,
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
    /// Starts a reshard round: adds its children (pending) and makes the stream UPDATING.
    StartReshard {
        name: String,
        steps: Vec<ReshardStep>,
        /// Replica nodes of each child, in creation order.
        placement: Vec<Vec<u64>>,
        /// UpdateShardCount's goal, kept until the last round is done.
        target: Option<u32>,
        /// Counts towards the UpdateShardCount rate limit.
        scaling: bool,
        now_ms: i64,
    },
    /// Completes the pending round: each parent closes at the log index its group sealed at
    /// and the children open. The stream is ACTIVE again unless a target is still pending.
    FinishReshard {
        name: String,
        ends: Vec<(u32, u64)>,
        now_ms: i64,
    },
    /// Forgets the stream's closed shards whose every record is past retention at `now_ms`
    /// (see [`StreamRecord::expired_shards`]); their replicas stop and their data goes.
    ExpireShards {
        name: String,
        now_ms: i64,
    },
    /// RegisterStreamConsumer: a new consumer, CREATING, within the stream's `limit`.
    RegisterConsumer {
        stream: String,
        name: String,
        tags: BTreeMap<String, String>,
        limit: u32,
        now_ms: i64,
    },
    /// CREATING → ACTIVE, or → DELETING, of the consumer created at `created_ms`.
    SetConsumerStatus {
        stream: String,
        name: String,
        created_ms: i64,
        status: ConsumerStatus,
    },
    /// Removes the consumer created at `created_ms` (its deregistration completed).
    RemoveConsumer {
        stream: String,
        name: String,
        created_ms: i64,
    },
    /// TagResource / UntagResource on a consumer ARN.
    SetConsumerTags {
        stream: String,
        name: String,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// Moves the shard's replicas to `target` (carried out by the shard's leader).
    SetReplicaTarget {
        stream: String,
        shard: u32,
        target: Vec<u64>,
    },
    /// The shard's group has `replicas` as its voters now.
    FinishReplicaChange {
        stream: String,
        shard: u32,
        replicas: Vec<u64>,
    },
    /// Marks a node as draining, or not.
    SetDraining {
        node: u64,
        draining: bool,
    },
    /// A change to the leases of a consuming application of the stream.
    Lease {
        stream: String,
        application: String,
        command: LeaseCommand,
    },
    /// PutDeliveryStream: creates the delivery stream or replaces its spec.
    PutDeliveryStream {
        name: String,
        spec_json: String,
        now_ms: i64,
    },
    /// DeleteDeliveryStream.
    RemoveDeliveryStream {
        name: String,
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
    /// The command does not fit the stream's current state (another round is pending, a shard
    /// is no longer open, ...); nothing changed.
    Conflict(String),
    /// A lease after a successful take.
    Lease(Lease),
    /// The shards whose leases a renewal kept.
    Held(Vec<u32>),
}

/// Adds (or overwrites) `add`, then removes `remove`.
pub(crate) fn change_tags(
    tags: &mut BTreeMap<String, String>,
    add: BTreeMap<String, String>,
    remove: Vec<String>,
) {
    tags.extend(add);
    for k in remove {
        tags.remove(&k);
    }
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
                max_record_size_kib,
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
                        pending: false,
                        closed_ms: None,
                        target_replicas: None,
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
                        reshard: None,
                        target_shard_count: None,
                        scaling_ms: Vec::new(),
                        consumers: BTreeMap::new(),
                        applications: BTreeMap::new(),
                        max_record_size_kib,
                        encryption: None,
                        encryption_changes_ms: Vec::new(),
                    },
                );
                CatalogReply::Done
            }
            CatalogCommand::SetStatus { name, status, now_ms } => match self.streams.get_mut(&name) {
                Some(s) => {
                    if status == StreamStatus::Active && s.reshard.is_some() {
                        return CatalogReply::Conflict("a reshard round is pending".into());
                    }
                    s.status = status;
                    s.status_changed_ms = now_ms;
                    if status == StreamStatus::Active {
                        s.target_shard_count = None;
                    }
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
            CatalogCommand::SetMaxRecordSize { name, kib } => match self.streams.get_mut(&name) {
                Some(s) => {
                    s.max_record_size_kib = Some(kib);
                    CatalogReply::Done
                }
                None => CatalogReply::NotFound,
            },
            CatalogCommand::SetEncryption { name, key_id, now_ms } => match self.streams.get_mut(&name) {
                Some(s) => {
                    if key_id.is_some() {
                        s.encryption_changes_ms
                            .retain(|&t| t > now_ms - ENCRYPTION_WINDOW_MS);
                        s.encryption_changes_ms.push(now_ms);
                    }
                    s.encryption = key_id.map(|key_id| StreamEncryption { key_id });
                    s.status = StreamStatus::Updating;
                    s.status_changed_ms = now_ms;
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
                    change_tags(&mut s.tags, add, remove);
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
            CatalogCommand::StartReshard {
                name,
                steps,
                placement,
                target,
                scaling,
                now_ms,
            } => self.start_reshard(&name, &steps, &placement, target, scaling, now_ms),
            CatalogCommand::FinishReshard { name, ends, now_ms } => self.finish_reshard(&name, &ends, now_ms),
            CatalogCommand::ExpireShards { name, now_ms } => {
                let Some(s) = self.streams.get_mut(&name) else {
                    return CatalogReply::NotFound;
                };
                let expired = s.expired_shards(now_ms);
                s.shards.retain(|sh| !expired.contains(&sh.index));
                for leases in s.applications.values_mut() {
                    leases.retain(|shard, _| !expired.contains(shard));
                }
                CatalogReply::Done
            }
            CatalogCommand::RegisterConsumer {
                stream,
                name,
                tags,
                limit,
                now_ms,
            } => self.register_consumer(&stream, &name, tags, limit, now_ms),
            CatalogCommand::SetConsumerStatus {
                stream,
                name,
                created_ms,
                status,
            } => self.set_consumer_status(&stream, &name, created_ms, status),
            CatalogCommand::RemoveConsumer {
                stream,
                name,
                created_ms,
            } => self.remove_consumer(&stream, &name, created_ms),
            CatalogCommand::SetConsumerTags {
                stream,
                name,
                add,
                remove,
            } => self.set_consumer_tags(&stream, &name, add, remove),
            CatalogCommand::Lease {
                stream,
                application,
                command,
            } => self.apply_lease(&stream, &application, command),
            CatalogCommand::SetReplicaTarget {
                stream,
                shard,
                target,
            } => self.set_replica_target(&stream, shard, target),
            CatalogCommand::FinishReplicaChange {
                stream,
                shard,
                replicas,
            } => self.finish_replica_change(&stream, shard, replicas),
            CatalogCommand::SetDraining { node, draining } => self.set_draining(node, draining),
            CatalogCommand::PutDeliveryStream {
                name,
                spec_json,
                now_ms,
            } => self.put_delivery_stream(&name, spec_json, now_ms),
            CatalogCommand::RemoveDeliveryStream { name } => self.remove_delivery_stream(&name),
        }
    }

    fn start_reshard(
        &mut self,
        name: &str,
        steps: &[ReshardStep],
        placement: &[Vec<u64>],
        target: Option<u32>,
        scaling: bool,
        now_ms: i64,
    ) -> CatalogReply {
        let first_group = self.next_group.max(1);
        let Some(s) = self.streams.get_mut(name) else {
            return CatalogReply::NotFound;
        };
        if s.reshard.is_some() {
            return CatalogReply::Conflict("a reshard round is pending".into());
        }
        let continuing = s.status == StreamStatus::Updating && s.target_shard_count.is_some();
        if s.status != StreamStatus::Active && !continuing {
            return CatalogReply::Conflict(format!("stream is {:?}", s.status));
        }
        let kids = match reshard::children(&s.open_ranges(), steps) {
            Ok(k) if !k.is_empty() => k,
            Ok(_) => return CatalogReply::Conflict("no steps".into()),
            Err(e) => return CatalogReply::Conflict(e.to_string()),
        };
        let first_index = s.shards.iter().map(|sh| sh.index + 1).max().unwrap_or(0);
        let mut children = Vec::with_capacity(kids.len());
        for (i, k) in kids.into_iter().enumerate() {
            let index = first_index + i as u32;
            children.push(index);
            s.shards.push(ShardRecord {
                index,
                group: first_group + i as u64,
                parent: Some(k.parent),
                adjacent_parent: k.adjacent_parent,
                range: k.range,
                created_ms: now_ms,
                ending_log_index: None,
                replicas: placement.get(i).cloned().unwrap_or_default(),
                pending: true,
                closed_ms: None,
                target_replicas: None,
            });
        }
        let mut parents: Vec<u32> = steps
            .iter()
            .flat_map(|st| match *st {
                ReshardStep::Split { parent, .. } => vec![parent],
                ReshardStep::Merge { parent, adjacent } => vec![parent, adjacent],
            })
            .collect();
        parents.sort_unstable();
        self.next_group = first_group + children.len() as u64;
        s.reshard = Some(PendingReshard { parents, children });
        if target.is_some() {
            s.target_shard_count = target;
        }
        if scaling {
            s.scaling_ms.retain(|&t| t > now_ms - SCALING_WINDOW_MS);
            s.scaling_ms.push(now_ms);
        }
        if s.status != StreamStatus::Updating {
            s.status = StreamStatus::Updating;
            s.status_changed_ms = now_ms;
        }
        CatalogReply::Done
    }

    fn finish_reshard(&mut self, name: &str, ends: &[(u32, u64)], now_ms: i64) -> CatalogReply {
        let Some(s) = self.streams.get_mut(name) else {
            return CatalogReply::NotFound;
        };
        let Some(pending) = s.reshard.take() else {
            return CatalogReply::Conflict("no reshard round is pending".into());
        };
        let mut sealed: Vec<u32> = ends.iter().map(|(i, _)| *i).collect();
        sealed.sort_unstable();
        if sealed != pending.parents {
            s.reshard = Some(pending);
            return CatalogReply::Conflict("the ends do not match the pending parents".into());
        }
        for sh in &mut s.shards {
            if let Some((_, at)) = ends.iter().find(|(i, _)| *i == sh.index) {
                sh.ending_log_index = Some(*at);
                sh.closed_ms = Some(now_ms);
            }
            if pending.children.contains(&sh.index) {
                sh.pending = false;
            }
        }
        if s.target_shard_count.is_none() {
            s.status = StreamStatus::Active;
            s.status_changed_ms = now_ms;
        }
        CatalogReply::Done
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
            max_record_size_kib: None,
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
    fn encryption_starts_and_stops_counting_key_changes_per_day() {
        let mut c = Catalog::default();
        c.apply(create("a", 1));
        let set = |key: Option<&str>, now_ms| CatalogCommand::SetEncryption {
            name: "a".into(),
            key_id: key.map(str::to_string),
            now_ms,
        };
        assert_eq!(c.apply(set(Some("alias/aws/kinesis"), 10)), CatalogReply::Done);
        let s = c.stream("a").unwrap();
        assert_eq!(s.encryption.as_ref().unwrap().key_id, "alias/aws/kinesis");
        assert_eq!((s.status, s.status_changed_ms), (StreamStatus::Updating, 10));
        c.apply(set(Some("k-2"), 20));
        c.apply(set(None, 30));
        let s = c.stream("a").unwrap();
        assert_eq!(s.encryption, None);
        assert_eq!(s.encryption_changes_ms, vec![10, 20]);
        // Changes older than the window drop out when the next one is recorded.
        c.apply(set(Some("k-3"), 20 + ENCRYPTION_WINDOW_MS));
        assert_eq!(
            c.stream("a").unwrap().encryption_changes_ms,
            vec![20 + ENCRYPTION_WINDOW_MS]
        );
        let missing = CatalogCommand::SetEncryption {
            name: "zz".into(),
            key_id: None,
            now_ms: 1,
        };
        assert_eq!(c.apply(missing), CatalogReply::NotFound);
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

    #[test]
    fn a_reshard_round_opens_children_only_when_it_finishes() {
        let mut c = Catalog::default();
        c.apply(create("a", 2));
        c.apply(CatalogCommand::SetStatus {
            name: "a".into(),
            status: StreamStatus::Active,
            now_ms: 2,
        });
        let at = c.stream("a").unwrap().shards[0].range.end / 2;
        let start = CatalogCommand::StartReshard {
            name: "a".into(),
            steps: vec![ReshardStep::Split { parent: 0, at }],
            placement: vec![vec![1], vec![1]],
            target: None,
            scaling: false,
            now_ms: 10,
        };
        assert_eq!(c.apply(start.clone()), CatalogReply::Done);
        let s = c.stream("a").unwrap();
        assert_eq!(s.status, StreamStatus::Updating);
        assert_eq!(s.open_shards().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(s.listed_shards().count(), 2, "pending children are not listed");
        assert_eq!(s.shards.len(), 4);
        assert_eq!((s.shards[2].group, s.shards[3].group), (3, 4));
        // One round at a time; a second start is refused without changing anything.
        assert!(matches!(c.apply(start), CatalogReply::Conflict(_)));
        assert!(matches!(
            c.apply(CatalogCommand::SetStatus {
                name: "a".into(),
                status: StreamStatus::Active,
                now_ms: 11
            }),
            CatalogReply::Conflict(_)
        ));
        // The ends must name exactly the parents.
        let wrong = CatalogCommand::FinishReshard {
            name: "a".into(),
            ends: vec![(1, 7)],
            now_ms: 12,
        };
        assert!(matches!(c.apply(wrong), CatalogReply::Conflict(_)));
        let finish = CatalogCommand::FinishReshard {
            name: "a".into(),
            ends: vec![(0, 7)],
            now_ms: 12,
        };
        assert_eq!(c.apply(finish.clone()), CatalogReply::Done);
        let s = c.stream("a").unwrap();
        assert_eq!(s.status, StreamStatus::Active);
        assert_eq!(
            s.open_shards().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            (s.shards[0].ending_log_index, s.shards[0].closed_ms),
            (Some(7), Some(12))
        );
        assert_eq!(s.children_of(0).map(|s| s.index).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(s.shards[2].range.end + 1, s.shards[3].range.start);
        // Finishing twice changes nothing.
        assert!(matches!(c.apply(finish), CatalogReply::Conflict(_)));
        assert_eq!(c.next_group, 5);

        // The closed parent goes once its records are all past retention (24 h after it
        // closed at 12 ms), and never before; open shards always stay.
        let day = 24 * 3_600_000;
        let expire = |now_ms| CatalogCommand::ExpireShards {
            name: "a".into(),
            now_ms,
        };
        assert_eq!(c.apply(expire(12 + day)), CatalogReply::Done);
        assert_eq!(c.stream("a").unwrap().shards.len(), 4);
        assert_eq!(c.stream("a").unwrap().expired_shards(13 + day), vec![0]);
        assert_eq!(c.apply(expire(13 + day)), CatalogReply::Done);
        let s = c.stream("a").unwrap();
        assert_eq!(
            s.shards.iter().map(|s| s.index).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(c.apply(expire(100 * day)), CatalogReply::Done);
        assert_eq!(c.stream("a").unwrap().shards.len(), 3);
    }

    #[test]
    fn update_shard_count_keeps_the_stream_updating_until_the_last_round() {
        let mut c = Catalog::default();
        c.apply(create("a", 1));
        c.apply(CatalogCommand::SetStatus {
            name: "a".into(),
            status: StreamStatus::Active,
            now_ms: 2,
        });
        let steps = reshard::next_round(&c.stream("a").unwrap().open_ranges(), 2);
        c.apply(CatalogCommand::StartReshard {
            name: "a".into(),
            steps,
            placement: vec![],
            target: Some(2),
            scaling: true,
            now_ms: 10,
        });
        c.apply(CatalogCommand::FinishReshard {
            name: "a".into(),
            ends: vec![(0, 3)],
            now_ms: 11,
        });
        let s = c.stream("a").unwrap();
        assert_eq!(
            (s.status, s.target_shard_count),
            (StreamStatus::Updating, Some(2))
        );
        assert_eq!(s.scaling_ms, vec![10]);
        assert!(reshard::next_round(&s.open_ranges(), 2).is_empty());
        c.apply(CatalogCommand::SetStatus {
            name: "a".into(),
            status: StreamStatus::Active,
            now_ms: 12,
        });
        let s = c.stream("a").unwrap();
        assert_eq!((s.status, s.target_shard_count), (StreamStatus::Active, None));
    }
}
