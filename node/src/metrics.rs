//! Prometheus metrics, named after the CloudWatch metrics Kinesis users know, and the HTTP
//! endpoint that serves them.

use std::net::SocketAddr;

use prometheus::CounterVec;
use prometheus::Encoder;
use prometheus::Histogram;
use prometheus::HistogramOpts;
use prometheus::HistogramVec;
use prometheus::IntCounterVec;
use prometheus::IntGaugeVec;
use prometheus::Opts;
use prometheus::Registry;
use prometheus::TextEncoder;

fn latency_buckets() -> Vec<f64> {
    vec![
        0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ]
}

/// Per-stream API metrics.
#[derive(Clone)]
pub struct StreamMetrics {
    pub incoming_bytes: IntCounterVec,
    pub incoming_records: IntCounterVec,
    /// IncomingBytes per shard (labels `stream`, `shard`), counted by the node that took the
    /// request: the operator's autoscaler sums them over the nodes.
    pub shard_incoming_bytes: IntCounterVec,
    /// IncomingRecords per shard (labels `stream`, `shard`).
    pub shard_incoming_records: IntCounterVec,
    /// OutgoingBytes per shard (labels `stream`, `shard`): bytes GetRecords returned (data +
    /// partition key; the reads that share a shard's 2 MiB/s), counted by the node that served
    /// the call, summed over the nodes by the operator's autoscaler.
    pub shard_outgoing_bytes: IntCounterVec,
    pub put_latency: HistogramVec,
    pub put_failed_records: IntCounterVec,
    pub get_records_bytes: IntCounterVec,
    pub get_records_records: IntCounterVec,
    pub get_records_latency: HistogramVec,
    pub iterator_age_ms: IntGaugeVec,
    pub subscribe_iterator_age_ms: IntGaugeVec,
    pub open_shards: IntGaugeVec,
    /// Per shard written through this node in the last stats window: the bytes of its hottest
    /// hash key (a lower bound; labels `stream`, `shard`, `hash_key`, one series per shard)
    /// and of all its writes (`shard_window_bytes`). The operator adds them up over the nodes
    /// to split a shard next to a hot key.
    pub shard_hot_key_bytes: IntGaugeVec,
    pub shard_window_bytes: IntGaugeVec,
    /// Records refused by per-shard write throttling (PutRecord and PutRecords).
    pub write_throughput_exceeded: IntCounterVec,
    /// GetRecords calls refused by per-shard read throttling.
    pub read_throughput_exceeded: IntCounterVec,
    /// Splits of hot ON_DEMAND shards started by this node.
    pub on_demand_splits: IntCounterVec,
    /// Merges of cold ON_DEMAND shards started by this node.
    pub on_demand_merges: IntCounterVec,
    /// API calls refused by their per-second limits (label `operation`; see
    /// `capacity::api_limits`).
    pub api_calls_throttled: IntCounterVec,
}

/// Per-stream usage for charge-back (see `capacity::usage` for the units).
#[derive(Clone)]
pub struct UsageMetrics {
    /// Shard-hours of open shards, accrued by the replica leading each shard.
    pub shard_hours: CounterVec,
    /// Bytes of accepted records (data + partition key).
    pub bytes_in: IntCounterVec,
    /// Bytes of records delivered by GetRecords and subscriptions (data + partition key).
    pub bytes_out: IntCounterVec,
    /// PUT payload units of accepted records (25 KiB each, rounded up per record).
    pub put_payload_units: IntCounterVec,
}

/// Storage metrics.
#[derive(Clone)]
pub struct StorageMetrics {
    pub fsync_seconds: Histogram,
    pub group_commit_batch: Histogram,
    pub segments: IntGaugeVec,
    pub bytes_on_disk: IntGaugeVec,
}

/// Raft metrics per group.
#[derive(Clone)]
pub struct RaftMetrics {
    pub term: IntGaugeVec,
    pub commit_index: IntGaugeVec,
    pub applied_index: IntGaugeVec,
    pub apply_lag: IntGaugeVec,
    pub is_leader: IntGaugeVec,
    /// On a leader: entries each follower is behind the leader's last log index.
    pub replication_lag: IntGaugeVec,
}

/// Node-to-node replication traffic (cluster mode).
#[derive(Clone)]
pub struct TransportMetrics {
    /// Encoded Raft messages sent to each peer (by the address this node reaches it at).
    pub sent_bytes: IntCounterVec,
    /// Encoded replies received from each peer.
    pub received_bytes: IntCounterVec,
    /// `Raft.Batch` calls made to each peer.
    pub batches: IntCounterVec,
    /// AppendEntries requests sent on the pipeline lanes to each peer (not as `Raft.Batch`).
    pub pipelined_appends: IntCounterVec,
    /// Encoded Raft messages received from other nodes.
    pub inbound_bytes: IntCounterVec,
    /// Peers this node keeps a replication connection to.
    pub connections: IntGaugeVec,
    /// Shard replicas quiesced here: led or followed without ticking (no heartbeats, no
    /// election timer).
    pub quiesced_groups: IntGaugeVec,
}

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub streams: StreamMetrics,
    pub usage: UsageMetrics,
    pub storage: StorageMetrics,
    pub raft: RaftMetrics,
    pub transport: TransportMetrics,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(latency_buckets()), labels)?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new_custom(Some("runnel".into()), None)?;
        let streams = StreamMetrics {
            incoming_bytes: counter(
                &r,
                "incoming_bytes_total",
                "IncomingBytes: bytes put into the stream",
                &["stream"],
            )?,
            incoming_records: counter(
                &r,
                "incoming_records_total",
                "IncomingRecords: records put",
                &["stream"],
            )?,
            shard_incoming_bytes: counter(
                &r,
                "shard_incoming_bytes_total",
                "IncomingBytes per shard: bytes of accepted records (data + partition key)",
                &["stream", "shard"],
            )?,
            shard_incoming_records: counter(
                &r,
                "shard_incoming_records_total",
                "IncomingRecords per shard: accepted records",
                &["stream", "shard"],
            )?,
            shard_outgoing_bytes: counter(
                &r,
                "shard_outgoing_bytes_total",
                "OutgoingBytes per shard: bytes GetRecords returned (data + partition key)",
                &["stream", "shard"],
            )?,
            put_latency: histogram_vec(
                &r,
                "put_records_latency_seconds",
                "PutRecords.Latency",
                &["stream"],
            )?,
            put_failed_records: counter(
                &r,
                "put_records_failed_records_total",
                "PutRecords.FailedRecords",
                &["stream"],
            )?,
            get_records_bytes: counter(&r, "get_records_bytes_total", "GetRecords.Bytes", &["stream"])?,
            get_records_records: counter(&r, "get_records_records_total", "GetRecords.Records", &["stream"])?,
            get_records_latency: histogram_vec(
                &r,
                "get_records_latency_seconds",
                "GetRecords.Latency",
                &["stream"],
            )?,
            iterator_age_ms: gauge(
                &r,
                "get_records_iterator_age_milliseconds",
                "GetRecords.IteratorAgeMilliseconds: age of the last record returned",
                &["stream"],
            )?,
            subscribe_iterator_age_ms: gauge(
                &r,
                "subscribe_to_shard_event_millis_behind_latest",
                "SubscribeToShardEvent.MillisBehindLatest",
                &["stream"],
            )?,
            open_shards: gauge(&r, "stream_open_shards", "OpenShardCount", &["stream"])?,
            shard_hot_key_bytes: gauge(
                &r,
                "shard_hot_key_bytes",
                "Bytes of the hottest hash key of the shard written through this node in the last stats window (a lower bound)",
                &["stream", "shard", "hash_key"],
            )?,
            shard_window_bytes: gauge(
                &r,
                "shard_window_bytes",
                "Bytes written to the shard through this node in the last stats window",
                &["stream", "shard"],
            )?,
            write_throughput_exceeded: counter(
                &r,
                "write_provisioned_throughput_exceeded_total",
                "WriteProvisionedThroughputExceeded: records rejected by per-shard write throttling",
                &["stream"],
            )?,
            read_throughput_exceeded: counter(
                &r,
                "read_provisioned_throughput_exceeded_total",
                "ReadProvisionedThroughputExceeded: GetRecords calls rejected by per-shard read throttling",
                &["stream"],
            )?,
            on_demand_splits: counter(
                &r,
                "on_demand_splits_total",
                "Hot ON_DEMAND shards split by this node",
                &["stream"],
            )?,
            on_demand_merges: counter(
                &r,
                "on_demand_merges_total",
                "Pairs of cold ON_DEMAND shards merged by this node",
                &["stream"],
            )?,
            api_calls_throttled: counter(
                &r,
                "api_calls_throttled_total",
                "API calls refused by this node for exceeding their per-second limit",
                &["operation"],
            )?,
        };
        let shard_hours = CounterVec::new(
            Opts::new(
                "usage_shard_hours_total",
                "shard-hours of open shards (counted by each shard's leader)",
            ),
            &["stream"],
        )?;
        r.register(Box::new(shard_hours.clone()))?;
        let usage = UsageMetrics {
            shard_hours,
            bytes_in: counter(
                &r,
                "usage_bytes_in_total",
                "bytes of accepted records (data + partition key)",
                &["stream"],
            )?,
            bytes_out: counter(
                &r,
                "usage_bytes_out_total",
                "bytes of records delivered by GetRecords and subscriptions (data + partition key)",
                &["stream"],
            )?,
            put_payload_units: counter(
                &r,
                "usage_put_payload_units_total",
                "PUT payload units of accepted records (25 KiB = 25,600 bytes per unit, rounded up per record)",
                &["stream"],
            )?,
        };
        let fsync_seconds = Histogram::with_opts(
            HistogramOpts::new("fsync_seconds", "fsync latency").buckets(latency_buckets()),
        )?;
        r.register(Box::new(fsync_seconds.clone()))?;
        let group_commit_batch = Histogram::with_opts(
            HistogramOpts::new("group_commit_batch_size", "appends acknowledged per group commit")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        )?;
        r.register(Box::new(group_commit_batch.clone()))?;
        let storage = StorageMetrics {
            fsync_seconds,
            group_commit_batch,
            segments: gauge(&r, "log_segments", "segment files of the shard logs", &["stream"])?,
            bytes_on_disk: gauge(&r, "log_bytes", "bytes on disk of the shard logs", &["stream"])?,
        };
        let raft = RaftMetrics {
            term: gauge(&r, "raft_term", "current term", &["group"])?,
            commit_index: gauge(&r, "raft_commit_index", "committed log index", &["group"])?,
            applied_index: gauge(&r, "raft_applied_index", "applied log index", &["group"])?,
            apply_lag: gauge(
                &r,
                "raft_apply_lag",
                "committed minus applied entries",
                &["group"],
            )?,
            is_leader: gauge(
                &r,
                "raft_is_leader",
                "1 when this replica leads its group",
                &["group"],
            )?,
            replication_lag: gauge(
                &r,
                "raft_replication_lag",
                "entries a follower is behind its leader (reported by the leader)",
                &["group", "follower"],
            )?,
        };
        let transport = TransportMetrics {
            sent_bytes: counter(
                &r,
                "replication_sent_bytes_total",
                "encoded Raft messages sent to a peer",
                &["peer"],
            )?,
            received_bytes: counter(
                &r,
                "replication_received_bytes_total",
                "encoded Raft replies received from a peer",
                &["peer"],
            )?,
            batches: counter(
                &r,
                "replication_batches_total",
                "Raft.Batch calls made to a peer",
                &["peer"],
            )?,
            pipelined_appends: counter(
                &r,
                "replication_pipelined_appends_total",
                "AppendEntries requests sent to a peer on its pipeline lanes",
                &["peer"],
            )?,
            inbound_bytes: counter(
                &r,
                "replication_inbound_bytes_total",
                "encoded Raft messages received from other nodes",
                &[],
            )?,
            connections: gauge(
                &r,
                "replication_connections",
                "peers this node keeps a replication connection to",
                &[],
            )?,
            quiesced_groups: gauge(
                &r,
                "raft_quiesced_groups",
                "shard replicas quiesced on this node: led or followed without ticking (no heartbeats, no election timer)",
                &[],
            )?,
        };
        Ok(Metrics {
            registry: r,
            streams,
            usage,
            storage,
            raft,
            transport,
        })
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        let mut text = String::from_utf8(buf).unwrap_or_default();
        if let Some(cpu) = process_cpu_seconds() {
            text.push_str(&format!(
                "# HELP process_cpu_seconds_total CPU time of the process (user and system).\n\
                 # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"
            ));
        }
        text
    }
}

/// CPU time this process has used (Linux: utime + stime of `/proc/self/stat`, in USER_HZ
/// ticks of 1/100 s); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, inside parentheses); the first of
    // them is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Serves `/metrics` (Prometheus text) and `/healthz` until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        m.render(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }));
    axum::serve(listener, app).await
}

pub fn describe_addr(addr: &SocketAddr) -> String {
    format!("http://{addr}/metrics")
}
