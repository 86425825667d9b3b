//! The cluster reconciler, with the operator binary against a real API server and real
//! `runnel-node cluster` processes on loopback standing in for the node StatefulSet's pods:
//! - replica placement: a 3-node cluster holds a 4-shard stream (12 replicas, 4 per node); a
//!   fourth node joins with `--join`; the operator moves replicas onto it (MoveReplica) until
//!   DescribeCluster shows the counts even (3 each), emitting `ReplicaMoving` Events on the
//!   Stream;
//! - node scaling: a StatefulSet object with `spec.replicas: 4` in the API server (there is no
//!   kubelet and no controller-manager: its pods never run; the four processes are its pods by
//!   id = ordinal + 1). The idle cluster needs three nodes, so the operator drains node 4, waits
//!   until it holds nothing, removes it from the cluster and patches `spec.replicas` to 3.
//!
//! Nothing waits on a fixed time: every check polls with a generous deadline.

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::cluster::install_crds;
use runnel_e2e::node_pods::create_statefulset;
use runnel_e2e::process::NodePorts;
use runnel_e2e::process::NodeProcess;
use runnel_e2e::process::OperatorProcess;
use runnel_e2e::process::grpc_addrs;
use runnel_e2e::process::start_members;
use runnel_e2e::replicas::MOVES;
use runnel_e2e::replicas::assert_shards_replicated;
use runnel_e2e::replicas::wait_counts;
use runnel_e2e::replicas::wait_statefulset_replicas;
use runnel_e2e::streams::Env;
use runnel_e2e::wait;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SHARDS: usize = 4;

#[test]
fn operator_places_replicas_and_scales_the_node_statefulset() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let client = cluster.client().await?;
        install_crds(&client).await?;

        let ports: Vec<NodePorts> = (0..4).map(|_| NodePorts::free()).collect::<Result<_, _>>()?;
        let all_nodes = grpc_addrs(&ports);
        let (env, others) = Env::with_members(&cluster, client.clone(), start_members(&ports[..3])?)?;

        let ns = create_namespace(&client, "e2e-place").await?;
        let mut operator = OperatorProcess::start(
            &env.kubeconfig,
            &all_nodes,
            "op-place",
            &[
                "--namespace",
                &ns,
                "--placement-interval-seconds",
                "1",
                "--max-moves-in-flight",
                "2",
            ],
        )?;
        let name = format!("placed-{ns}");
        env.apply_stream(&ns, &name, json!({"name": name, "shardCount": SHARDS}))
            .await?;
        env.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
        let counts = wait_counts(&env, "3 nodes with 4 replicas each", |c| {
            c.len() == 3 && c.values().all(|n| *n == SHARDS)
        })
        .await?;
        println!("before the join: {counts:?}");

        // A fourth node joins, as a pod with ordinal 3 would (`--join` through pod 0).
        let joiner = NodeProcess::start_cluster(4, &ports[3], "", Some(&ports[0].grpc_addr()))?;
        let counts = wait_counts(&env, "replicas spread evenly over 4 nodes", |c| {
            c.len() == 4 && c.values().all(|n| *n == 3)
        })
        .await?;
        println!("after the operator balanced: {counts:?}");
        assert_shards_replicated(&env, &name, SHARDS, 3, &[1, 2, 3, 4]).await?;
        let events = env.events(&ns, &name).await?;
        assert!(
            events.iter().any(|e| e == "ReplicaMoving"),
            "no ReplicaMoving Event on the Stream: {events:?}"
        );
        let started =
            operator.metric_sum("runnel_operator_placement_actions_total", "outcome=\"started\"")?;
        assert!(started >= 3.0, "moves started: {started}");
        // The operator sees its moves finish on a later round.
        let op = &operator;
        wait::until("the operator's moves in flight back to 0", MOVES, || async move {
            let n = op
                .metric_sum("runnel_operator_replica_moves_in_flight", "")
                .map_err(|e| e.to_string())?;
            if n == 0.0 {
                Ok(Some(()))
            } else {
                Err(format!("{n} in flight"))
            }
        })
        .await?;
        operator.kill()?;

        // Node scaling: the node StatefulSet (never run: no kubelet) says 4 pods.
        create_statefulset(&client, &ns, "runnel-node", 4).await?;
        let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let scaler = OperatorProcess::start(
            &env.kubeconfig,
            &all_nodes,
            "op-nodes",
            &[
                "--namespace",
                &ns,
                "--placement-interval-seconds",
                "1",
                "--node-scaling",
                "--node-statefulset",
                "runnel-node",
                "--node-namespace",
                &ns,
                "--min-nodes",
                "3",
                "--max-nodes",
                "4",
            ],
        )?;
        wait_statefulset_replicas(&sts_api, 3).await?;
        let nodes = env.cluster_nodes().await?;
        assert_eq!(
            nodes.iter().map(|n| n.node_id).collect::<Vec<_>>(),
            [1, 2, 3],
            "node 4 left the cluster: {nodes:?}"
        );
        assert_shards_replicated(&env, &name, SHARDS, 3, &[1, 2, 3]).await?;
        let sts_events = env.events(&ns, "runnel-node").await?;
        for reason in ["NodeDraining", "NodeRemoved", "NodesScaled"] {
            assert!(
                sts_events.iter().any(|e| e == reason),
                "no {reason} Event on the StatefulSet: {sts_events:?}"
            );
        }
        let steps = scaler.metric_sum("runnel_operator_node_scaling_steps_total", "result=\"ok\"")?;
        assert!(steps >= 4.0, "scaling steps: {steps}");
        drop(joiner);
        drop(others);
        Ok(())
    })
}
