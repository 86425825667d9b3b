//! Zone-aware replica placement, with the operator binary against a real API server and four
//! real `runnel-node cluster` processes on loopback standing in for the node StatefulSet's
//! pods `runnel-node-0..3` (node id = ordinal + 1).
//!
//! The API server holds what the operator reads to place them: four Kubernetes Node objects
//! with zone labels — nodes 1 and 2 in `zone-a`, node 3 in `zone-b` (its Node also carries the
//! capacity annotation `runnel.dev/capacity-bytes-per-sec`), node 4 in `zone-c` through the
//! legacy `failure-domain.beta.kubernetes.io/zone` label — and four Pod objects named like the
//! StatefulSet's pods with `spec.nodeName` set. There is no scheduler and no kubelet: the API
//! server accepts such pods (binding by `spec.nodeName` needs neither), and they never run; the
//! loopback processes are what the operator talks to (`--nodes`), while it looks the pods up by
//! name (`--node-statefulset`, `--node-namespace`).
//!
//! The nodes place a new 4-shard stream without knowing zones (least-loaded: 3 replicas per
//! node, so some shard has both zone-a nodes); the operator must move replicas until every
//! shard has one replica in each of the three zones, and the Stream's status must list each
//! replica's zone beside it (`replicaZones`). Nothing waits on a fixed time: every check polls
//! with a generous deadline.

use std::collections::BTreeSet;
use std::time::Duration;

use kube::Client;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::cluster::install_crds;
use runnel_e2e::cluster::random_suffix;
use runnel_e2e::node_pods::LEGACY_ZONE_LABEL;
use runnel_e2e::node_pods::Placed;
use runnel_e2e::node_pods::ZONE_LABEL;
use runnel_e2e::node_pods::create_hosts;
use runnel_e2e::node_pods::create_pods;
use runnel_e2e::node_pods::delete_hosts;
use runnel_e2e::process::NodePorts;
use runnel_e2e::process::OperatorProcess;
use runnel_e2e::process::grpc_addrs;
use runnel_e2e::process::start_members;
use runnel_e2e::streams::Env;
use runnel_e2e::streams::check_replica_zones;
use runnel_e2e::wait;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Replica moves copy a shard's log to a new node and change its Raft membership.
const MOVES: Duration = Duration::from_secs(240);
const SHARDS: usize = 4;
const STATEFULSET: &str = "runnel-node";
/// Runnel node id → its pod's Kubernetes Node's zone label and zone; node 3's Node carries the
/// capacity annotation (512 MiB/s).
const LAYOUT: [Placed<'static>; 4] = [
    Placed::new(1, ZONE_LABEL, "zone-a"),
    Placed::new(2, ZONE_LABEL, "zone-a"),
    Placed::new(3, ZONE_LABEL, "zone-b").with_capacity("512Mi"),
    Placed::new(4, LEGACY_ZONE_LABEL, "zone-c"),
];

#[test]
fn operator_spreads_replicas_across_the_zones_of_the_pods_nodes() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = cluster.client().await?;
        install_crds(&client).await?;
        // Nodes are cluster-scoped: unique names, deleted afterwards even when the test fails.
        let prefix = format!("runnel-e2e-{}", random_suffix());
        let result = run(&cluster, &client, &prefix).await;
        delete_hosts(&client, &prefix, &LAYOUT).await;
        result
    })
}

async fn run(cluster: &Cluster, client: &Client, prefix: &str) -> TestResult {
    let ns = create_namespace(client, "e2e-zones").await?;
    create_hosts(client, prefix, &LAYOUT).await?;
    create_pods(client, &ns, STATEFULSET, prefix, &LAYOUT).await?;
    let zone_of = runnel_e2e::node_pods::zone_of(&LAYOUT);

    // Four cluster members from the start: the nodes place the stream over all four.
    let ports: Vec<NodePorts> = (0..4).map(|_| NodePorts::free()).collect::<Result<_, _>>()?;
    let (env, _others) = Env::with_members(cluster, client.clone(), start_members(&ports)?)?;

    let operator = OperatorProcess::start(
        &env.kubeconfig,
        &grpc_addrs(&ports),
        "op-zones",
        &[
            "--namespace",
            &ns,
            "--placement-interval-seconds",
            "1",
            "--max-moves-in-flight",
            "2",
            "--node-statefulset",
            STATEFULSET,
            "--node-namespace",
            &ns,
        ],
    )?;
    let name = format!("zoned-{ns}");
    env.apply_stream(&ns, &name, json!({"name": name, "shardCount": SHARDS}))
        .await?;
    env.wait_condition(&ns, &name, "Ready", "True", "Active").await?;

    // The operator read every node's zone and capacity (its placement inputs).
    let op = &operator;
    wait::until(
        "the operator's view of zones and capacities",
        MOVES,
        || async move {
            let text = op.metrics().map_err(|e| e.to_string())?;
            let series: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("runnel_operator_node_capacity_bytes_per_second{"))
                .collect();
            let want = [
                ("1", "zone-a", 64.0 * 1024.0 * 1024.0),
                ("2", "zone-a", 64.0 * 1024.0 * 1024.0),
                ("3", "zone-b", 512.0 * 1024.0 * 1024.0),
                ("4", "zone-c", 64.0 * 1024.0 * 1024.0),
            ];
            let all = want.iter().all(|(node, zone, capacity)| {
                series.iter().any(|l| {
                    l.contains(&format!("node=\"{node}\""))
                        && l.contains(&format!("zone=\"{zone}\""))
                        && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(*capacity)
                })
            });
            if all {
                Ok(Some(()))
            } else {
                Err(format!("{series:?}"))
            }
        },
    )
    .await?;

    // Every shard ends up with one replica in each zone, and nothing moving.
    let env_ref = &env;
    let zone_of = &zone_of;
    let name_ref = &name;
    let layout = wait::until(
        "every shard's replicas in three distinct zones",
        MOVES,
        || async move {
            let moving = moves_under_way(env_ref).await.map_err(|e| e.to_string())?;
            let d = env_ref
                .describe(name_ref)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("stream missing")?;
            let replicas: Vec<Vec<u64>> = d.shards.iter().map(|s| s.replicas.clone()).collect();
            let spread = replicas.len() == SHARDS
                && replicas.iter().all(|r| {
                    let zones: BTreeSet<&str> = r.iter().filter_map(|n| zone_of.get(n).copied()).collect();
                    r.len() == 3 && zones.len() == 3
                });
            if moving == 0 && spread {
                Ok(Some(replicas))
            } else {
                Err(format!("replicas {replicas:?}, moving {moving}"))
            }
        },
    )
    .await?;
    println!("placed across zones: {layout:?}");
    for r in &layout {
        assert!(
            r.contains(&3) && r.contains(&4),
            "zone-b and zone-c each have one node: {r:?}"
        );
    }

    // The Stream's status lists each replica's zone beside it (once it has been reconciled
    // after the last move: at most a resync later).
    let obj = env
        .wait_stream(
            &ns,
            &name,
            "replica zones in the Stream status",
            MOVES,
            |obj, _| {
                check_replica_zones(obj, zone_of)?;
                let shards = runnel_e2e::streams::open_shard_zones(obj);
                let spread = shards.len() == SHARDS
                    && shards
                        .values()
                        .all(|(_, zones)| zones.iter().collect::<BTreeSet<_>>().len() == 3);
                spread
                    .then_some(())
                    .ok_or_else(|| format!("not spread yet: {shards:?}"))
            },
        )
        .await?;
    println!(
        "status: {}",
        serde_json::to_string(&obj["status"]["shards"]).unwrap_or_default()
    );

    // The nodes' own placement keeps 3 replicas per node; zone spread needs 4 on nodes 3 and 4,
    // so the operator moved at least two replicas, and said so on the Stream.
    let started = operator.metric_sum("runnel_operator_placement_actions_total", "outcome=\"started\"")?;
    assert!(started >= 2.0, "moves started: {started}");
    let events = env.events(&ns, &name).await?;
    assert!(
        events.iter().any(|e| e == "ReplicaMoving"),
        "no ReplicaMoving Event on the Stream: {events:?}"
    );
    Ok(())
}

/// Replica moves under way in the cluster (DescribeCluster).
async fn moves_under_way(env: &Env) -> runnel_e2e::Result<u32> {
    Ok(env.cluster_nodes().await?.iter().map(|n| n.moving).sum())
}
