//! The cluster reconciler's loop (I/O): every interval, DescribeCluster and every stream's
//! DescribeStream, the latest measured shard write rates, the node pods and their Kubernetes
//! Nodes (zones, capacity annotations; see [`Topology`]) → [`placement::plan`] → MoveReplica
//! calls (bounded, one per shard at a time); then, when node scaling is on, the next step of
//! sizing the node StatefulSet. Decisions are logged; metrics count them; Events go to the
//! `Stream` whose shard moved and to the StatefulSet. The zones read each round are published
//! to the Stream controller ([`ClusterReconciler::zones`]) for the status.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::Client;
use kube::Resource;
use kube::api::Patch;
use kube::api::PatchParams;
use kube::runtime::events::Event;
use kube::runtime::events::EventType;
use kube::runtime::events::Recorder;
use kube::runtime::events::Reporter;
use tokio::sync::watch;

use super::moves::MovesInFlight;
use super::moves::ReplicaMove;
use super::moves::Step;
use super::moves::steps;
use super::node_scaling::NodeScalingInput;
use super::node_scaling::NodeStep;
use super::node_scaling::REMOVING_ANNOTATION;
use super::node_scaling::next_step;
use super::topology::NodeZones;
use super::topology::Topology;
use super::topology::pod_name;
use super::view::ClusterView;
use super::view::ShardState;
use crate::catalog_client::CatalogClient;
use crate::catalog_client::CatalogError;
use crate::controller::MANAGER;
use crate::controller::truncate;
use crate::crd::Stream;
use crate::load::LoadTracker;
use crate::metrics::Metrics;
use crate::node_metrics::SeriesKey;
use crate::observed::ObservedStream;
use crate::policy::Seconds;
use crate::policy::nodes::NodeScalingConfig;
use crate::policy::placement;
use crate::policy::placement::PlacementAction;
use crate::policy::placement::PlacementConfig;

/// Errors of one round; the next round tries again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the load tracker's lock is poisoned")]
    Poisoned,
}

/// The node StatefulSet: its pods `<name>-<ordinal>` are nodes `ordinal + 1`.
#[derive(Clone, Debug)]
pub struct NodeStatefulSet {
    pub name: String,
    pub namespace: String,
}

/// Settings of the cluster reconciler.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub interval: Duration,
    pub placement: PlacementConfig,
    /// Most replica moves under way at once (cluster-wide); 0 disables moves.
    pub max_moves_in_flight: usize,
    /// Write bytes/s one node sustains (placement's and node scaling's capacity), unless its
    /// Kubernetes Node's capacity annotation says otherwise.
    pub node_capacity: f64,
    /// Where the nodes' pods are looked up (by name: zones and capacities) and what node
    /// scaling resizes.
    pub statefulset: NodeStatefulSet,
    /// None: the StatefulSet is left alone.
    pub node_scaling: Option<NodeScalingConfig>,
}

/// The reconciler's state across rounds.
pub struct ClusterReconciler {
    client: Client,
    catalog: CatalogClient,
    recorder: Recorder,
    metrics: Metrics,
    load: Arc<Mutex<LoadTracker>>,
    cfg: ClusterConfig,
    in_flight: MovesInFlight,
    last_node_action: Option<Seconds>,
    /// The members' zones as last read; `None` before the first round read them.
    zones: watch::Sender<Option<NodeZones>>,
}

impl ClusterReconciler {
    pub fn new(
        client: Client,
        catalog: CatalogClient,
        metrics: Metrics,
        load: Arc<Mutex<LoadTracker>>,
        instance: String,
        cfg: ClusterConfig,
    ) -> ClusterReconciler {
        let reporter = Reporter {
            controller: MANAGER.to_string(),
            instance: Some(instance),
        };
        ClusterReconciler {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            catalog,
            metrics,
            load,
            cfg,
            in_flight: MovesInFlight::default(),
            last_node_action: None,
            zones: watch::Sender::new(None),
        }
    }

    /// The members' zones, updated whenever a round reads different ones.
    pub fn zones(&self) -> watch::Receiver<Option<NodeZones>> {
        self.zones.subscribe()
    }

    /// Runs a round every interval, for as long as the future is polled (while leading).
    pub async fn run(mut self) {
        tracing::info!(
            interval = ?self.cfg.interval,
            max_moves_in_flight = self.cfg.max_moves_in_flight,
            replication_factor = self.cfg.placement.replication_factor,
            node_scaling = self.cfg.node_scaling.is_some(),
            "cluster reconciler started"
        );
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "cluster reconciliation failed; trying again next round");
            }
        }
    }

    /// One round: observe, place, size.
    pub async fn round(&mut self) -> Result<(), Error> {
        let cluster = self.catalog.describe_cluster().await?;
        self.metrics
            .cluster_nodes
            .set(i64::try_from(cluster.nodes.len()).unwrap_or(i64::MAX));
        let mut streams: Vec<ObservedStream> = Vec::new();
        for name in self.catalog.list_streams().await? {
            if let Some(s) = self.catalog.describe(&name).await? {
                streams.push(s);
            }
        }
        let view = {
            let load = self.load.lock().map_err(|_| Error::Poisoned)?;
            ClusterView::new(&cluster.nodes, &streams, |stream, shard| {
                load.latest(&SeriesKey {
                    stream: stream.to_string(),
                    shard: Some(shard.to_string()),
                })
                .map(|r| r.write_bytes)
            })
        };
        let ids: Vec<u64> = view.nodes.iter().map(|n| n.id).collect();
        let topology = self.read_topology(&ids).await;
        self.record_topology(&ids, &topology);
        for m in self.in_flight.update(&view) {
            tracing::info!(stream = %m.stream, shard = %m.shard_id, from = m.from, to = m.to, "replica move finished");
        }
        if view.nodes.len() > 1 {
            self.place(&view, &topology).await;
        } else {
            tracing::debug!(nodes = view.nodes.len(), "one node: nothing to place");
        }
        self.metrics
            .moves_in_flight
            .set(i64::try_from(self.in_flight.len()).unwrap_or(i64::MAX));
        if let Some(scaling) = self.cfg.node_scaling.clone() {
            self.size_nodes(&scaling, &view, &topology).await?;
        }
        Ok(())
    }

    /// Zones and capacities of the nodes `ids`: their pods (by name, in the StatefulSet's
    /// namespace) and the Kubernetes Nodes those are scheduled on. What cannot be read (no pod,
    /// not scheduled, no Node, no permission) leaves a node without a zone: placement still
    /// spreads over nodes.
    async fn read_topology(&self, ids: &[u64]) -> Topology {
        let sts = &self.cfg.statefulset;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &sts.namespace);
        let names: Vec<String> = ids.iter().filter_map(|id| pod_name(&sts.name, *id)).collect();
        let pods = get_all(&pods, "pod", &names).await;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let nodes = get_all(&nodes, "Node", &Topology::hosts(&pods)).await;
        let topology = Topology::map(&sts.name, ids, &pods, &nodes, self.cfg.node_capacity);
        for problem in &topology.problems {
            tracing::warn!(%problem, "node capacity annotation ignored");
        }
        tracing::debug!(nodes = ?topology.nodes, "node topology");
        topology
    }

    /// `runnel_operator_node_capacity_bytes_per_second{node,zone}` for the current members, and
    /// their zones for the Stream controller (only when they changed, so that it re-reads every
    /// Stream's status just then).
    fn record_topology(&self, ids: &[u64], topology: &Topology) {
        let zones = Some(topology.zones());
        self.zones.send_if_modified(|known| {
            let changed = *known != zones;
            if changed {
                *known = zones;
            }
            changed
        });
        let gauge = &self.metrics.node_capacity;
        gauge.reset();
        for id in ids {
            let zone = topology.zone(*id).unwrap_or("");
            gauge
                .with_label_values(&[id.to_string().as_str(), zone])
                .set(topology.capacity(*id));
        }
    }

    async fn place(&mut self, view: &ClusterView, topology: &Topology) {
        let actions = placement::plan(
            &self.cfg.placement,
            &view.placement_nodes(topology),
            &view.placement_shards(),
        );
        if actions.is_empty() {
            tracing::debug!("placement: balanced, nothing to do");
            return;
        }
        let in_flight = self.in_flight.len().max(view.moves_under_way());
        let planned = steps(
            &actions,
            view,
            &self.in_flight.busy(),
            in_flight,
            self.cfg.max_moves_in_flight,
        );
        for step in planned {
            match step {
                Step::Skip { action, reason } => {
                    tracing::debug!(?action, reason = reason.as_str(), "placement action skipped");
                    self.count(&action, &format!("skipped_{}", reason.as_str()));
                }
                Step::Move(m) => self.start_move(view, topology, m).await,
            }
        }
    }

    async fn start_move(&mut self, view: &ClusterView, topology: &Topology, m: ReplicaMove) {
        let action = PlacementAction::MoveReplica {
            shard_id: super::view::shard_key(&m.stream, &m.shard_id),
            from: m.from.to_string(),
            to: m.to.to_string(),
        };
        match self
            .catalog
            .move_replica(&m.stream, &m.shard_id, m.from, m.to)
            .await
        {
            Ok(()) => {
                tracing::info!(stream = %m.stream, shard = %m.shard_id, from = m.from, to = m.to, "placement: moving a replica");
                self.count(&action, "started");
                let node = |id: u64| match topology.zone(id) {
                    Some(zone) => format!("node {id} (zone {zone})"),
                    None => format!("node {id}"),
                };
                let note = format!(
                    "Moving the replica of shard {} from {} to {} (replica placement)",
                    m.shard_id,
                    node(m.from),
                    node(m.to)
                );
                if let Some(shard) = view.shard(&super::view::shard_key(&m.stream, &m.shard_id)) {
                    self.stream_event(shard, note).await;
                }
                self.in_flight.started(m);
            }
            Err(e) if e.is_busy() => {
                tracing::debug!(stream = %m.stream, shard = %m.shard_id, error = %e, "replica move refused: a change is under way");
                self.count(&action, "skipped_shard_busy");
            }
            Err(e) => {
                tracing::warn!(stream = %m.stream, shard = %m.shard_id, from = m.from, to = m.to, error = %e, "replica move failed");
                self.count(&action, "failed");
            }
        }
    }

    fn count(&self, action: &PlacementAction, outcome: &str) {
        let name = match action {
            PlacementAction::AddReplica { .. } => "add_replica",
            PlacementAction::RemoveReplica { .. } => "remove_replica",
            PlacementAction::MoveReplica { .. } => "move_replica",
            PlacementAction::TransferLeader { .. } => "transfer_leader",
        };
        self.metrics
            .placement_actions
            .with_label_values(&[name, outcome])
            .inc();
    }

    /// An Event on the `Stream` resource owning the shard's stream, if any.
    async fn stream_event(&self, shard: &ShardState, note: String) {
        let Some((namespace, name)) = &shard.owner else {
            return;
        };
        let reference = ObjectReference {
            api_version: Some(Stream::api_version(&()).into_owned()),
            kind: Some(Stream::kind(&()).into_owned()),
            namespace: Some(namespace.clone()),
            name: Some(name.clone()),
            ..ObjectReference::default()
        };
        self.publish(
            &reference,
            EventType::Normal,
            "ReplicaMoving",
            "MoveReplica",
            note,
        )
        .await;
    }

    async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(note, 1024)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::warn!(error = %e, reason, "could not publish an Event");
        }
    }

    async fn size_nodes(
        &mut self,
        scaling: &NodeScalingConfig,
        view: &ClusterView,
        topology: &Topology,
    ) -> Result<(), Error> {
        let sts_name = self.cfg.statefulset.name.clone();
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.cfg.statefulset.namespace);
        let sts = api.get(&sts_name).await?;
        let replicas = sts
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1);
        let removing = sts
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REMOVING_ANNOTATION))
            .and_then(|v| v.parse::<u64>().ok());
        let now = unix_now();
        let step = next_step(&NodeScalingInput {
            cfg: scaling,
            view,
            statefulset_replicas: replicas,
            removing,
            topology,
            replication_factor: self.cfg.placement.replication_factor,
            last_action_at: self.last_node_action,
            now,
        });
        let reference = sts.object_ref(&());
        let (name, result) = match &step {
            NodeStep::Wait { reason } => {
                tracing::debug!(replicas, %reason, "node scaling: waiting");
                return Ok(());
            }
            NodeStep::Grow { replicas: to } => {
                tracing::info!(from = replicas, to, "node scaling: growing the node StatefulSet");
                let r = patch(&api, &sts_name, Some(*to), None).await;
                if r.is_ok() {
                    self.last_node_action = Some(now);
                    let note = format!("Scaling the node StatefulSet from {replicas} to {to} pods");
                    self.publish(&reference, EventType::Normal, "NodesScaled", "Scale", note)
                        .await;
                }
                ("grow", r)
            }
            NodeStep::Drain { node_id } => {
                tracing::info!(
                    node_id,
                    replicas,
                    "node scaling: draining the highest ordinal before shrinking"
                );
                let r = self.catalog.drain_node(*node_id).await.map_err(Error::from);
                match &r {
                    Ok(moving) => {
                        self.last_node_action = Some(now);
                        let note =
                            format!("Draining node {node_id} before scaling down: {moving} replica moves");
                        self.publish(&reference, EventType::Normal, "NodeDraining", "Drain", note)
                            .await;
                    }
                    Err(e) => {
                        let note = format!("Cannot drain node {node_id}: {e}");
                        self.publish(&reference, EventType::Warning, "DrainRefused", "Drain", note)
                            .await;
                    }
                }
                ("drain", r.map(|_| ()))
            }
            NodeStep::MarkRemoving { node_id } => {
                tracing::info!(node_id, "node scaling: node holds no replicas; removing it");
                let value = node_id.to_string();
                (
                    "mark_removing",
                    patch(&api, &sts_name, None, Some(Some(&value))).await,
                )
            }
            NodeStep::Remove { node_id } => {
                tracing::info!(node_id, "node scaling: RemoveNode");
                let r = self.catalog.remove_node(*node_id).await.map_err(Error::from);
                if r.is_ok() {
                    let note = format!("Removed node {node_id} from the cluster");
                    self.publish(&reference, EventType::Normal, "NodeRemoved", "RemoveNode", note)
                        .await;
                }
                ("remove", r)
            }
            NodeStep::Shrink { replicas: to } => {
                tracing::info!(
                    from = replicas,
                    to,
                    "node scaling: shrinking the node StatefulSet"
                );
                let r = patch(&api, &sts_name, Some(*to), Some(None)).await;
                if r.is_ok() && *to < replicas {
                    self.last_node_action = Some(now);
                    let note = format!("Scaling the node StatefulSet from {replicas} to {to} pods");
                    self.publish(&reference, EventType::Normal, "NodesScaled", "Scale", note)
                        .await;
                }
                ("shrink", r)
            }
        };
        let label = if result.is_ok() { "ok" } else { "error" };
        self.metrics.node_scaling.with_label_values(&[name, label]).inc();
        result
    }
}

/// Gets the named objects concurrently; those missing or unreadable are left out (a read
/// error is logged once per call).
async fn get_all<K>(api: &Api<K>, kind: &str, names: &[String]) -> Vec<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let results = futures::future::join_all(names.iter().map(|n| api.get_opt(n))).await;
    let mut found = Vec::new();
    let mut failed: Vec<(&str, kube::Error)> = Vec::new();
    for (name, result) in names.iter().zip(results) {
        match result {
            Ok(Some(obj)) => found.push(obj),
            Ok(None) => tracing::debug!(kind, %name, "not found: that node gets no zone"),
            Err(e) => failed.push((name.as_str(), e)),
        }
    }
    if let Some((name, error)) = failed.first() {
        tracing::warn!(
            kind,
            %name,
            failed = failed.len(),
            error = %error,
            "cannot read the node pods' topology; placing those nodes without a zone"
        );
    }
    found
}

/// Merge-patches the StatefulSet: `spec.replicas` when given; the removing annotation set
/// (`Some(Some(id))`) or dropped (`Some(None)`).
async fn patch(
    api: &Api<StatefulSet>,
    name: &str,
    replicas: Option<u32>,
    removing: Option<Option<&str>>,
) -> Result<(), Error> {
    let mut body = serde_json::json!({});
    if let Some(r) = replicas {
        body["spec"] = serde_json::json!({ "replicas": r });
    }
    if let Some(value) = removing {
        body["metadata"] = serde_json::json!({ "annotations": { REMOVING_ANNOTATION: value } });
    }
    api.patch(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

fn unix_now() -> Seconds {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
