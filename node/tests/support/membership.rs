//! Replica placement through the admin API, as the membership tests drive it.

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use tonic::transport::Channel;

use super::wait::eventually;

/// The replica set of every shard of `stream`, in shard order.
pub async fn replica_sets(admin: &mut AdminClient<Channel>, stream: &str) -> Vec<Vec<u64>> {
    let d = admin
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: stream.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .stream
        .unwrap();
    d.shards.into_iter().map(|s| s.replicas).collect()
}

/// Moves shard `index`'s replica from node `from` to node `to` and waits until the catalog
/// records the replica set `then`.
pub async fn move_replica(
    admin: &mut AdminClient<Channel>,
    stream: &str,
    (index, shard_id): (usize, &str),
    (from, to): (u64, u64),
    then: Vec<u64>,
    logs: impl Fn() -> String,
) {
    admin
        .move_replica(pb::MoveReplicaRequest {
            stream_name: stream.into(),
            shard_id: shard_id.into(),
            from_node: from,
            to_node: to,
        })
        .await
        .unwrap();
    eventually(&format!("the move to node {to}"), logs, || {
        let mut admin = admin.clone();
        let then = then.clone();
        async move { replica_sets(&mut admin, stream).await[index] == then }
    })
    .await;
}
