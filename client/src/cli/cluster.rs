//! `runnel cluster`: the nodes of a replicated cluster, replica moves and draining.

use clap::Subcommand;
use runnel_client::Client;

use super::output::Output;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// List the nodes: address, catalog voter or learner, draining, replicas, moves under way.
    Describe,
    /// Add a node that runs `runnel-node cluster --join` (normally it asks by itself).
    AddNode {
        node_id: u64,
        /// The node's gRPC HOST:PORT as the other nodes reach it.
        address: String,
    },
    /// Move every replica off a node and place no new ones on it (before removing it).
    Drain { node_id: u64 },
    /// Remove a drained node from the cluster.
    RemoveNode { node_id: u64 },
    /// Move one replica of a shard to another node.
    Move {
        stream: String,
        shard: String,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
    },
}

pub async fn run(client: &Client, out: &Output, command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Describe => {
            let cluster = client.describe_cluster().await?;
            if out.json {
                let nodes: Vec<serde_json::Value> = cluster
                    .nodes
                    .iter()
                    .map(|n| {
                        serde_json::json!({
                            "node_id": n.node_id,
                            "address": n.address,
                            "voter": n.voter,
                            "draining": n.draining,
                            "replicas": n.replicas,
                            "moving": n.moving,
                        })
                    })
                    .collect();
                return out.json_pretty(&serde_json::json!({
                    "catalog_leader": cluster.catalog_leader,
                    "nodes": nodes,
                }));
            }
            out.line("NODE  ADDRESS                 ROLE     REPLICAS  MOVING  STATE")?;
            for n in &cluster.nodes {
                let role = match (n.node_id == cluster.catalog_leader, n.voter) {
                    (true, _) => "leader",
                    (false, true) => "voter",
                    (false, false) => "learner",
                };
                let state = if n.draining { "draining" } else { "active" };
                out.line(&format!(
                    "{:<5} {:<23} {:<8} {:<9} {:<7} {state}",
                    n.node_id, n.address, role, n.replicas, n.moving
                ))?;
            }
            Ok(())
        }
        ClusterCommand::AddNode { node_id, address } => {
            client.add_node(node_id, &address).await?;
            out.line(&format!("node {node_id} added at {address}"))
        }
        ClusterCommand::Drain { node_id } => {
            let moving = client.drain_node(node_id).await?;
            out.line(&format!(
                "draining node {node_id}: {moving} replica move(s) under way (see `runnel cluster describe`)"
            ))
        }
        ClusterCommand::RemoveNode { node_id } => {
            client.remove_node(node_id).await?;
            out.line(&format!("node {node_id} removed"))
        }
        ClusterCommand::Move {
            stream,
            shard,
            from,
            to,
        } => {
            client.move_replica(&stream, &shard, from, to).await?;
            out.line(&format!("moving {stream}/{shard} from node {from} to node {to}"))
        }
    }
}
