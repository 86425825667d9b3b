//! Changes to running streams and autoscaling, with the operator binary against a real API
//! server and a real `runnel-node standalone`:
//! - `shardCount` 2 → 4 (one UpdateShardCount) and 4 → 1 (two steps: a call may at most halve),
//!   tags and mode, each checked in the status and in the node's own DescribeStream;
//! - `runnel-bench` load above the autoscaling target → the operator splits the hot shard
//!   (SplitShard), and the status shows the children, the rates and the scaling time;
//! - `consumers` registered as enhanced fan-out consumers (ACTIVE, with ARNs in the status),
//!   one removed from the spec deregistered, one registered through the API left alone;
//! - a shard-count change the node refuses (its daily UpdateShardCount limit) →
//!   `Scaling=False ScalingBlocked` and a Warning Event, nothing changed.
//!
//! Nothing waits on a fixed time: every check polls with a generous deadline.
//!
//! One `#[test]` owns the cluster so that a control plane started here is stopped afterwards.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;

use kube::api::DeleteParams;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::process::BenchProcess;
use runnel_e2e::process::NodeProcess;
use runnel_e2e::process::OperatorProcess;
use runnel_e2e::streams::Env;
use runnel_e2e::streams::closed_shards;
use runnel_e2e::streams::condition;
use runnel_e2e::streams::node_open_shards;
use runnel_e2e::streams::open_shards;
use runnel_proto::v1 as pb;
use serde_json::Value;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Resharding rounds and a sustained load take longer than a plain create.
const RESHARD: Duration = Duration::from_secs(180);
/// The autoscaler needs a full window of samples above target, then the split.
const AUTOSCALE: Duration = Duration::from_secs(300);

#[test]
fn operator_changes_and_scales_running_streams() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let env = Env::start(&cluster).await?;
        spec_changes(&env).await?;
        consumers_follow_the_spec(&env).await?;
        autoscaling_splits_the_hot_shard(&env).await?;
        // A node allowing one UpdateShardCount per day: the second is refused and reported.
        let limited = Env {
            client: env.client.clone(),
            kubeconfig: env.kubeconfig.clone(),
            node: NodeProcess::start_with(&["--scalings-per-day-limit", "1"])?,
        };
        refused_scaling_is_reported(&limited).await?;
        Ok(())
    })
}

async fn spec_changes(env: &Env) -> TestResult {
    let ns = create_namespace(&env.client, "e2e-spec").await?;
    let _operator = OperatorProcess::start(
        &env.kubeconfig,
        &env.node.grpc_addr,
        "op-spec",
        &["--namespace", &ns],
    )?;
    let name = format!("resized-{ns}");
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 2, "tags": {"team": "a"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    env.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
    let first = env.wait_open_shards(&ns, &name, 2, RESHARD).await?;
    let originals: BTreeSet<String> = open_shards(&first).into_keys().collect();

    // 2 → 4: one UpdateShardCount; tags changed and added in the same edit.
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 4, "tags": {"team": "b", "env": "test"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    let obj = env.wait_open_shards(&ns, &name, 4, RESHARD).await?;
    env.assert_node_agrees(&name, &obj).await?;
    for (id, (parent, _)) in open_shards(&obj) {
        let parent = parent.ok_or_else(|| format!("{id} has no parent"))?;
        assert!(
            originals.contains(&parent),
            "{id}'s parent {parent} is not an original shard"
        );
    }
    // The parents are listed, closed, as lineage.
    let closed = closed_shards(&obj);
    assert_eq!(closed, originals);
    assert!(obj.pointer("/status/lastScalingTime").is_some());
    let d = env.describe(&name).await?.ok_or("stream missing")?;
    assert_eq!(d.tags.get("team").map(String::as_str), Some("b"));
    assert_eq!(d.tags.get("env").map(String::as_str), Some("test"));
    assert!(d.tags.contains_key("runnel.dev/owner"));

    // 4 → 1: a call may at most halve, so the operator steps 4 → 2 → 1; a removed tag goes.
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 1, "tags": {"team": "b"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    let obj = env.wait_open_shards(&ns, &name, 1, RESHARD).await?;
    env.assert_node_agrees(&name, &obj).await?;
    let d = env.describe(&name).await?.ok_or("stream missing")?;
    assert!(!d.tags.contains_key("env"), "tags {:?}", d.tags);
    let events = env.events(&ns, &name).await?;
    let updates = events.iter().filter(|r| *r == "ShardCountUpdated").count();
    assert!(updates >= 3, "2→4, 4→2, 2→1 expected, events {events:?}");
    assert!(events.iter().any(|r| r == "TagsUpdated"), "events {events:?}");

    // Mode: PROVISIONED → ON_DEMAND (autoscaling off, so the layout stays).
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "streamModeDetails": {"streamMode": "ON_DEMAND"}, "autoscaling": {"enabled": false}, "tags": {"team": "b"}, "deletionPolicy": "Delete"}),
    )
    .await?;
    env.wait_node(&format!("{name} ON_DEMAND"), |d| {
        d.is_some_and(|d| {
            d.mode == pb::StreamMode::OnDemand as i32 && d.status == pb::StreamStatus::Active as i32
        })
    })
    .await?;
    env.wait_open_shards(&ns, &name, 1, RESHARD).await?;
    assert!(env.events(&ns, &name).await?.iter().any(|r| r == "ModeUpdated"));

    env.streams(&ns).delete(&name, &DeleteParams::default()).await?;
    env.wait_gone(&ns, &name).await?;
    Ok(())
}

/// Managed consumers in the status: name → (ARN, status).
fn status_consumers(obj: &Value) -> BTreeMap<String, (String, String)> {
    obj.pointer("/status/consumers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c["consumerName"].as_str()?.to_string(),
                (
                    c["consumerARN"].as_str()?.to_string(),
                    c["consumerStatus"].as_str()?.to_string(),
                ),
            ))
        })
        .collect()
}

/// The node's consumers of `stream`: name → ARN.
async fn node_consumers(
    env: &Env,
    stream: &str,
) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let listed = env
        .admin()
        .await?
        .list_consumers(pb::ListConsumersRequest {
            stream_name: stream.into(),
        })
        .await?
        .into_inner();
    Ok(listed
        .consumers
        .into_iter()
        .map(|c| (c.consumer_name, c.consumer_arn))
        .collect())
}

async fn wait_consumers(
    env: &Env,
    ns: &str,
    name: &str,
    want: &[&str],
) -> Result<Value, Box<dyn std::error::Error>> {
    let what = format!("Stream {ns}/{name} with ACTIVE consumers {want:?} in its status");
    Ok(env
        .wait_stream(ns, name, &what, RESHARD, |obj, _| {
            let listed = status_consumers(obj);
            let names: Vec<&str> = listed.keys().map(String::as_str).collect();
            if names == want && listed.values().all(|(_, s)| s == "ACTIVE") {
                Ok(())
            } else {
                Err(format!("status consumers {listed:?}"))
            }
        })
        .await?)
}

async fn consumers_follow_the_spec(env: &Env) -> TestResult {
    let ns = create_namespace(&env.client, "e2e-consumers").await?;
    let _operator = OperatorProcess::start(
        &env.kubeconfig,
        &env.node.grpc_addr,
        "op-consumers",
        &["--namespace", &ns],
    )?;
    let name = format!("fanout-{ns}");
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 1, "consumers": ["audit", "fraud"], "deletionPolicy": "Delete"}),
    )
    .await?;
    let obj = wait_consumers(env, &ns, &name, &["audit", "fraud"]).await?;
    // The status carries the node's consumer ARNs (what SubscribeToShard takes).
    let on_node = node_consumers(env, &name).await?;
    let in_status: BTreeMap<String, String> = status_consumers(&obj)
        .into_iter()
        .map(|(n, (arn, _))| (n, arn))
        .collect();
    assert_eq!(in_status, on_node);
    assert_eq!(condition(&obj, "Degraded").map(|c| c.0), Some("False".into()));

    // An application registers its own consumer through the API; then "fraud" leaves the spec.
    env.admin()
        .await?
        .register_consumer(pb::RegisterConsumerRequest {
            stream_name: name.clone(),
            consumer_name: "kcl-app".into(),
        })
        .await?;
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 1, "consumers": ["audit"], "deletionPolicy": "Delete"}),
    )
    .await?;
    wait_consumers(env, &ns, &name, &["audit"]).await?;
    // The status drops a consumer once it is gone from the node (it is listed while DELETING);
    // the one registered through the API was never the operator's.
    let names: Vec<String> = node_consumers(env, &name).await?.into_keys().collect();
    assert_eq!(names, ["audit", "kcl-app"]);
    let events = env.events(&ns, &name).await?;
    assert!(
        events.iter().any(|r| r == "ConsumerRegistered"),
        "events {events:?}"
    );
    assert!(
        events.iter().any(|r| r == "ConsumerDeregistered"),
        "events {events:?}"
    );

    env.streams(&ns).delete(&name, &DeleteParams::default()).await?;
    env.wait_gone(&ns, &name).await?;
    Ok(())
}

async fn autoscaling_splits_the_hot_shard(env: &Env) -> TestResult {
    let ns = create_namespace(&env.client, "e2e-auto").await?;
    let _operator = env.start_autoscaling_operator(&ns, "op-auto")?;
    let name = format!("hot-{ns}");
    // Target 5 % of a shard (50 records/s or ~52 KB/s); at most 2 shards, so exactly one split.
    env.apply_stream(
        &ns,
        &name,
        json!({
            "name": name,
            "shardCount": 1,
            "autoscaling": {
                "enabled": true,
                "minShards": 1,
                "maxShards": 2,
                "targetUtilizationPercent": 5,
                "scaleUpWindowSeconds": 5,
                "scaleUpCooldownSeconds": 1
            },
            "deletionPolicy": "Delete"
        }),
    )
    .await?;
    let ready = env.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
    let hot: Vec<String> = open_shards(&ready).into_keys().collect();
    let [hot] = hot.as_slice() else {
        return Err(format!("expected one shard, got {hot:?}").into());
    };
    // Idle: no split.
    assert!(ready.pointer("/status/lastScalingTime").is_none());

    // ~400 records/s of 512 bytes: 40 % of a shard's record limit, far above the 5 % target.
    let endpoint = format!("http://{}", env.node.grpc_addr);
    let mut bench = BenchProcess::start(&[
        "produce",
        "--endpoint",
        &endpoint,
        "--stream",
        &name,
        "--record-size",
        "512",
        "--batch-size",
        "50",
        "--concurrency",
        "2",
        "--rate",
        "400",
        "--duration",
        "600",
    ])?;
    let obj = env
        .wait_stream(
            &ns,
            &name,
            "the hot shard split in status",
            AUTOSCALE,
            |obj, _| {
                let rate = obj
                    .pointer("/status/observedRates/incomingRecordsPerSecond")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                let open = open_shards(obj);
                let children = open
                    .values()
                    .filter(|(parent, _)| parent.as_deref() == Some(hot.as_str()))
                    .count();
                if open.len() == 2 && children == 2 {
                    Ok(())
                } else {
                    Err(format!(
                        "{} open shards, {children} children of {hot}, rate {rate}",
                        open.len()
                    ))
                }
            },
        )
        .await?;
    // The load was measured: the rates in status came from the node's per-shard counters.
    let metrics = env.node.metrics()?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("runnel_shard_incoming_records_total") && l.contains(hot.as_str())),
        "no per-shard counter for {hot}"
    );
    let autoscaling = obj.pointer("/status/autoscaling").cloned().unwrap_or_default();
    let action = autoscaling["lastAction"].as_str().unwrap_or_default();
    assert!(
        action.starts_with(&format!("SplitShard {hot}")),
        "autoscaling status {autoscaling}"
    );
    assert!(
        autoscaling["lastActionReason"]
            .as_str()
            .is_some_and(|r| r.contains("stayed above 5% utilisation")),
        "autoscaling status {autoscaling}"
    );
    assert!(obj.pointer("/status/lastScalingTime").is_some());
    let events = env.events(&ns, &name).await?;
    assert!(events.iter().any(|r| r == "ShardSplit"), "events {events:?}");
    let d = env.describe(&name).await?.ok_or("stream missing")?;
    let node_open = node_open_shards(&d);
    assert_eq!(node_open.len(), 2);
    assert!(
        d.shards
            .iter()
            .filter(|s| node_open.contains(&s.shard_id))
            .all(|s| s.parent_shard_id == *hot)
    );

    // While the load goes on, the rates show up per shard and for the stream.
    env.wait_stream(&ns, &name, "observed rates in status", AUTOSCALE, |obj, _| {
        let stream_rate = obj
            .pointer("/status/observedRates/incomingRecordsPerSecond")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let shard_rates = obj
            .pointer("/status/shards")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s["incomingRecordsPerSecond"].as_f64())
            .filter(|r| *r > 0.0)
            .count();
        if stream_rate > 0.0 && shard_rates > 0 {
            Ok(())
        } else {
            Err(format!(
                "stream rate {stream_rate}, {shard_rates} shards with a rate"
            ))
        }
    })
    .await?;
    assert!(bench.running()?, "runnel-bench stopped early:\n{}", bench.log());
    drop(bench);

    // At maxShards: no further split; the cold pair is far younger than the merge window.
    let obj = env
        .wait_stream(
            &ns,
            &name,
            "the autoscaler's later decisions",
            AUTOSCALE,
            |obj, _| {
                let decision = obj
                    .pointer("/status/autoscaling/lastDecision")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if decision.is_empty() {
                    Err("no decision yet".into())
                } else {
                    Ok(())
                }
            },
        )
        .await?;
    assert_eq!(open_shards(&obj).len(), 2);
    env.streams(&ns).delete(&name, &DeleteParams::default()).await?;
    env.wait_gone(&ns, &name).await?;
    Ok(())
}

async fn refused_scaling_is_reported(env: &Env) -> TestResult {
    let ns = create_namespace(&env.client, "e2e-limit").await?;
    let _operator = OperatorProcess::start(
        &env.kubeconfig,
        &env.node.grpc_addr,
        "op-limit",
        &["--namespace", &ns],
    )?;
    let name = format!("limited-{ns}");
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 1, "deletionPolicy": "Delete"}),
    )
    .await?;
    env.wait_open_shards(&ns, &name, 1, RESHARD).await?;
    // The one UpdateShardCount of the day.
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 2, "deletionPolicy": "Delete"}),
    )
    .await?;
    env.wait_open_shards(&ns, &name, 2, RESHARD).await?;
    // The second is refused by the node: reported, not retried in a tight loop, nothing changes.
    env.apply_stream(
        &ns,
        &name,
        json!({"name": name, "shardCount": 4, "deletionPolicy": "Delete"}),
    )
    .await?;
    let obj = env
        .wait_condition(&ns, &name, "Scaling", "False", "ScalingBlocked")
        .await?;
    let message = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Scaling")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("UpdateShardCount 2 -> 4"), "{message}");
    assert!(message.contains("24 hours"), "{message}");
    assert_eq!(condition(&obj, "Ready").map(|c| c.0), Some("True".to_string()));
    let events = env.events(&ns, &name).await?;
    assert!(events.iter().any(|r| r == "ScalingBlocked"), "events {events:?}");
    assert_eq!(env.describe(&name).await?.map(|d| d.open_shard_count), Some(2));
    Ok(())
}
