//! The operator binary against a real API server and a real `runnel-node standalone`:
//! create, update retention, invalid spec, deletion policies, unmanaged streams, unsupported
//! changes, delivery streams, SIGKILL mid-reconcile, and leader election between two replicas.
//! Spec changes of running streams and autoscaling are in `scaling.rs`.
//!
//! One `#[test]` owns the cluster so that a control plane started here is stopped afterwards.

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::DeleteParams;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::process::OperatorProcess;
use runnel_e2e::streams::Env;
use runnel_e2e::streams::condition;
use runnel_e2e::wait;
use runnel_e2e::wait::CONVERGE;
use runnel_proto::v1 as pb;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn operator_against_a_real_api_server() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let env = Env::start(&cluster).await?;
        env.lifecycle().await?;
        env.kill_mid_reconcile().await?;
        env.leader_election().await?;
        Ok(())
    })
}

trait Lifecycle {
    async fn lifecycle(&self) -> TestResult;
    async fn kill_mid_reconcile(&self) -> TestResult;
    async fn leader_election(&self) -> TestResult;
}

impl Lifecycle for Env {
    /// Create, retention update, invalid spec, Delete and Retain policies, unmanaged streams,
    /// unsupported shard-count changes, delivery streams.
    async fn lifecycle(&self) -> TestResult {
        let ns = create_namespace(&self.client, "e2e-life").await?;
        let _operator = OperatorProcess::start(
            &self.kubeconfig,
            &self.node.grpc_addr,
            "op-life",
            &["--namespace", &ns],
        )?;
        let name = format!("orders-{ns}");

        // Apply → Ready with the right shards.
        self.apply_stream(
            &ns,
            &name,
            json!({"name": name, "shardCount": 3, "retentionPeriodHours": 48, "deletionPolicy": "Delete"}),
        )
        .await?;
        let obj = self.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
        let described = self.describe(&name).await?.ok_or("stream not in the catalog")?;
        assert_eq!(described.retention_period_hours, 48);
        let shards = obj
            .pointer("/status/shards")
            .and_then(|s| s.as_array())
            .cloned()
            .unwrap_or_default();
        assert_eq!(shards.len(), 3, "status shards: {shards:?}");
        assert_eq!(
            obj.pointer("/status/openShardCount").and_then(|v| v.as_i64()),
            Some(3)
        );
        for (status_shard, node_shard) in shards.iter().zip(&described.shards) {
            let range = node_shard.hash_key_range.clone().unwrap_or_default();
            assert_eq!(status_shard["shardId"], node_shard.shard_id.as_str());
            assert_eq!(status_shard["startingHashKey"], range.starting_hash_key.as_str());
            assert_eq!(status_shard["endingHashKey"], range.ending_hash_key.as_str());
        }
        assert_eq!(shards[0]["startingHashKey"], "0");
        assert_eq!(
            shards[2]["endingHashKey"],
            "340282366920938463463374607431768211455"
        );
        assert_eq!(
            obj.pointer("/status/streamStatus").and_then(|v| v.as_str()),
            Some("ACTIVE")
        );
        let managers = self.field_managers(&ns, &name).await?;
        assert!(
            managers.iter().any(|m| m == "runnel-operator"),
            "field managers {managers:?}"
        );
        assert!(self.events(&ns, &name).await?.iter().any(|r| r == "Created"));

        // Retention change → UpdateRetention on the node, status for generation 2.
        self.apply_stream(
            &ns,
            &name,
            json!({"name": name, "shardCount": 3, "retentionPeriodHours": 72, "deletionPolicy": "Delete"}),
        )
        .await?;
        self.wait_node(&format!("{name} retention 72"), |d| {
            d.is_some_and(|d| d.retention_period_hours == 72)
        })
        .await?;
        let obj = self.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
        assert_eq!(
            obj.pointer("/status/observedGeneration").and_then(|v| v.as_i64()),
            Some(2)
        );

        // A KMS key the node's keyring lacks: refused, reported on Degraded (with a Warning
        // Event); the rest of the spec still applies.
        self.apply_stream(
            &ns,
            &name,
            json!({"name": name, "shardCount": 3, "retentionPeriodHours": 72, "maxRecordSizeKiB": 2048, "encryption": {"type": "KMS", "keyId": "alias/runnel"}, "deletionPolicy": "Delete"}),
        )
        .await?;
        // maxRecordSizeKiB reaches the node (UpdateMaxRecordSize).
        self.wait_node(&format!("{name} takes 2 MiB records"), |d| {
            d.is_some_and(|d| d.max_record_size_kib == 2048)
        })
        .await?;
        let obj = self
            .wait_condition(&ns, &name, "Degraded", "True", "EncryptionRefused")
            .await?;
        assert_eq!(condition(&obj, "Ready").map(|c| c.0), Some("True".to_string()));
        let degraded = obj
            .pointer("/status/conditions")
            .and_then(|c| c.as_array())
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Degraded"))
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .to_string();
        assert!(degraded.contains("alias/runnel"), "{degraded}");
        let events = self.events(&ns, &name).await?;
        assert!(
            events.iter().any(|r| r == "EncryptionRefused"),
            "events {events:?}"
        );
        assert_eq!(
            self.describe(&name).await?.and_then(|d| d.encryption_key_id),
            None
        );
        // A key the keyring has (a standalone node's own, alias/aws/kinesis): encryption
        // starts on the node, Degraded clears.
        self.apply_stream(
            &ns,
            &name,
            json!({"name": name, "shardCount": 3, "retentionPeriodHours": 72, "maxRecordSizeKiB": 2048, "encryption": {"type": "KMS", "keyId": "alias/aws/kinesis"}, "deletionPolicy": "Delete"}),
        )
        .await?;
        self.wait_node(&format!("{name} encrypted"), |d| {
            d.is_some_and(|d| d.encryption_key_id.as_deref() == Some("alias/aws/kinesis"))
        })
        .await?;
        let obj = self
            .wait_condition(&ns, &name, "Degraded", "False", "AsExpected")
            .await?;
        assert_eq!(
            obj.pointer("/status/keyId").and_then(|v| v.as_str()),
            Some("alias/aws/kinesis")
        );
        assert_eq!(
            obj.pointer("/status/encryptionType").and_then(|v| v.as_str()),
            Some("KMS")
        );
        let events = self.events(&ns, &name).await?;
        assert!(
            events.iter().any(|r| r == "EncryptionUpdated"),
            "events {events:?}"
        );
        // NONE stops it.
        self.apply_stream(
            &ns,
            &name,
            json!({"name": name, "shardCount": 3, "retentionPeriodHours": 72, "maxRecordSizeKiB": 2048, "encryption": {"type": "NONE"}, "deletionPolicy": "Delete"}),
        )
        .await?;
        self.wait_node(&format!("{name} not encrypted"), |d| {
            d.is_some_and(|d| d.encryption_key_id.is_none())
        })
        .await?;

        // Invalid spec → Ready=False InvalidSpec, an Event, nothing in the catalog.
        let bad = format!("bad-{ns}");
        self.apply_stream(
            &ns,
            &bad,
            json!({"name": bad, "shardCount": 1, "retentionPeriodHours": 7}),
        )
        .await?;
        self.wait_condition(&ns, &bad, "Ready", "False", "InvalidSpec")
            .await?;
        let events = self.events(&ns, &bad).await?;
        assert!(events.iter().any(|r| r == "InvalidSpec"), "events {events:?}");
        assert!(self.describe(&bad).await?.is_none());

        // Delete with deletionPolicy Delete → gone from the node.
        self.streams(&ns).delete(&name, &DeleteParams::default()).await?;
        self.wait_gone(&ns, &name).await?;
        self.wait_node(&format!("{name} deleted"), |d| d.is_none())
            .await?;

        // Retain → the stream stays.
        let kept = format!("kept-{ns}");
        self.apply_stream(
            &ns,
            &kept,
            json!({"name": kept, "shardCount": 1, "deletionPolicy": "Retain"}),
        )
        .await?;
        self.wait_condition(&ns, &kept, "Ready", "True", "Active").await?;
        self.streams(&ns).delete(&kept, &DeleteParams::default()).await?;
        self.wait_gone(&ns, &kept).await?;
        assert_eq!(
            self.describe(&kept).await?.map(|d| d.status),
            Some(pb::StreamStatus::Active as i32)
        );

        // A stream created through the API is never touched, even by a same-named CR.
        let foreign = format!("foreign-{ns}");
        self.admin()
            .await?
            .create_stream(pb::CreateStreamRequest {
                stream_name: foreign.clone(),
                shard_count: Some(2),
                mode: pb::StreamMode::Provisioned as i32,
                tags: Default::default(),
                retention_period_hours: Some(24),
                max_record_size_kib: None,
            })
            .await?;
        self.apply_stream(&ns, &foreign, json!({"name": foreign, "shardCount": 5, "retentionPeriodHours": 100, "deletionPolicy": "Delete"})).await?;
        self.wait_condition(&ns, &foreign, "Ready", "False", "NameConflict")
            .await?;
        self.streams(&ns)
            .delete(&foreign, &DeleteParams::default())
            .await?;
        self.wait_gone(&ns, &foreign).await?;
        let d = self.describe(&foreign).await?.ok_or("foreign stream deleted")?;
        assert_eq!(
            (d.retention_period_hours, d.open_shard_count, d.status),
            (24, 2, pb::StreamStatus::Active as i32)
        );

        // DeliveryStream: stored in the catalog (Stored=True, Ready=False NoDeliveryEngine),
        // an edit replaces the spec there, deleting the resource deletes it from the catalog.
        let ds_name = format!("to-s3-{ns}");
        let ds_spec = |name: &str, bucket: &str| {
            json!({
                "deliveryStreamName": name,
                "source": {"streamName": kept},
                "destination": {"s3": {"bucket": bucket}},
            })
        };
        self.apply_delivery_stream(&ns, "to-s3", ds_spec(&ds_name, "archive"))
            .await?;
        let v = self.wait_delivery_stored(&ns, "to-s3", 1).await?;
        assert_eq!(v["status"]["deliveryStreamStatus"], "DECLARED");
        let d = self
            .describe_delivery_stream(&ds_name)
            .await?
            .ok_or("delivery stream not in the catalog")?;
        assert_eq!(v["status"]["deliveryStreamARN"], d.delivery_stream_arn.as_str());
        assert_eq!(d.status, pb::DeliveryStreamStatus::Declared as i32);
        let spec: serde_json::Value = serde_json::from_str(&d.spec_json)?;
        assert_eq!(spec["destination"]["s3"]["bucket"], "archive");
        assert_eq!(spec["source"]["streamName"], kept.as_str());
        assert_eq!(spec["tags"]["runnel.dev/owner"], format!("{ns}/to-s3"));

        // An edit replaces the spec in the catalog.
        self.apply_delivery_stream(&ns, "to-s3", ds_spec(&ds_name, "archive-2"))
            .await?;
        self.wait_delivery_stored(&ns, "to-s3", 2).await?;
        let d = self
            .describe_delivery_stream(&ds_name)
            .await?
            .ok_or("delivery stream not in the catalog")?;
        let spec: serde_json::Value = serde_json::from_str(&d.spec_json)?;
        assert_eq!(spec["destination"]["s3"]["bucket"], "archive-2");

        // A rename stores the new entry and removes the old one.
        let renamed = format!("renamed-{ns}");
        self.apply_delivery_stream(&ns, "to-s3", ds_spec(&renamed, "archive-2"))
            .await?;
        let v = self.wait_delivery_stored(&ns, "to-s3", 3).await?;
        let d = self
            .describe_delivery_stream(&renamed)
            .await?
            .ok_or("renamed delivery stream not in the catalog")?;
        assert_eq!(v["status"]["deliveryStreamARN"], d.delivery_stream_arn.as_str());
        assert!(
            self.describe_delivery_stream(&ds_name).await?.is_none(),
            "the old name is still in the catalog"
        );

        // Deleting the resource deletes the delivery stream (finalizer).
        self.delivery_streams(&ns)
            .delete("to-s3", &DeleteParams::default())
            .await?;
        self.wait_delivery_gone(&ns, "to-s3", &renamed).await?;
        Ok(())
    }

    /// SIGKILL the operator while it works through a batch of streams; a new one converges.
    async fn kill_mid_reconcile(&self) -> TestResult {
        let ns = create_namespace(&self.client, "e2e-kill").await?;
        let names: Vec<String> = (0..6).map(|i| format!("k{i}-{ns}")).collect();
        let mut first = OperatorProcess::start(
            &self.kubeconfig,
            &self.node.grpc_addr,
            "op-kill-1",
            &["--namespace", &ns],
        )?;
        for name in &names {
            self.apply_stream(&ns, name, json!({"name": name, "shardCount": 2, "retentionPeriodHours": 36, "deletionPolicy": "Delete"})).await?;
        }
        // Kill as soon as the first stream reached the catalog: the others are mid-flight.
        wait::until("first stream in the catalog", CONVERGE, || async {
            for name in &names {
                if self.describe(name).await.map_err(|e| e.to_string())?.is_some() {
                    return Ok(Some(()));
                }
            }
            Ok(None)
        })
        .await?;
        first.kill()?;
        // While no operator runs: change one spec and delete another.
        self.apply_stream(&ns, &names[0], json!({"name": names[0], "shardCount": 2, "retentionPeriodHours": 96, "deletionPolicy": "Delete"})).await?;
        self.streams(&ns)
            .delete(&names[1], &DeleteParams::default())
            .await?;

        let _second = OperatorProcess::start(
            &self.kubeconfig,
            &self.node.grpc_addr,
            "op-kill-2",
            &["--namespace", &ns],
        )?;
        for name in &names[2..] {
            self.wait_condition(&ns, name, "Ready", "True", "Active").await?;
            let d = self.describe(name).await?.ok_or("missing stream")?;
            assert_eq!((d.open_shard_count, d.retention_period_hours), (2, 36));
        }
        self.wait_condition(&ns, &names[0], "Ready", "True", "Active")
            .await?;
        self.wait_node(&format!("{} retention 96", names[0]), |d| {
            d.is_some_and(|d| d.retention_period_hours == 96)
        })
        .await?;
        self.wait_gone(&ns, &names[1]).await?;
        self.wait_node(&format!("{} deleted", names[1]), |d| d.is_none())
            .await?;
        Ok(())
    }

    /// Two replicas with --leader-election: one leads and reconciles, the other waits; after
    /// SIGKILL of the leader the standby takes over.
    async fn leader_election(&self) -> TestResult {
        let ns = create_namespace(&self.client, "e2e-lease").await?;
        let flags = [
            "--namespace",
            ns.as_str(),
            "--leader-election",
            "--lease-namespace",
            ns.as_str(),
            "--lease-duration-seconds",
            "4",
        ];
        let a = OperatorProcess::start(&self.kubeconfig, &self.node.grpc_addr, "op-a", &flags)?;
        let b = OperatorProcess::start(&self.kubeconfig, &self.node.grpc_addr, "op-b", &flags)?;
        let mut ops = [a, b];
        let leader = wait::until("one leader", CONVERGE, || {
            let ops = &ops;
            async move {
                let flags: Vec<f64> = ops
                    .iter()
                    .map(|o| o.metric_sum("runnel_operator_leader", "").unwrap_or(-1.0))
                    .collect();
                match flags.as_slice() {
                    [a, b] if *a == 1.0 && *b == 0.0 => Ok(Some(0usize)),
                    [a, b] if *a == 0.0 && *b == 1.0 => Ok(Some(1usize)),
                    other => Err(format!("leader gauges {other:?}")),
                }
            }
        })
        .await?;
        let standby = 1 - leader;
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &ns);
        let holder = leases
            .get("runnel-operator")
            .await?
            .spec
            .and_then(|s| s.holder_identity);
        assert_eq!(holder.as_deref(), Some(ops[leader].identity.as_str()));

        let first = format!("l1-{ns}");
        self.apply_stream(
            &ns,
            &first,
            json!({"name": first, "shardCount": 1, "deletionPolicy": "Delete"}),
        )
        .await?;
        self.wait_condition(&ns, &first, "Ready", "True", "Active")
            .await?;
        assert!(ops[leader].metric_sum("runnel_operator_reconciliations_total", "kind=\"Stream\"")? > 0.0);
        assert_eq!(
            ops[standby].metric_sum("runnel_operator_reconciliations_total", "")?,
            0.0,
            "the standby reconciled"
        );
        assert_eq!(ops[standby].metric_sum("runnel_operator_leader", "")?, 0.0);

        ops[leader].kill()?;
        wait::until("standby takes over", CONVERGE, || {
            let op = &ops[standby];
            async move {
                let v = op
                    .metric_sum("runnel_operator_leader", "")
                    .map_err(|e| e.to_string())?;
                Ok((v == 1.0).then_some(()))
            }
        })
        .await?;
        let second = format!("l2-{ns}");
        self.apply_stream(
            &ns,
            &second,
            json!({"name": second, "shardCount": 2, "deletionPolicy": "Delete"}),
        )
        .await?;
        self.wait_condition(&ns, &second, "Ready", "True", "Active")
            .await?;
        let lease = leases.get("runnel-operator").await?.spec.unwrap_or_default();
        assert_eq!(
            lease.holder_identity.as_deref(),
            Some(ops[standby].identity.as_str())
        );
        assert!(lease.lease_transitions.unwrap_or(0) >= 1);
        Ok(())
    }
}
