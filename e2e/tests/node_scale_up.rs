//! Node scale-up, with the operator binary against a real API server and real
//! `runnel-node cluster` processes on loopback. There is no kubelet, so the test plays its part:
//! once the operator has grown the node StatefulSet object, the test starts the process of the
//! new ordinal (`--join` through pod 0, as the chart's start script does) and the operator
//! spreads replicas onto it.
//!
//! A 3-node cluster holds a 4-shard stream: 12 replicas, 4 per node, over the operator's bound of
//! 3 per node (`--max-replicas-per-node 3`) → the operator patches `spec.replicas` 3 → 4
//! (`NodesScaled` Event), waits for node 4 to join, then moves replicas until each node has 3.
//! At `--max-nodes 4` with 12 replicas the count is within bounds: it neither grows further nor
//! drains the new node. Nothing waits on a fixed time: every check polls with a deadline.

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
use runnel_e2e::replicas::NODE_STATEFULSET;
use runnel_e2e::replicas::assert_shards_replicated;
use runnel_e2e::replicas::wait_counts;
use runnel_e2e::replicas::wait_statefulset_replicas;
use runnel_e2e::streams::Env;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SHARDS: usize = 4;

#[test]
fn operator_grows_the_node_statefulset_and_fills_the_new_node() -> TestResult {
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
        let ns = create_namespace(&client, "e2e-grow").await?;
        let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        create_statefulset(&client, &ns, NODE_STATEFULSET, 3).await?;

        // The stream first, with an operator that does not scale nodes: 4 replicas per node.
        let mut placer = OperatorProcess::start(
            &env.kubeconfig,
            &all_nodes,
            "op-grow-streams",
            &["--namespace", &ns],
        )?;
        let name = format!("grown-{ns}");
        env.apply_stream(&ns, &name, json!({"name": name, "shardCount": SHARDS}))
            .await?;
        env.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
        let counts = wait_counts(&env, "3 nodes with 4 replicas each", |c| {
            c.len() == 3 && c.values().all(|n| *n == SHARDS)
        })
        .await?;
        println!("before scaling: {counts:?}");
        placer.kill()?;

        let operator = OperatorProcess::start(
            &env.kubeconfig,
            &all_nodes,
            "op-grow",
            &[
                "--namespace",
                &ns,
                "--placement-interval-seconds",
                "1",
                "--node-scaling",
                "--node-statefulset",
                NODE_STATEFULSET,
                "--node-namespace",
                &ns,
                "--min-nodes",
                "3",
                "--max-nodes",
                "4",
                "--max-replicas-per-node",
                "3",
            ],
        )?;
        // The operator grows the StatefulSet; its new pod (ordinal 3, node id 4) "starts".
        wait_statefulset_replicas(&sts_api, 4).await?;
        let sts_events = env.events(&ns, NODE_STATEFULSET).await?;
        assert!(
            sts_events.iter().any(|e| e == "NodesScaled"),
            "no NodesScaled Event on the StatefulSet: {sts_events:?}"
        );
        let joiner = NodeProcess::start_cluster(4, &ports[3], "", Some(&ports[0].grpc_addr()))?;

        // It joins, and placement fills it.
        let counts = wait_counts(&env, "replicas spread evenly over 4 nodes", |c| {
            c.len() == 4 && c.values().all(|n| *n == 3)
        })
        .await?;
        println!("after scaling: {counts:?}");
        assert_shards_replicated(&env, &name, SHARDS, 3, &[1, 2, 3, 4]).await?;
        // Within bounds now: still 4 pods, nobody draining.
        let sts = sts_api.get(NODE_STATEFULSET).await?;
        assert_eq!(sts.spec.and_then(|s| s.replicas), Some(4));
        let nodes = env.cluster_nodes().await?;
        assert!(nodes.iter().all(|n| !n.draining), "{nodes:?}");
        let grown = operator.metric_sum("runnel_operator_node_scaling_steps_total", "result=\"ok\"")?;
        assert!(grown >= 1.0, "scaling steps: {grown}");
        drop(joiner);
        drop(others);
        Ok(())
    })
}
