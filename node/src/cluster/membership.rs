//! Membership changes carried out in Raft groups: nodes joining and leaving the catalog group,
//! and shard replica moves (learners catch up, then the voters are replaced) driven by the
//! shard's leader from the target replica sets recorded in the catalog.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use openraft::BasicNode;
use openraft::ChangeMembers;
use openraft::async_runtime::WatchReceiver;

use super::CatalogClient;
use crate::catalog::CatalogCommand;
use crate::catalog::ShardRecord;
use crate::node::MAX_CATALOG_VOTERS;
use crate::raft::catalog_sm::CatalogView;
use crate::raft::group::CatalogRaftHandle;
use crate::shard::ShardHost;
use crate::shard::ShardReplica;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// This node does not lead the catalog group; the leader's id when known.
    #[error("this node does not lead the catalog group")]
    NotLeader(Option<u64>),
    #[error("node {0} is not a member of the cluster")]
    UnknownNode(u64),
    #[error("membership change failed: {0}")]
    Raft(String),
}

fn raft_err(e: impl std::fmt::Display) -> MembershipError {
    MembershipError::Raft(e.to_string())
}

/// The catalog group's members: node id → (address, voter?).
pub fn catalog_members(raft: &CatalogRaftHandle) -> BTreeMap<u64, (String, bool)> {
    let m = raft.metrics().borrow_watched().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    membership
        .nodes()
        .map(|(id, n)| (*id, (n.addr.clone(), voters.contains(id))))
        .collect()
}

fn ensure_leader(raft: &CatalogRaftHandle) -> Result<(), MembershipError> {
    let m = raft.metrics().borrow_watched().clone();
    if m.current_leader == Some(m.id) {
        Ok(())
    } else {
        Err(MembershipError::NotLeader(m.current_leader))
    }
}

/// Adds a node to the cluster (on the catalog leader): a learner of the catalog group until it
/// has caught up, then a voter while the group has fewer than five. Idempotent.
pub async fn add_node(raft: &CatalogRaftHandle, id: u64, addr: &str) -> Result<(), MembershipError> {
    ensure_leader(raft)?;
    if !catalog_members(raft).contains_key(&id) {
        raft.add_learner(
            id,
            BasicNode {
                addr: addr.to_owned(),
            },
            true,
        )
        .await
        .map_err(raft_err)?;
    }
    // Read again: the learner was just added.
    let members = catalog_members(raft);
    let voters = members.values().filter(|(_, v)| *v).count();
    let is_voter = members.get(&id).is_some_and(|(_, v)| *v);
    if !is_voter && voters < MAX_CATALOG_VOTERS {
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(raft_err)?;
    }
    Ok(())
}

/// Removes a node from the catalog group (on the catalog leader), promoting a learner in its
/// place when it was a voter. The caller makes sure it holds no replicas any more.
pub async fn remove_node(raft: &CatalogRaftHandle, id: u64) -> Result<(), MembershipError> {
    ensure_leader(raft)?;
    let members = catalog_members(raft);
    let Some((_, voter)) = members.get(&id) else {
        return Err(MembershipError::UnknownNode(id));
    };
    if *voter {
        // A learner takes the voter's place first, so the group never shrinks needlessly.
        if let Some(learner) = members
            .iter()
            .find(|(n, (_, v))| !*v && **n != id)
            .map(|(n, _)| *n)
        {
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([learner])), false)
                .await
                .map_err(raft_err)?;
        }
        raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
            .await
            .map_err(raft_err)?;
    } else {
        raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
            .await
            .map_err(raft_err)?;
    }
    Ok(())
}

/// Carries out the replica changes recorded in the catalog for the shards this node leads:
/// runs for the node's lifetime, looking again whenever the catalog changes and every second.
pub async fn drive_replica_changes(host: Arc<ShardHost>, view: CatalogView, catalog: CatalogClient) {
    let in_flight: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let mut changes = view.changes();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        let pending: Vec<(String, ShardRecord)> = view.read(|c| {
            c.streams
                .values()
                .flat_map(|s| s.shards.iter().map(move |sh| (s.name.clone(), sh.clone())))
                .filter(|(_, sh)| sh.target_replicas.is_some())
                .collect()
        });
        for (stream, shard) in pending {
            let Some(replica) = host.by_group(shard.group) else {
                continue;
            };
            if replica.leadership().is_err() {
                continue;
            }
            let started = in_flight
                .lock()
                .map(|mut f| f.insert(shard.group))
                .unwrap_or(false);
            if !started {
                continue;
            }
            let (host, catalog, in_flight) = (host.clone(), catalog.clone(), in_flight.clone());
            tokio::spawn(async move {
                match change_replicas(&host, &replica, &stream, &shard, &catalog).await {
                    Ok(()) => {
                        tracing::info!(stream = %stream, group = shard.group, replicas = ?shard.target_replicas, "replica change done")
                    }
                    Err(e) => {
                        tracing::warn!(stream = %stream, group = shard.group, error = %e, "replica change failed; will retry")
                    }
                }
                if let Ok(mut f) = in_flight.lock() {
                    f.remove(&shard.group);
                }
            });
        }
    }
}

/// Moves one shard's group to its target voters: each new node joins as a learner and catches
/// up (from the log: shard groups never snapshot), then the voters are replaced in one joint
/// change, then the catalog records the new replica set (the nodes that left then stop their
/// replicas and delete the data). Safe to run again after a crash at any point.
async fn change_replicas(
    host: &ShardHost,
    replica: &ShardReplica,
    stream: &str,
    shard: &ShardRecord,
    catalog: &CatalogClient,
) -> Result<(), String> {
    let Some(target) = shard.target_replicas.clone() else {
        return Ok(());
    };
    let raft = &replica.group().raft;
    // A quiesced group ticks again, and its leader renews its lease (membership changes are
    // writes); it stays awake while the change is under way (learners, joint membership).
    replica.wake_for_write().await;
    let want: BTreeSet<u64> = target.iter().copied().collect();
    let voters: BTreeSet<u64> = raft
        .metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    if voters != want {
        for n in want.difference(&voters) {
            let addr = host
                .address(*n)
                .ok_or_else(|| format!("node {n} is not in the cluster"))?;
            raft.add_learner(*n, BasicNode { addr }, true)
                .await
                .map_err(|e| format!("add learner {n}: {e}"))?;
        }
        raft.change_membership(ChangeMembers::ReplaceAllVoters(want), false)
            .await
            .map_err(|e| format!("change voters: {e}"))?;
    }
    catalog
        .propose(
            CatalogCommand::FinishReplicaChange {
                stream: stream.to_owned(),
                shard: shard.index,
                replicas: target,
            },
            0,
        )
        .await
        .map_err(|e| format!("record the change: {e}"))?;
    Ok(())
}
