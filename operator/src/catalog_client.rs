//! A thin wrapper over the node admin gRPC API: describe, list, create and delete streams,
//! change their retention, tags, mode and shards, put, describe and delete delivery streams,
//! and the cluster calls (describe, move a replica, drain and remove a node). Any node answers
//! admin calls; the client tries the known nodes in order and moves on when one is
//! unreachable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::time::Duration;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use tonic::Code;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::crd::StreamMode;
use crate::observed::ObservedConsumer;
use crate::observed::ObservedStream;

/// How long to wait for a TCP connection to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors of admin calls.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no runnel node is configured")]
    NoNodes,
    #[error("invalid node address {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    #[error("no runnel node answered {op} (tried {tried}): {last}")]
    Unavailable {
        op: &'static str,
        tried: String,
        last: String,
    },
    #[error("{op} of stream {stream:?} failed: {code:?}: {message}")]
    Rejected {
        op: &'static str,
        stream: String,
        code: Code,
        message: String,
    },
}

/// What CreateStream needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateStream {
    pub name: String,
    pub mode: StreamMode,
    pub shard_count: Option<u32>,
    pub retention_period_hours: u32,
    pub tags: BTreeMap<String, String>,
    /// MaxRecordSizeInKiB.
    pub max_record_size_kib: u32,
}

/// Admin client over a set of node addresses (`HOST:PORT` of their gRPC port).
#[derive(Clone)]
pub struct CatalogClient {
    nodes: Arc<RwLock<Vec<Node>>>,
}

#[derive(Clone)]
struct Node {
    addr: String,
    client: AdminClient<Channel>,
}

impl CatalogClient {
    /// A client for these nodes. Connections are made lazily, on the first call.
    pub fn new(addrs: &[String]) -> Result<Self, CatalogError> {
        let client = CatalogClient {
            nodes: Arc::new(RwLock::new(Vec::new())),
        };
        client.set_nodes(addrs)?;
        Ok(client)
    }

    /// Replaces the node list (after discovery found a different set). Unchanged addresses keep
    /// their connections.
    pub fn set_nodes(&self, addrs: &[String]) -> Result<(), CatalogError> {
        let old = self.snapshot();
        let mut nodes = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match old.iter().find(|n| &n.addr == addr) {
                Some(n) => nodes.push(n.clone()),
                None => nodes.push(Node {
                    addr: addr.clone(),
                    client: AdminClient::new(lazy_channel(addr)?),
                }),
            }
        }
        if let Ok(mut guard) = self.nodes.write() {
            *guard = nodes;
        }
        Ok(())
    }

    /// The configured node addresses.
    pub fn addrs(&self) -> Vec<String> {
        self.snapshot().into_iter().map(|n| n.addr).collect()
    }

    fn snapshot(&self) -> Vec<Node> {
        self.nodes.read().map(|n| n.clone()).unwrap_or_default()
    }

    /// The stream's description, or None when the catalog has no such stream.
    pub async fn describe(&self, name: &str) -> Result<Option<ObservedStream>, CatalogError> {
        let request = pb::DescribeStreamRequest {
            stream_name: name.to_string(),
        };
        let result = self
            .call("DescribeStream", name, |mut c| {
                let request = request.clone();
                async move { c.describe_stream(request).await }
            })
            .await;
        Ok(absent_as_none(result)?
            .and_then(|response| response.stream)
            .map(ObservedStream::from))
    }

    /// Creates the stream. When it already exists (a concurrent or earlier create), returns its
    /// current description instead.
    pub async fn create(&self, create: &CreateStream) -> Result<ObservedStream, CatalogError> {
        let request = pb::CreateStreamRequest {
            stream_name: create.name.clone(),
            shard_count: create.shard_count,
            mode: proto_mode(create.mode) as i32,
            tags: create.tags.clone().into_iter().collect(),
            retention_period_hours: Some(create.retention_period_hours),
            max_record_size_kib: Some(create.max_record_size_kib),
        };
        let result = self
            .call("CreateStream", &create.name, |mut c| {
                let request = request.clone();
                async move { c.create_stream(request).await }
            })
            .await;
        match result {
            Ok(pb::CreateStreamResponse { stream: Some(stream) }) => Ok(stream.into()),
            Ok(pb::CreateStreamResponse { stream: None })
            | Err(CatalogError::Rejected {
                code: Code::FailedPrecondition,
                ..
            }) => self
                .describe(&create.name)
                .await?
                .ok_or_else(|| CatalogError::Rejected {
                    op: "CreateStream",
                    stream: create.name.clone(),
                    code: Code::NotFound,
                    message: "the stream vanished right after it was created".to_string(),
                }),
            Err(e) => Err(e),
        }
    }

    /// Deletes the stream. A stream that does not exist counts as deleted.
    pub async fn delete(&self, name: &str) -> Result<(), CatalogError> {
        let request = pb::DeleteStreamRequest {
            stream_name: name.to_string(),
        };
        let result = self
            .call("DeleteStream", name, |mut c| {
                let request = request.clone();
                async move { c.delete_stream(request).await }
            })
            .await;
        absent_as_none(result).map(|_| ())
    }

    /// Sets the stream's retention period.
    pub async fn update_retention(&self, name: &str, hours: u32) -> Result<(), CatalogError> {
        let request = pb::UpdateRetentionRequest {
            stream_name: name.to_string(),
            retention_period_hours: hours,
        };
        self.call("UpdateRetention", name, |mut c| {
            let request = request.clone();
            async move { c.update_retention(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Starts (`key_id` set) or stops server-side encryption of the stream's new records.
    pub async fn update_encryption(&self, name: &str, key_id: Option<&str>) -> Result<(), CatalogError> {
        let request = pb::UpdateEncryptionRequest {
            stream_name: name.to_string(),
            key_id: key_id.map(str::to_string),
        };
        self.call("UpdateEncryption", name, |mut c| {
            let request = request.clone();
            async move { c.update_encryption(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Sets the largest record the stream accepts.
    pub async fn update_max_record_size(&self, name: &str, kib: u32) -> Result<(), CatalogError> {
        let request = pb::UpdateMaxRecordSizeRequest {
            stream_name: name.to_string(),
            max_record_size_kib: kib,
        };
        self.call("UpdateMaxRecordSize", name, |mut c| {
            let request = request.clone();
            async move { c.update_max_record_size(request).await }
        })
        .await
        .map(|_| ())
    }

    /// UpdateShardCount (UNIFORM_SCALING) to `target`, at most double or half the open shards.
    pub async fn update_shard_count(&self, name: &str, target: u32) -> Result<(), CatalogError> {
        let request = pb::UpdateShardCountRequest {
            stream_name: name.to_string(),
            target_shard_count: target,
        };
        self.call("UpdateShardCount", name, |mut c| {
            let request = request.clone();
            async move { c.update_shard_count(request).await }
        })
        .await
        .map(|_| ())
    }

    /// SplitShard at `new_starting_hash_key` (the first key of the upper child).
    pub async fn split_shard(
        &self,
        name: &str,
        shard_id: &str,
        new_starting_hash_key: u128,
    ) -> Result<(), CatalogError> {
        let request = pb::SplitShardRequest {
            stream_name: name.to_string(),
            shard_to_split: shard_id.to_string(),
            new_starting_hash_key: new_starting_hash_key.to_string(),
        };
        self.call("SplitShard", name, |mut c| {
            let request = request.clone();
            async move { c.split_shard(request).await }
        })
        .await
        .map(|_| ())
    }

    /// MergeShards of `shard_id` and the adjacent shard above it.
    pub async fn merge_shards(
        &self,
        name: &str,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> Result<(), CatalogError> {
        let request = pb::MergeShardsRequest {
            stream_name: name.to_string(),
            shard_to_merge: shard_id.to_string(),
            adjacent_shard_to_merge: adjacent_shard_id.to_string(),
        };
        self.call("MergeShards", name, |mut c| {
            let request = request.clone();
            async move { c.merge_shards(request).await }
        })
        .await
        .map(|_| ())
    }

    /// UpdateStreamMode.
    pub async fn update_stream_mode(&self, name: &str, mode: StreamMode) -> Result<(), CatalogError> {
        let request = pb::UpdateStreamModeRequest {
            stream_name: name.to_string(),
            mode: proto_mode(mode) as i32,
        };
        self.call("UpdateStreamMode", name, |mut c| {
            let request = request.clone();
            async move { c.update_stream_mode(request).await }
        })
        .await
        .map(|_| ())
    }

    /// UpdateTags: sets `add`, then removes `remove`.
    pub async fn update_tags(
        &self,
        name: &str,
        add: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), CatalogError> {
        let request = pb::UpdateTagsRequest {
            stream_name: name.to_string(),
            add: add.clone().into_iter().collect(),
            remove: remove.to_vec(),
        };
        self.call("UpdateTags", name, |mut c| {
            let request = request.clone();
            async move { c.update_tags(request).await }
        })
        .await
        .map(|_| ())
    }

    /// The stream's enhanced fan-out consumers.
    pub async fn list_consumers(&self, name: &str) -> Result<Vec<ObservedConsumer>, CatalogError> {
        let request = pb::ListConsumersRequest {
            stream_name: name.to_string(),
        };
        let listed = self
            .call("ListConsumers", name, |mut c| {
                let request = request.clone();
                async move { c.list_consumers(request).await }
            })
            .await?;
        Ok(listed.consumers.into_iter().map(ObservedConsumer::from).collect())
    }

    /// Registers an enhanced fan-out consumer (CREATING, then ACTIVE).
    pub async fn register_consumer(&self, name: &str, consumer: &str) -> Result<(), CatalogError> {
        let request = pb::RegisterConsumerRequest {
            stream_name: name.to_string(),
            consumer_name: consumer.to_string(),
        };
        self.call("RegisterConsumer", name, |mut c| {
            let request = request.clone();
            async move { c.register_consumer(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Deregisters an enhanced fan-out consumer (DELETING, then gone).
    pub async fn deregister_consumer(&self, name: &str, consumer: &str) -> Result<(), CatalogError> {
        let request = pb::DeregisterConsumerRequest {
            stream_name: name.to_string(),
            consumer_name: consumer.to_string(),
        };
        self.call("DeregisterConsumer", name, |mut c| {
            let request = request.clone();
            async move { c.deregister_consumer(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Every stream's name (ListStreams, all pages).
    pub async fn list_streams(&self) -> Result<Vec<String>, CatalogError> {
        let mut names: Vec<String> = Vec::new();
        loop {
            let request = pb::ListStreamsRequest {
                exclusive_start_stream_name: names.last().cloned().unwrap_or_default(),
                limit: 1000,
            };
            let page = self
                .call("ListStreams", "", |mut c| {
                    let request = request.clone();
                    async move { c.list_streams(request).await }
                })
                .await?;
            let more = page.has_more_streams && !page.stream_names.is_empty();
            names.extend(page.stream_names);
            if !more {
                return Ok(names);
            }
        }
    }

    /// The cluster's nodes (replicas, moves under way, draining) and the catalog leader.
    pub async fn describe_cluster(&self) -> Result<pb::DescribeClusterResponse, CatalogError> {
        self.call("DescribeCluster", "", |mut c| async move {
            c.describe_cluster(pb::DescribeClusterRequest {}).await
        })
        .await
    }

    /// Moves the replica of `shard_id` on node `from` to node `to` (recorded in the catalog,
    /// carried out by the shard's leader).
    pub async fn move_replica(
        &self,
        stream: &str,
        shard_id: &str,
        from: u64,
        to: u64,
    ) -> Result<(), CatalogError> {
        let request = pb::MoveReplicaRequest {
            stream_name: stream.to_string(),
            shard_id: shard_id.to_string(),
            from_node: from,
            to_node: to,
        };
        self.call("MoveReplica", stream, |mut c| {
            let request = request.clone();
            async move { c.move_replica(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Marks node `node_id` draining and plans a move of every replica it holds; answers how
    /// many moves are under way.
    pub async fn drain_node(&self, node_id: u64) -> Result<u32, CatalogError> {
        self.call("DrainNode", "", |mut c| async move {
            c.drain_node(pb::DrainNodeRequest { node_id }).await
        })
        .await
        .map(|r| r.moving)
    }

    /// Removes node `node_id` (which must hold no replicas) from the cluster.
    pub async fn remove_node(&self, node_id: u64) -> Result<(), CatalogError> {
        self.call("RemoveNode", "", |mut c| async move {
            c.remove_node(pb::RemoveNodeRequest { node_id }).await
        })
        .await
        .map(|_| ())
    }

    /// The delivery stream as the catalog holds it, or None when there is none.
    pub async fn describe_delivery_stream(
        &self,
        name: &str,
    ) -> Result<Option<pb::DeliveryStreamDescription>, CatalogError> {
        let request = pb::DescribeDeliveryStreamRequest {
            delivery_stream_name: name.to_string(),
        };
        let result = self
            .call("DescribeDeliveryStream", name, |mut c| {
                let request = request.clone();
                async move { c.describe_delivery_stream(request).await }
            })
            .await;
        Ok(absent_as_none(result)?.and_then(|response| response.delivery_stream))
    }

    /// Creates the delivery stream or replaces its spec (idempotent); returns what is stored.
    pub async fn put_delivery_stream(
        &self,
        name: &str,
        spec_json: &str,
    ) -> Result<pb::DeliveryStreamDescription, CatalogError> {
        let request = pb::PutDeliveryStreamRequest {
            delivery_stream_name: name.to_string(),
            spec_json: spec_json.to_string(),
        };
        let response = self
            .call("PutDeliveryStream", name, |mut c| {
                let request = request.clone();
                async move { c.put_delivery_stream(request).await }
            })
            .await?;
        response.delivery_stream.ok_or_else(|| CatalogError::Rejected {
            op: "PutDeliveryStream",
            stream: name.to_string(),
            code: Code::Internal,
            message: "the node answered without a description".to_string(),
        })
    }

    /// Deletes the delivery stream. One that does not exist counts as deleted.
    pub async fn delete_delivery_stream(&self, name: &str) -> Result<(), CatalogError> {
        let request = pb::DeleteDeliveryStreamRequest {
            delivery_stream_name: name.to_string(),
        };
        let result = self
            .call("DeleteDeliveryStream", name, |mut c| {
                let request = request.clone();
                async move { c.delete_delivery_stream(request).await }
            })
            .await;
        absent_as_none(result).map(|_| ())
    }

    /// Runs `call` against each node in turn until one answers (successfully or with an
    /// application error); transport failures move on to the next node.
    async fn call<T, F, Fut>(&self, op: &'static str, stream: &str, call: F) -> Result<T, CatalogError>
    where
        F: Fn(AdminClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let nodes = self.snapshot();
        if nodes.is_empty() {
            return Err(CatalogError::NoNodes);
        }
        let mut last = String::new();
        for node in &nodes {
            match tokio::time::timeout(CALL_TIMEOUT, call(node.client.clone())).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) if is_transport_failure(&status) => {
                    last = format!("{}: {}", node.addr, status.message());
                }
                Ok(Err(status)) => {
                    return Err(CatalogError::Rejected {
                        op,
                        stream: stream.to_string(),
                        code: status.code(),
                        message: status.message().to_string(),
                    });
                }
                Err(_) => last = format!("{}: no answer within {CALL_TIMEOUT:?}", node.addr),
            }
        }
        Err(CatalogError::Unavailable {
            op,
            tried: nodes
                .iter()
                .map(|n| n.addr.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last,
        })
    }
}

/// The answer, or None when the node said NOT_FOUND (the resource is absent).
fn absent_as_none<T>(result: Result<T, CatalogError>) -> Result<Option<T>, CatalogError> {
    match result {
        Ok(t) => Ok(Some(t)),
        Err(CatalogError::Rejected {
            code: Code::NotFound, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn proto_mode(mode: StreamMode) -> pb::StreamMode {
    match mode {
        StreamMode::Provisioned => pb::StreamMode::Provisioned,
        StreamMode::OnDemand => pb::StreamMode::OnDemand,
    }
}

impl CatalogError {
    /// The node refused the request for a reason retrying soon will not fix (a limit, an
    /// invalid request): report it instead of retrying with backoff.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            CatalogError::Rejected {
                code: Code::ResourceExhausted | Code::InvalidArgument,
                message,
                ..
            } => Some(message),
            _ => None,
        }
    }

    /// The stream is busy (ResourceInUse: not ACTIVE right now): try again shortly.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            CatalogError::Rejected {
                code: Code::FailedPrecondition,
                ..
            }
        )
    }
}

/// Unavailable (connection refused, DNS, reset) and Unknown transport errors: worth trying
/// another node. Everything else is the catalog's answer.
fn is_transport_failure(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    )
}

fn lazy_channel(addr: &str) -> Result<Channel, CatalogError> {
    let url = if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let endpoint = Endpoint::from_shared(url).map_err(|e| CatalogError::InvalidAddress {
        addr: addr.to_string(),
        reason: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .connect_lazy())
}
