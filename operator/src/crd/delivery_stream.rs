//! The `DeliveryStream` custom resource: a Firehose-style delivery from a stream to an
//! S3-compatible bucket.
// clippy reads repeated `printcolumn(type_ = ...)` arguments of the derive as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::Serialize;

/// Desired state of a delivery stream. The operator stores it in the catalog; the nodes run it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "runnel.dev",
    version = "v1alpha1",
    kind = "DeliveryStream",
    namespaced,
    status = "DeliveryStreamStatus",
    derive = "PartialEq",
    derive = "Default",
    shortname = "rdstream",
    category = "runnel",
    doc = "A Firehose-compatible delivery stream from a Runnel stream to S3-compatible storage",
    printcolumn(name = "Source", type_ = "string", json_path = ".spec.source.streamName"),
    printcolumn(name = "Bucket", type_ = "string", json_path = ".spec.destination.s3.bucket"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.deliveryStreamStatus"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStreamSpec {
    /// Delivery stream name in the Firehose API (1-64 of `[a-zA-Z0-9_.-]`). Defaults to
    /// `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_stream_name: Option<String>,
    /// Where records come from.
    pub source: DeliverySource,
    /// When a batch is flushed to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffering: Option<Buffering>,
    /// Record transformations applied before delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<Processing>,
    /// Where batches are written.
    pub destination: DeliveryDestination,
    /// Tags, as on streams.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// The stream the delivery stream reads (a Runnel stream in the same catalog).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySource {
    /// Kinesis name of the source stream.
    pub stream_name: String,
}

/// Buffering hints: a batch is flushed when either bound is reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Buffering {
    /// Batch size in MiB, 1 to 128. Defaults to 5.
    #[serde(default, rename = "sizeMiB", skip_serializing_if = "Option::is_none")]
    pub size_mib: Option<i32>,
    /// Longest wait before a flush, in seconds, 0 to 900. Defaults to 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<i32>,
}

/// Record processing, in the Firehose `ProcessingConfiguration` shape.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Processing {
    /// Defaults to true when processors are listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<Processor>,
}

/// One processor and its parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Processor {
    #[serde(rename = "type")]
    pub type_: ProcessorType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ProcessorParameter>,
}

/// Built-in processors (Firehose names; Lambda is not available).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProcessorType {
    /// Split KPL-aggregated records into their user records.
    #[default]
    RecordDeAggregation,
    /// Append a delimiter (default newline) to each record.
    AppendDelimiterToRecord,
    /// Decompress gzip-compressed records.
    Decompression,
    /// Extract partitioning keys from JSON records.
    MetadataExtraction,
}

/// A processor parameter, as in Firehose (`parameterName` / `parameterValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessorParameter {
    pub parameter_name: String,
    pub parameter_value: String,
}

/// Destination of a delivery stream. Exactly one destination must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDestination {
    /// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Destination>,
}

/// S3-compatible destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    /// Endpoint URL, e.g. `http://minio.storage:9000`. AWS S3 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region for request signing. Defaults to `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Use path-style addressing (needed by most self-hosted stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_path_style: Option<bool>,
    pub bucket: String,
    /// Object key prefix; Firehose's default `YYYY/MM/DD/HH/` layout follows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Prefix for records that failed processing or delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_output_prefix: Option<String>,
    /// Object compression. Defaults to NONE.
    #[serde(default)]
    pub compression: CompressionFormat,
    /// Secret holding the access key pair. Without it the nodes' ambient credentials are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,
}

/// Compression of delivered objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CompressionFormat {
    #[default]
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "GZIP")]
    Gzip,
    #[serde(rename = "ZSTD")]
    Zstd,
}

/// A Secret in the resource's namespace with the S3 access key pair.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    pub name: String,
    /// Key of the access key id in the Secret. Defaults to `accessKeyId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    /// Key of the secret access key in the Secret. Defaults to `secretAccessKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
}

/// Observed state of a delivery stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStreamStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Stored and Degraded conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// `arn:aws:firehose:<region>:<account>:deliverystream/<name>`.
    #[serde(
        default,
        rename = "deliveryStreamARN",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_stream_arn: Option<String>,
    /// The delivery stream's status as the catalog reports it: `DECLARED` (stored; no
    /// delivery engine runs it yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_stream_status: Option<String>,
}

impl DeliveryStream {
    /// The delivery stream's name in the Firehose API: `spec.deliveryStreamName`, else
    /// `metadata.name`.
    pub fn delivery_stream_name(&self) -> Option<&str> {
        self.spec
            .delivery_stream_name
            .as_deref()
            .or(self.metadata.name.as_deref())
    }
}
