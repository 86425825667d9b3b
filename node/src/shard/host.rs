//! The set of shard replicas running on this node, kept in step with the catalog.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;

use futures::StreamExt;
use futures::stream;
use openraft::BasicNode;

use super::replica::ShardReplica;
use crate::catalog::Catalog;
use crate::catalog::ShardRecord;
use crate::catalog::StreamStatus;
use crate::raft::group::GroupEnv;
use crate::raft::group::start_shard_group;

/// How many groups start at once when a node opens many shards.
const START_CONCURRENCY: usize = 32;

/// Node id → gRPC address of every node of the cluster.
pub type NodeDirectory = Arc<dyn Fn() -> BTreeMap<u64, String> + Send + Sync>;

pub struct ShardHost {
    env: GroupEnv,
    dir: PathBuf,
    directory: NodeDirectory,
    by_group: RwLock<HashMap<u64, Arc<ShardReplica>>>,
    reconcile_lock: tokio::sync::Mutex<()>,
}

impl ShardHost {
    pub fn new(env: GroupEnv, dir: PathBuf, directory: NodeDirectory) -> ShardHost {
        ShardHost {
            env,
            dir,
            directory,
            by_group: RwLock::new(HashMap::new()),
            reconcile_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn node_id(&self) -> u64 {
        self.env.node_id
    }

    /// The replica of a Raft group, if this node hosts one.
    pub fn by_group(&self, group: u64) -> Option<Arc<ShardReplica>> {
        let map = self.by_group.read().unwrap_or_else(|p| p.into_inner());
        map.get(&group).cloned()
    }

    /// Every replica on this node, with its stream's name.
    pub fn all(&self) -> Vec<(String, Arc<ShardReplica>)> {
        let map = self.by_group.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(|r| (r.stream.clone(), r.clone())).collect()
    }

    /// Every node of the cluster and its gRPC address.
    pub fn nodes(&self) -> BTreeMap<u64, String> {
        (self.directory)()
    }

    /// The gRPC address of a node.
    pub fn address(&self, node: u64) -> Option<String> {
        (self.directory)().get(&node).cloned()
    }

    fn group_dir(&self, group: u64) -> PathBuf {
        self.dir.join(format!("{group:012}"))
    }

    fn insert(&self, replica: Arc<ShardReplica>) {
        let mut map = self.by_group.write().unwrap_or_else(|p| p.into_inner());
        map.insert(replica.shard.group, replica);
    }

    fn remove(&self, replica: &ShardReplica) {
        let mut map = self.by_group.write().unwrap_or_else(|p| p.into_inner());
        map.remove(&replica.shard.group);
    }

    /// Starts the replicas the catalog places here and stops (and deletes) the ones of deleted
    /// streams. Idempotent.
    pub async fn reconcile(&self, catalog: &Catalog) -> io::Result<()> {
        let _guard = self.reconcile_lock.lock().await;
        let node = self.env.node_id;
        let desired: Vec<(String, ShardRecord)> = catalog
            .streams
            .values()
            .filter(|s| s.status != StreamStatus::Deleting)
            .flat_map(|s| s.shards.iter().map(move |sh| (s.name.clone(), sh.clone())))
            // Nodes a replica change moves the shard to start theirs as learners-to-be.
            .filter(|(_, sh)| {
                sh.replicas.contains(&node) || sh.target_replicas.as_ref().is_some_and(|t| t.contains(&node))
            })
            .collect();
        let wanted: BTreeSet<u64> = desired.iter().map(|(_, sh)| sh.group).collect();
        for (_, replica) in self.all() {
            if !wanted.contains(&replica.shard.group) {
                replica.shutdown().await;
                self.remove(&replica);
                remove_dir(&self.group_dir(replica.shard.group));
            }
        }
        let to_start: Vec<(String, ShardRecord)> = desired
            .into_iter()
            .filter(|(_, sh)| self.by_group(sh.group).is_none())
            .collect();
        let directory = (self.directory)();
        let mut started = stream::iter(to_start)
            .map(|(s, sh)| {
                let members: BTreeMap<u64, BasicNode> = sh
                    .replicas
                    .iter()
                    .map(|n| {
                        (
                            *n,
                            BasicNode {
                                addr: directory.get(n).cloned().unwrap_or_default(),
                            },
                        )
                    })
                    .collect();
                // The first replica of the placement forms the group; the others wait to be
                // contacted by its leader.
                let initialize = sh.replicas.first() == Some(&node);
                async move {
                    let dir = self.group_dir(sh.group);
                    let group = start_shard_group(sh.group, &dir, &self.env, members, initialize).await;
                    (s, sh, group)
                }
            })
            .buffer_unordered(START_CONCURRENCY);
        while let Some((stream, shard, group)) = started.next().await {
            self.insert(Arc::new(ShardReplica::new(stream, shard, group?, node)));
        }
        drop(started);
        self.remove_orphans(catalog);
        Ok(())
    }

    /// Deletes group directories of deleted streams (a crash during DeleteStream).
    fn remove_orphans(&self, catalog: &Catalog) {
        let known: BTreeSet<u64> = catalog
            .streams
            .values()
            .flat_map(|s| s.shards.iter().map(|sh| sh.group))
            .collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(group) = name.to_str().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            // Only a group the catalog allocated and no longer lists was deleted; a group id at
            // or past `next_group` means this catalog has not caught up yet: never delete then.
            if group < catalog.next_group && !known.contains(&group) {
                remove_dir(&entry.path());
            }
        }
    }

    pub async fn shutdown(&self) {
        for (_, r) in self.all() {
            r.shutdown().await;
        }
    }
}

fn remove_dir(dir: &std::path::Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => tracing::info!(dir = %dir.display(), "removed shard data"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot remove shard data"),
    }
}
