//! Cluster membership through the admin API: nodes join and leave, replicas move, nodes drain.
//! Changes of the catalog group run on its leader (forwarded there from any node); replica
//! moves are recorded in the catalog and carried out by each shard's leader
//! (`cluster::membership`).

use std::collections::BTreeMap;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;

use super::ServiceError;
use super::StreamService;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::cluster::membership;
use crate::cluster::membership::MembershipError;
use crate::cluster::placement;
use crate::model::ShardId;

/// One node as DescribeCluster shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNodeDescription {
    pub node_id: u64,
    pub address: String,
    pub voter: bool,
    pub draining: bool,
    pub replicas: u32,
    pub moving: u32,
}

impl StreamService {
    fn require_cluster(&self) -> Result<(), ServiceError> {
        if self.inner.catalog.is_cluster() {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(
                "This node runs standalone: membership changes need `runnel-node cluster`".into(),
            ))
        }
    }

    fn membership_error(&self, e: MembershipError) -> ServiceError {
        match e {
            MembershipError::UnknownNode(n) => {
                ServiceError::ResourceNotFound(format!("Node {n} is not in the cluster"))
            }
            other => ServiceError::internal(other),
        }
    }

    /// An admin client of the catalog leader, when this node does not lead the catalog.
    async fn catalog_leader_admin(
        &self,
        leader: Option<u64>,
    ) -> Result<AdminClient<tonic::transport::Channel>, ServiceError> {
        let addr = leader
            .and_then(|l| self.inner.router.host().address(l))
            .ok_or_else(|| ServiceError::internal("the catalog group has no leader right now; retry"))?;
        AdminClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| ServiceError::internal(format!("cannot reach the catalog leader at {addr}: {e}")))
    }

    /// Adds node `id` at `address` to the cluster (idempotent).
    pub async fn add_node(&self, id: u64, address: &str) -> Result<(), ServiceError> {
        self.require_cluster()?;
        if id == 0
            || address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
        {
            return Err(ServiceError::InvalidArgument(format!(
                "Node id must be 1 or more and the address HOST:PORT, got {id} at '{address}'"
            )));
        }
        let raft = self.inner.catalog.raft();
        if let Some((known, _)) = membership::catalog_members(raft).get(&id)
            && known != address
        {
            return Err(ServiceError::ResourceInUse(format!(
                "Node {id} is already a member at {known}"
            )));
        }
        match membership::add_node(raft, id, address).await {
            Ok(()) => Ok(()),
            Err(MembershipError::NotLeader(leader)) => {
                let request = pb::AddNodeRequest {
                    node_id: id,
                    address: address.to_owned(),
                };
                let mut admin = self.catalog_leader_admin(leader).await?;
                admin.add_node(request).await.map(|_| ()).map_err(forwarded)
            }
            Err(e) => Err(self.membership_error(e)),
        }
    }

    /// Removes node `id`, which must hold no replicas any more.
    pub async fn remove_node(&self, id: u64) -> Result<(), ServiceError> {
        self.require_cluster()?;
        if self.inner.view.read(|c| c.nodes_in_use().contains(&id)) {
            return Err(ServiceError::ResourceInUse(format!(
                "Node {id} still holds shard replicas; drain it first"
            )));
        }
        match membership::remove_node(self.inner.catalog.raft(), id).await {
            Ok(()) => {}
            Err(MembershipError::NotLeader(leader)) => {
                let mut admin = self.catalog_leader_admin(leader).await?;
                return admin
                    .remove_node(pb::RemoveNodeRequest { node_id: id })
                    .await
                    .map(|_| ())
                    .map_err(forwarded);
            }
            Err(e) => return Err(self.membership_error(e)),
        }
        self.propose(CatalogCommand::SetDraining {
            node: id,
            draining: false,
        })
        .await?;
        Ok(())
    }

    /// Starts moving every replica off node `id` and keeps new ones away from it; answers how
    /// many replica moves are under way. Run again to continue after a move was refused.
    pub async fn drain_node(&self, id: u64) -> Result<u32, ServiceError> {
        self.require_cluster()?;
        let nodes = self.inner.router.host().nodes();
        if !nodes.contains_key(&id) {
            return Err(ServiceError::ResourceNotFound(format!(
                "Node {id} is not in the cluster"
            )));
        }
        let (draining, shards) = self.inner.view.read(|c| {
            let shards: Vec<((String, u32), Vec<u64>)> = c
                .streams
                .values()
                .flat_map(|s| {
                    s.shards.iter().filter(|sh| !sh.pending).map(move |sh| {
                        let current = sh.target_replicas.clone().unwrap_or_else(|| sh.replicas.clone());
                        ((s.name.clone(), sh.index), current)
                    })
                })
                .collect();
            (c.draining.clone(), shards)
        });
        let others: Vec<u64> = nodes
            .keys()
            .copied()
            .filter(|n| *n != id && !draining.contains(n))
            .collect();
        let (moves, stuck) = placement::plan_drain(id, &shards, &others);
        if !stuck.is_empty() {
            let names: Vec<String> = stuck
                .iter()
                .map(|(s, i)| format!("{s}/{}", ShardId(*i)))
                .collect();
            return Err(ServiceError::ResourceInUse(format!(
                "Cannot drain node {id}: no other node can take a replica of {}",
                names.join(", ")
            )));
        }
        self.propose(CatalogCommand::SetDraining {
            node: id,
            draining: true,
        })
        .await?;
        let mut moving = 0;
        for ((stream, shard), target) in moves {
            let reply = self
                .propose(CatalogCommand::SetReplicaTarget {
                    stream,
                    shard,
                    target,
                })
                .await?;
            if reply == CatalogReply::Done {
                moving += 1;
            }
        }
        Ok(moving)
    }

    /// Moves the replica of a shard on node `from` to node `to`.
    pub async fn move_replica(
        &self,
        stream: &str,
        shard_id: &str,
        from: u64,
        to: u64,
    ) -> Result<(), ServiceError> {
        self.require_cluster()?;
        let record = self.stream_record(stream)?;
        let shard = ShardId::parse(shard_id)
            .and_then(|id| record.shard(id.0))
            .filter(|sh| !sh.pending)
            .ok_or_else(|| {
                ServiceError::ResourceNotFound(format!(
                    "Shard {shard_id} in stream {stream} under account {} does not exist",
                    self.config().account
                ))
            })?;
        if !self.inner.router.host().nodes().contains_key(&to) {
            return Err(ServiceError::ResourceNotFound(format!(
                "Node {to} is not in the cluster"
            )));
        }
        if !shard.replicas.contains(&from) || shard.replicas.contains(&to) {
            return Err(ServiceError::InvalidArgument(format!(
                "Shard {shard_id} has replicas on {:?}: a move takes one of them to a node without one",
                shard.replicas
            )));
        }
        let mut target: Vec<u64> = shard.replicas.iter().copied().filter(|n| *n != from).collect();
        target.push(to);
        let command = CatalogCommand::SetReplicaTarget {
            stream: stream.to_owned(),
            shard: shard.index,
            target,
        };
        match self.propose(command).await? {
            CatalogReply::Done => Ok(()),
            CatalogReply::NotFound => Err(self.not_found(stream)),
            _ => Err(ServiceError::ResourceInUse(format!(
                "Another replica change of shard {shard_id} is under way"
            ))),
        }
    }

    /// The cluster's nodes and the catalog group's leader.
    pub fn describe_cluster(&self) -> (Vec<ClusterNodeDescription>, Option<u64>) {
        let raft = self.inner.catalog.raft();
        let members = membership::catalog_members(raft);
        let leader = {
            use openraft::async_runtime::WatchReceiver;
            raft.metrics().borrow_watched().current_leader
        };
        let (draining, replicas, moving) = self.inner.view.read(|c| {
            let mut replicas: BTreeMap<u64, u32> = BTreeMap::new();
            let mut moving: BTreeMap<u64, u32> = BTreeMap::new();
            for sh in c.streams.values().flat_map(|s| s.shards.iter()) {
                let target = sh.target_replicas.clone().unwrap_or_default();
                for n in sh
                    .replicas
                    .iter()
                    .chain(target.iter().filter(|n| !sh.replicas.contains(n)))
                {
                    *replicas.entry(*n).or_default() += 1;
                }
                if sh.target_replicas.is_some() {
                    for n in sh
                        .replicas
                        .iter()
                        .filter(|n| !target.contains(n))
                        .chain(target.iter().filter(|n| !sh.replicas.contains(n)))
                    {
                        *moving.entry(*n).or_default() += 1;
                    }
                }
            }
            (c.draining.clone(), replicas, moving)
        });
        let nodes = members
            .into_iter()
            .map(|(id, (address, voter))| ClusterNodeDescription {
                node_id: id,
                address,
                voter,
                draining: draining.contains(&id),
                replicas: replicas.get(&id).copied().unwrap_or(0),
                moving: moving.get(&id).copied().unwrap_or(0),
            })
            .collect();
        (nodes, leader)
    }
}

/// The catalog leader's answer to a forwarded call, as this node's error.
fn forwarded(status: tonic::Status) -> ServiceError {
    match status.code() {
        tonic::Code::NotFound => ServiceError::ResourceNotFound(status.message().to_owned()),
        tonic::Code::InvalidArgument => ServiceError::InvalidArgument(status.message().to_owned()),
        tonic::Code::FailedPrecondition => ServiceError::ResourceInUse(status.message().to_owned()),
        _ => ServiceError::internal(status.message()),
    }
}
