//! The `Stream` custom resource: a Kinesis data stream declared in Kubernetes.
// clippy reads repeated `printcolumn(type_ = ...)` arguments of the derive as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::Serialize;

/// Desired state of a Runnel stream. The operator reconciles it into the catalog.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "Stream",
    namespaced,
    status = "StreamStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "rstream",
    category = "runnel",
    doc = "A Kinesis-compatible data stream served by Runnel",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.streamModeDetails.streamMode"
    ),
    printcolumn(name = "Shards", type_ = "integer", json_path = ".status.openShardCount"),
    printcolumn(
        name = "Retention",
        type_ = "integer",
        json_path = ".spec.retentionPeriodHours"
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.streamStatus"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct StreamSpec {
    /// Stream name in the Kinesis API (1-128 of `[a-zA-Z0-9_.-]`). Defaults to `metadata.name`.
    /// Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Number of shards (PROVISIONED mode, required there, at least 1). With autoscaling enabled
    /// this is the initial count. Must be omitted in ON_DEMAND mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_count: Option<i32>,

    /// How long records stay readable, in hours: 24 to 8760 (365 days). Defaults to 24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_period_hours: Option<i32>,

    /// Capacity mode. Defaults to PROVISIONED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_mode_details: Option<StreamModeDetails>,

    /// Up to 50 tags (key 1-128 characters, value 0-256 characters, keys not starting with `aws:`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,

    /// Largest record accepted, in KiB: 1024 (the AWS default, 1 MiB) to 10240 (10 MiB).
    #[serde(default, rename = "maxRecordSizeKiB", skip_serializing_if = "Option::is_none")]
    pub max_record_size_kib: Option<i32>,

    /// Server-side encryption at rest. Defaults to NONE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,

    /// Enhanced fan-out consumers to register (names, 1-128 of `[a-zA-Z0-9_.-]`, at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumers: Vec<String>,

    /// Automatic split and merge of shards on observed throughput. On by default in ON_DEMAND
    /// mode, off by default in PROVISIONED mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// What happens to the stream and its data when this resource is deleted. Defaults to Retain.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Capacity mode, as in the Kinesis API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamModeDetails {
    /// PROVISIONED or ON_DEMAND.
    pub stream_mode: StreamMode,
}

/// PROVISIONED (a declared shard count) or ON_DEMAND (the operator sizes the stream).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum StreamMode {
    #[default]
    #[serde(rename = "PROVISIONED")]
    Provisioned,
    #[serde(rename = "ON_DEMAND")]
    OnDemand,
}

/// Server-side encryption settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// NONE or KMS.
    #[serde(rename = "type")]
    pub type_: EncryptionType,
    /// Key identifier; required with KMS, not allowed with NONE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Encryption type, as in the Kinesis API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EncryptionType {
    #[default]
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "KMS")]
    Kms,
}

/// Autoscaling bounds and pacing. See `docs/KUBERNETES.md` for how decisions are made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Turn autoscaling on or off. Defaults to true in ON_DEMAND mode, false in PROVISIONED mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Fewest open shards (at least 1). Defaults to 1 (4 in ON_DEMAND mode, as AWS starts there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_shards: Option<i32>,
    /// Most open shards. Defaults to 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_shards: Option<i32>,
    /// Per-shard write utilisation to aim for, in percent of the shard limit
    /// (1 MiB/s or 1000 records/s): 1 to 100. Defaults to 70.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_utilization_percent: Option<i32>,
    /// Least time between a scaling action and the next split, in seconds. Defaults to 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_cooldown_seconds: Option<i32>,
    /// Least time between a scaling action and the next merge, in seconds. Defaults to 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_cooldown_seconds: Option<i32>,
    /// How long a shard must stay above the target (every sample) before it is split, in
    /// seconds: 1 to 86400. Defaults to 120, so a short spike splits nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_window_seconds: Option<i32>,
    /// How long two adjacent shards must stay cold together before they are merged, in
    /// seconds: 1 to 86400. Defaults to 900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_window_seconds: Option<i32>,
}

/// Fate of the stream in the catalog when the resource is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the stream and its data in place; only stop managing it.
    #[default]
    Retain,
    /// Delete the stream and its data.
    Delete,
}

/// Observed state of a Runnel stream, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Scaling and Degraded conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    #[serde(default, rename = "streamARN", skip_serializing_if = "Option::is_none")]
    pub stream_arn: Option<String>,
    /// CREATING, ACTIVE, UPDATING or DELETING, as DescribeStream reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "stream_lifecycle_schema")]
    pub stream_status: Option<StreamLifecycle>,
    /// Open shards, and the closed shards they were split or merged from (lineage), with
    /// their placement and observed write rates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,
    /// Number of open shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_shard_count: Option<i32>,
    /// Server-side encryption of new records, as DescribeStreamSummary reports it: `KMS` or
    /// `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<String>,
    /// The KeyId new records are encrypted with (when `encryptionType` is `KMS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Throughput over the last observation window, for the whole stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_rates: Option<ObservedRates>,
    /// What the autoscaler last did and decided (autoscaled streams only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingStatus>,
    /// When the operator last changed the shard layout (UpdateShardCount, SplitShard or
    /// MergeShards); the autoscaler's cooldowns count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scaling_time: Option<Time>,
    /// The enhanced fan-out consumers this resource manages: those `spec.consumers` lists, and
    /// those it registered that are still being deregistered. Consumers registered through the
    /// API are not listed and never touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["consumerName"]))]
    pub consumers: Vec<ConsumerStatus>,
}

/// One enhanced fan-out consumer, as DescribeStreamConsumer describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    pub consumer_name: String,
    /// `<stream ARN>/consumer/<name>:<creation timestamp>`: what SubscribeToShard takes.
    #[serde(rename = "consumerARN")]
    pub consumer_arn: String,
    /// CREATING, ACTIVE or DELETING.
    pub consumer_status: String,
}

/// The autoscaler's latest decision and action.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingStatus {
    /// The last split or merge the operator made, e.g. `SplitShard shardId-000000000000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<String>,
    /// Why it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action_reason: Option<String>,
    /// The most recent decision, including "within target" and waiting for a cooldown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
}

/// The schema of an optional [`StreamLifecycle`]: schemars would list `null` among the enum
/// values, which kubectl's and older API servers' validation reject. The field is omitted when
/// unset, never null.
fn stream_lifecycle_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "CREATING, ACTIVE, UPDATING or DELETING, as DescribeStream reports it.",
        "type": "string",
        "enum": ["CREATING", "ACTIVE", "UPDATING", "DELETING"],
    })
}

/// Stream status, as in the Kinesis API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StreamLifecycle {
    #[serde(rename = "CREATING")]
    Creating,
    #[serde(rename = "ACTIVE")]
    Active,
    #[serde(rename = "UPDATING")]
    Updating,
    #[serde(rename = "DELETING")]
    Deleting,
}

/// One shard: hash key range (decimal strings over 0..2^128-1), lineage and placement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// `shardId-` followed by 12 digits.
    pub shard_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_shard_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_hash_key: String,
    pub ending_hash_key: String,
    /// True once the shard has been split or merged away (its ending sequence number is set).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
    /// Node ids holding a replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    /// The zone of each replica, in the order of `replicas` (`""` where unknown): the
    /// `topology.kubernetes.io/zone` label of the Kubernetes Node its node pod runs on. Absent
    /// when no replica's zone is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_zones: Vec<String>,
    /// Node id of the current Raft leader, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Bytes per second written to the shard over the last sampling interval (open shards,
    /// when the operator reads the nodes' metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_bytes_per_second: Option<f64>,
    /// Records per second written to the shard over the last sampling interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_records_per_second: Option<f64>,
}

/// Stream throughput, as rates (per second).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedRates {
    pub incoming_bytes_per_second: f64,
    pub incoming_records_per_second: f64,
    pub outgoing_bytes_per_second: f64,
}

impl Stream {
    /// The stream's name in the Kinesis API: `spec.name`, else `metadata.name`.
    pub fn stream_name(&self) -> Option<&str> {
        self.spec.name.as_deref().or(self.metadata.name.as_deref())
    }
}

impl StreamSpec {
    /// The capacity mode, PROVISIONED when unset.
    pub fn mode(&self) -> StreamMode {
        self.stream_mode_details
            .as_ref()
            .map(|d| d.stream_mode)
            .unwrap_or_default()
    }
}
