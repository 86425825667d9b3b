//! Replica placement as the nodes report it, and the node StatefulSet object that stands in for
//! the chart's (`node_pods::create_statefulset`; there is no kubelet: its pods never run;
//! `runnel-node cluster` processes are its pods by node id = ordinal + 1).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;

use crate::E2eError;
use crate::Result;
use crate::streams::Env;
use crate::wait;

/// Replica moves copy a shard's log to a new node and change its Raft membership.
pub const MOVES: Duration = Duration::from_secs(240);
/// The name of the node StatefulSet the tests create.
pub const NODE_STATEFULSET: &str = "runnel-node";

/// Waits until DescribeCluster shows no move under way and replica counts (node id → replicas)
/// passing `check`.
pub async fn wait_counts(
    env: &Env,
    what: &str,
    check: impl Fn(&BTreeMap<u64, usize>) -> bool,
) -> Result<BTreeMap<u64, usize>> {
    let check = &check;
    wait::until(what, MOVES, || async move {
        let nodes = env.cluster_nodes().await.map_err(|e| e.to_string())?;
        let counts: BTreeMap<u64, usize> = nodes.iter().map(|n| (n.node_id, n.replicas as usize)).collect();
        let moving: u32 = nodes.iter().map(|n| n.moving).sum();
        if moving == 0 && check(&counts) {
            Ok(Some(counts))
        } else {
            Err(format!("replicas {counts:?}, moving {moving}"))
        }
    })
    .await
}

/// Checks that the stream has `shards` shards, each with `rf` replicas on distinct nodes, all
/// among `allowed`.
pub async fn assert_shards_replicated(
    env: &Env,
    name: &str,
    shards: usize,
    rf: usize,
    allowed: &[u64],
) -> Result<()> {
    let d = env
        .describe(name)
        .await?
        .ok_or_else(|| E2eError::Setup(format!("stream {name} missing")))?;
    if d.shards.len() != shards {
        return Err(E2eError::Setup(format!(
            "{} shards, expected {shards}",
            d.shards.len()
        )));
    }
    for s in &d.shards {
        let distinct: BTreeSet<u64> = s.replicas.iter().copied().collect();
        if distinct.len() != rf || !distinct.iter().all(|n| allowed.contains(n)) {
            return Err(E2eError::Setup(format!(
                "shard {} has replicas {:?}: expected {rf} distinct among {allowed:?}",
                s.shard_id, s.replicas
            )));
        }
    }
    Ok(())
}

/// Waits until the node StatefulSet's `spec.replicas` is `replicas` and it carries no
/// annotation (no node removal under way).
pub async fn wait_statefulset_replicas(api: &Api<StatefulSet>, replicas: i32) -> Result<()> {
    wait::until(
        &format!("the node StatefulSet scaled to {replicas}"),
        MOVES,
        || {
            let api = api.clone();
            async move {
                let sts = api.get(NODE_STATEFULSET).await.map_err(|e| e.to_string())?;
                let now = sts.spec.and_then(|s| s.replicas);
                let annotations = sts.metadata.annotations.unwrap_or_default();
                if now == Some(replicas) && annotations.is_empty() {
                    Ok(Some(()))
                } else {
                    Err(format!("replicas {now:?}, annotations {annotations:?}"))
                }
            }
        },
    )
    .await
}
