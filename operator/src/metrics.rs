//! The operator's own Prometheus metrics and its `/metrics`, `/healthz` and `/readyz` server.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use prometheus::Encoder;
use prometheus::GaugeVec;
use prometheus::HistogramOpts;
use prometheus::HistogramVec;
use prometheus::IntCounterVec;
use prometheus::IntGauge;
use prometheus::Opts;
use prometheus::Registry;
use prometheus::TextEncoder;

/// Counters and gauges of the operator.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciliations by resource kind and result (`ok` / `error`).
    pub reconciliations: IntCounterVec,
    /// Reconciliation duration by resource kind.
    pub reconcile_duration: HistogramVec,
    /// 1 while this replica holds the leader Lease (or runs without election), else 0.
    pub leader: IntGauge,
    /// Placement actions by action and outcome (`started`, `failed`, or `skipped_<reason>`).
    pub placement_actions: IntCounterVec,
    /// Replica moves this operator started that have not finished yet.
    pub moves_in_flight: IntGauge,
    /// Node StatefulSet steps taken (`grow`, `drain`, `mark_removing`, `remove`, `shrink`) by
    /// result (`ok` / `error`).
    pub node_scaling: IntCounterVec,
    /// Cluster members as DescribeCluster last reported them.
    pub cluster_nodes: IntGauge,
    /// Each member's write capacity (bytes/s) in placement, labelled by node id and zone
    /// (empty when unknown).
    pub node_capacity: GaugeVec,
    ready: Arc<AtomicBool>,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let reconciliations = IntCounterVec::new(
            Opts::new(
                "runnel_operator_reconciliations_total",
                "Reconciliations by kind and result",
            ),
            &["kind", "result"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "runnel_operator_reconcile_duration_seconds",
                "Time spent in one reconciliation",
            )
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0]),
            &["kind"],
        )?;
        let leader = IntGauge::new(
            "runnel_operator_leader",
            "1 while this replica is the leader and runs the controllers",
        )?;
        let placement_actions = IntCounterVec::new(
            Opts::new(
                "runnel_operator_placement_actions_total",
                "Replica placement actions by action and outcome",
            ),
            &["action", "outcome"],
        )?;
        let moves_in_flight = IntGauge::new(
            "runnel_operator_replica_moves_in_flight",
            "Replica moves started by the operator and not finished yet",
        )?;
        let node_scaling = IntCounterVec::new(
            Opts::new(
                "runnel_operator_node_scaling_steps_total",
                "Node StatefulSet scaling steps by step and result",
            ),
            &["step", "result"],
        )?;
        let cluster_nodes = IntGauge::new(
            "runnel_operator_cluster_nodes",
            "Members of the Runnel cluster (DescribeCluster)",
        )?;
        let node_capacity = GaugeVec::new(
            Opts::new(
                "runnel_operator_node_capacity_bytes_per_second",
                "Write bytes/s each member sustains in replica placement, by node id and zone",
            ),
            &["node", "zone"],
        )?;
        registry.register(Box::new(node_capacity.clone()))?;
        registry.register(Box::new(placement_actions.clone()))?;
        registry.register(Box::new(moves_in_flight.clone()))?;
        registry.register(Box::new(node_scaling.clone()))?;
        registry.register(Box::new(cluster_nodes.clone()))?;
        registry.register(Box::new(reconciliations.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Metrics {
            registry,
            reconciliations,
            reconcile_duration,
            leader,
            placement_actions,
            moves_in_flight,
            node_scaling,
            cluster_nodes,
            node_capacity,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Marks the operator ready (`/readyz` answers 200).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Serves `/metrics`, `/healthz` (always ok while the process runs) and `/readyz` (ok once
/// connected to the API server; a standby replica is ready too).
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) -> std::io::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let m = metrics.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = metrics.ready.load(Ordering::SeqCst);
                async move {
                    if ready {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        );
    axum::serve(listener, app).await
}
