//! Working with `Stream` resources and the node under test: apply a spec, wait for a status
//! condition, read the node's own description, list Events.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::Client;
use kube::api::ListParams;
use kube::api::Patch;
use kube::api::PatchParams;
use runnel_operator::crd::DeliveryStream;
use runnel_operator::crd::Stream;
use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use serde_json::json;
use tonic::transport::Channel;

use crate::E2eError;
use crate::Result;
use crate::cluster::Cluster;
use crate::cluster::TEST_MANAGER;
use crate::cluster::install_crds;
use crate::process::NodeProcess;
use crate::process::OperatorProcess;
use crate::wait;
use crate::wait::CONVERGE;

/// A condition of a resource's status: (status, reason, observedGeneration).
pub fn condition(obj: &serde_json::Value, type_: &str) -> Option<(String, String, Option<i64>)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["observedGeneration"].as_i64(),
            )
        })
}

/// The shards the status lists, open (`closed` false) or closed.
fn status_shards(obj: &serde_json::Value, closed: bool) -> impl Iterator<Item = &serde_json::Value> {
    obj.pointer("/status/shards")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |s| s["closed"].as_bool().unwrap_or(false) == closed)
}

/// Open shards in the status: id → (parent, adjacent parent).
pub fn open_shards(obj: &serde_json::Value) -> BTreeMap<String, (Option<String>, Option<String>)> {
    status_shards(obj, false)
        .map(|s| {
            let text = |k: &str| s[k].as_str().map(str::to_string);
            (
                text("shardId").unwrap_or_default(),
                (text("parentShardId"), text("adjacentParentShardId")),
            )
        })
        .collect()
}

/// Closed shards in the status (the parents of open shards).
pub fn closed_shards(obj: &serde_json::Value) -> BTreeSet<String> {
    status_shards(obj, true)
        .filter_map(|s| s["shardId"].as_str().map(str::to_string))
        .collect()
}

/// Open shards in the status: id → (replicas, replicaZones).
pub fn open_shard_zones(obj: &serde_json::Value) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    status_shards(obj, false)
        .map(|s| {
            (
                s["shardId"].as_str().unwrap_or_default().to_string(),
                (strings(&s["replicas"]), strings(&s["replicaZones"])),
            )
        })
        .collect()
}

/// Checks that every open shard in the status lists, beside its replicas, the zone of each
/// (`zone_of`: node id → zone), and that it has replicas; the error describes the shards.
pub fn check_replica_zones(
    obj: &serde_json::Value,
    zone_of: &BTreeMap<u64, &str>,
) -> std::result::Result<(), String> {
    let shards = open_shard_zones(obj);
    let expected = |replicas: &[String]| -> Vec<String> {
        replicas
            .iter()
            .map(|id| {
                id.parse::<u64>()
                    .ok()
                    .and_then(|id| zone_of.get(&id))
                    .map(|z| z.to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let right = !shards.is_empty()
        && shards
            .values()
            .all(|(replicas, zones)| !replicas.is_empty() && *zones == expected(replicas));
    if right {
        Ok(())
    } else {
        Err(format!("open shards (replicas, replicaZones): {shards:?}"))
    }
}

/// Open shards on the node (no ending sequence number).
pub fn node_open_shards(d: &pb::StreamDescription) -> BTreeSet<String> {
    d.shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_empty())
        .map(|s| s.shard_id.clone())
        .collect()
}

/// Server-side applies a `runnel.dev/v1alpha1` resource with this spec (field manager
/// `runnel-e2e`).
async fn apply<K>(api: &Api<K>, name: &str, spec: serde_json::Value) -> Result<()>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let obj = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name},
        "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok(())
}

/// The cluster client, the kubeconfig for operator processes, and the node under test.
pub struct Env {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub node: NodeProcess,
}

impl Env {
    /// An environment whose node under test is the first of `members` (cluster members on
    /// loopback); the others are returned, to be kept running.
    pub fn with_members(
        cluster: &Cluster,
        client: Client,
        members: Vec<NodeProcess>,
    ) -> Result<(Env, Vec<NodeProcess>)> {
        let mut members = members.into_iter();
        let node = members
            .next()
            .ok_or_else(|| E2eError::Setup("no cluster member".into()))?;
        let env = Env {
            client,
            kubeconfig: cluster.kubeconfig.clone(),
            node,
        };
        Ok((env, members.collect()))
    }

    /// Connects to the cluster, installs the CRDs and starts a node.
    pub async fn start(cluster: &Cluster) -> Result<Env> {
        let client = cluster.client().await?;
        install_crds(&client).await?;
        Ok(Env {
            client,
            kubeconfig: cluster.kubeconfig.clone(),
            node: NodeProcess::start()?,
        })
    }

    /// An operator for namespace `ns` that reads the node's `/metrics` every second (the load
    /// the autoscaler decides on).
    pub fn start_autoscaling_operator(&self, ns: &str, identity: &str) -> Result<OperatorProcess> {
        OperatorProcess::start(
            &self.kubeconfig,
            &self.node.grpc_addr,
            identity,
            &[
                "--namespace",
                ns,
                "--node-metrics",
                &self.node.metrics_addr,
                "--load-sample-seconds",
                "1",
            ],
        )
    }

    pub fn streams(&self, ns: &str) -> Api<Stream> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub async fn admin(&self) -> Result<AdminClient<Channel>> {
        self.node.admin().await
    }

    pub fn delivery_streams(&self, ns: &str) -> Api<DeliveryStream> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The field managers of the Stream's fields (`runnel-operator` writes its status).
    pub async fn field_managers(&self, ns: &str, name: &str) -> Result<Vec<String>> {
        let stream = self.streams(ns).get(name).await?;
        Ok(stream
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect())
    }

    /// Server-side applies a Stream with this spec (field manager `runnel-e2e`).
    pub async fn apply_stream(&self, ns: &str, name: &str, spec: serde_json::Value) -> Result<()> {
        apply(&self.streams(ns), name, spec).await
    }

    /// Server-side applies a DeliveryStream with this spec (field manager `runnel-e2e`).
    pub async fn apply_delivery_stream(&self, ns: &str, name: &str, spec: serde_json::Value) -> Result<()> {
        apply(&self.delivery_streams(ns), name, spec).await
    }

    /// Waits until the DeliveryStream's status for `generation` says `Stored=True` (reason
    /// Stored) and `Ready=False` (reason NoDeliveryEngine); returns it as JSON.
    pub async fn wait_delivery_stored(
        &self,
        ns: &str,
        name: &str,
        generation: i64,
    ) -> Result<serde_json::Value> {
        let api = self.delivery_streams(ns);
        let what = format!("DeliveryStream {ns}/{name} generation {generation} Stored=True");
        wait::until(&what, CONVERGE, || {
            let api = api.clone();
            async move {
                let v = serde_json::to_value(api.get(name).await.map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
                let observed = v["status"]["observedGeneration"].as_i64();
                match (condition(&v, "Stored"), condition(&v, "Ready")) {
                    (Some((s, r, _)), Some((rs, rr, _)))
                        if s == "True"
                            && r == "Stored"
                            && rs == "False"
                            && rr == "NoDeliveryEngine"
                            && observed == Some(generation) =>
                    {
                        Ok(Some(v))
                    }
                    other => Err(format!("{other:?} observedGeneration {observed:?}")),
                }
            }
        })
        .await
    }

    /// Waits until the DeliveryStream resource is gone (finalizer removed) and the catalog has
    /// no delivery stream `catalog_name`.
    pub async fn wait_delivery_gone(&self, ns: &str, name: &str, catalog_name: &str) -> Result<()> {
        let api = self.delivery_streams(ns);
        let what = format!("DeliveryStream {ns}/{name} gone from Kubernetes and the catalog");
        wait::until(&what, CONVERGE, || {
            let api = api.clone();
            async move {
                let cr = api.get_opt(name).await.map_err(|e| e.to_string())?;
                let in_catalog = self
                    .describe_delivery_stream(catalog_name)
                    .await
                    .map_err(|e| e.to_string())?;
                match (cr, in_catalog) {
                    (None, None) => Ok(Some(())),
                    (cr, d) => Err(format!(
                        "resource finalizers {:?}, in the catalog: {}",
                        cr.map(|c| c.metadata.finalizers),
                        d.is_some()
                    )),
                }
            }
        })
        .await
    }

    /// Waits until the Stream's condition has this status and reason for its current generation.
    pub async fn wait_condition(
        &self,
        ns: &str,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> Result<serde_json::Value> {
        let what = format!("Stream {ns}/{name} {type_}={status} ({reason})");
        self.wait_stream(ns, name, &what, CONVERGE, |value, generation| {
            match condition(value, type_) {
                Some((st, re, og)) if st == status && re == reason && og == generation => Ok(()),
                other => Err(format!("{other:?} at generation {generation:?}")),
            }
        })
        .await
    }

    /// Waits until `check(status as JSON, generation)` passes; returns the object as JSON.
    pub async fn wait_stream<F>(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        timeout: std::time::Duration,
        check: F,
    ) -> Result<serde_json::Value>
    where
        F: Fn(&serde_json::Value, Option<i64>) -> std::result::Result<(), String>,
    {
        let api = self.streams(ns);
        let check = &check;
        wait::until(what, timeout, || {
            let api = api.clone();
            async move {
                let s = api.get(name).await.map_err(|e| e.to_string())?;
                let generation = s.metadata.generation;
                let value = serde_json::to_value(&s).map_err(|e| e.to_string())?;
                check(&value, generation).map(|()| Some(value))
            }
        })
        .await
    }

    /// Waits until the status (for the current generation) lists `n` open shards and the
    /// Scaling condition is back to Stable.
    pub async fn wait_open_shards(
        &self,
        ns: &str,
        name: &str,
        n: usize,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value> {
        let what = format!("Stream {ns}/{name} with {n} open shards, Scaling=False Stable");
        self.wait_stream(ns, name, &what, timeout, |obj, generation| {
            let open = open_shards(obj).len();
            let count = obj
                .pointer("/status/openShardCount")
                .and_then(serde_json::Value::as_u64);
            match condition(obj, "Scaling") {
                Some((s, r, g))
                    if open == n
                        && count == Some(n as u64)
                        && s == "False"
                        && r == "Stable"
                        && g == generation =>
                {
                    Ok(())
                }
                other => Err(format!("{open} open shards in status, Scaling {other:?}")),
            }
        })
        .await
    }

    /// Asserts that the status and the node agree on the open shards; returns the node's
    /// description.
    pub async fn assert_node_agrees(
        &self,
        name: &str,
        obj: &serde_json::Value,
    ) -> Result<pb::StreamDescription> {
        let d = self
            .describe(name)
            .await?
            .ok_or_else(|| E2eError::Setup(format!("stream {name} missing on the node")))?;
        let status: BTreeSet<String> = open_shards(obj).into_keys().collect();
        assert_eq!(node_open_shards(&d), status, "node vs status open shards");
        assert_eq!(d.open_shard_count as usize, status.len());
        Ok(d)
    }

    /// The cluster's members as the node's DescribeCluster lists them.
    pub async fn cluster_nodes(&self) -> Result<Vec<pb::ClusterNode>> {
        let mut admin = self.admin().await?;
        admin
            .describe_cluster(pb::DescribeClusterRequest {})
            .await
            .map(|r| r.into_inner().nodes)
            .map_err(|s| E2eError::Setup(format!("DescribeCluster: {s}")))
    }

    /// The node's DescribeStream, None when the stream does not exist.
    pub async fn describe(&self, name: &str) -> Result<Option<pb::StreamDescription>> {
        let mut admin = self.admin().await?;
        match admin
            .describe_stream(pb::DescribeStreamRequest {
                stream_name: name.to_string(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().stream),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(E2eError::Setup(format!("DescribeStream {name}: {s}"))),
        }
    }

    /// The node's DescribeDeliveryStream, None when the delivery stream does not exist.
    pub async fn describe_delivery_stream(
        &self,
        name: &str,
    ) -> Result<Option<pb::DeliveryStreamDescription>> {
        let mut admin = self.admin().await?;
        match admin
            .describe_delivery_stream(pb::DescribeDeliveryStreamRequest {
                delivery_stream_name: name.to_string(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().delivery_stream),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(E2eError::Setup(format!("DescribeDeliveryStream {name}: {s}"))),
        }
    }

    /// Waits until the node's description of the stream named by the first word of `what`
    /// passes `check`.
    pub async fn wait_node<F>(&self, what: &str, check: F) -> Result<Option<pb::StreamDescription>>
    where
        F: Fn(Option<&pb::StreamDescription>) -> bool,
    {
        let name = what.split_whitespace().next().unwrap_or_default();
        let check = &check;
        wait::until(what, CONVERGE, || async move {
            let d = self.describe(name).await.map_err(|e| e.to_string())?;
            if check(d.as_ref()) {
                Ok(Some(d))
            } else {
                Err(format!(
                    "{:?}",
                    d.map(|d| (d.status, d.retention_period_hours, d.open_shard_count))
                ))
            }
        })
        .await
    }

    /// Waits until the Stream resource is gone (finalizer removed).
    pub async fn wait_gone(&self, ns: &str, name: &str) -> Result<()> {
        let api = self.streams(ns);
        wait::until(&format!("Stream {ns}/{name} gone"), CONVERGE, || {
            let api = api.clone();
            async move {
                match api.get_opt(name).await.map_err(|e| e.to_string())? {
                    None => Ok(Some(())),
                    Some(s) => Err(format!("finalizers {:?}", s.metadata.finalizers)),
                }
            }
        })
        .await
    }

    /// Reasons of the Events about the object `name` in `ns`, one per occurrence (the
    /// recorder folds repeats of an Event into one object with a `series.count`).
    pub async fn events(&self, ns: &str, name: &str) -> Result<Vec<String>> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let list = api.list(&ListParams::default()).await?;
        Ok(list
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .flat_map(|e| {
                let n = e
                    .series
                    .as_ref()
                    .and_then(|s| usize::try_from(s.count).ok())
                    .unwrap_or(1)
                    .max(1);
                std::iter::repeat_n(e.reason, n).flatten()
            })
            .collect())
    }
}
