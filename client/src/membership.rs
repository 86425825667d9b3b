//! Typed calls of the cluster-membership part of the `Admin` service.

use runnel_proto::v1 as proto;

use crate::Client;
use crate::Error;
use crate::error::Subject;

impl Client {
    /// The cluster's nodes (id, address, voter, draining, replicas, moves under way) and the
    /// catalog leader's id (0 when unknown).
    pub async fn describe_cluster(&self) -> Result<proto::DescribeClusterResponse, Error> {
        let response = self
            .admin
            .clone()
            .describe_cluster(proto::DescribeClusterRequest {})
            .await
            .map_err(|s| Error::from_status(s, Subject::None))?;
        Ok(response.into_inner())
    }

    /// Adds node `node_id`, reachable at `address` (its gRPC HOST:PORT), to the cluster.
    pub async fn add_node(&self, node_id: u64, address: &str) -> Result<(), Error> {
        let request = proto::AddNodeRequest {
            node_id,
            address: address.to_string(),
        };
        self.admin
            .clone()
            .add_node(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::None))?;
        Ok(())
    }

    /// Removes a node that holds no replicas any more.
    pub async fn remove_node(&self, node_id: u64) -> Result<(), Error> {
        self.admin
            .clone()
            .remove_node(proto::RemoveNodeRequest { node_id })
            .await
            .map_err(|s| Error::from_status(s, Subject::None))?;
        Ok(())
    }

    /// Starts moving every replica off a node; answers how many moves are under way.
    pub async fn drain_node(&self, node_id: u64) -> Result<u32, Error> {
        let response = self
            .admin
            .clone()
            .drain_node(proto::DrainNodeRequest { node_id })
            .await
            .map_err(|s| Error::from_status(s, Subject::None))?;
        Ok(response.into_inner().moving)
    }

    /// Moves the replica of `shard` on node `from` to node `to`.
    pub async fn move_replica(&self, stream: &str, shard: &str, from: u64, to: u64) -> Result<(), Error> {
        let request = proto::MoveReplicaRequest {
            stream_name: stream.to_string(),
            shard_id: shard.to_string(),
            from_node: from,
            to_node: to,
        };
        self.admin
            .clone()
            .move_replica(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(stream, shard)))?;
        Ok(())
    }
}
