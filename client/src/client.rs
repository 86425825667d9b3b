//! The gRPC client: typed helpers over the `Streams` and `Admin` services.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use runnel_proto::v1 as proto;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::leases_client::LeasesClient;
use runnel_proto::v1::streams_client::StreamsClient;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use crate::BatchLimits;
use crate::Error;
use crate::GetRecordsOutput;
use crate::Position;
use crate::PutEntry;
use crate::PutResult;
use crate::SubscribeEvent;
use crate::batch::split_batches;
use crate::error::Subject;
use crate::error::chain;

/// Largest response accepted (a GetRecords page of 10,000 records of 1 MiB would be larger;
/// the server caps pages by size too).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// Names asked per ListStreams call.
const LIST_PAGE: u32 = 1000;

/// Capacity mode of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

/// Parameters of CreateStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateStream {
    pub name: String,
    /// Required for provisioned streams; on-demand streams start with 4 shards when unset.
    pub shard_count: Option<u32>,
    pub mode: StreamMode,
    /// 24..8760; the server's default (24) when unset.
    pub retention_hours: Option<u32>,
    pub tags: HashMap<String, String>,
}

impl CreateStream {
    pub fn provisioned(name: impl Into<String>, shard_count: u32) -> Self {
        CreateStream {
            name: name.into(),
            shard_count: Some(shard_count),
            mode: StreamMode::Provisioned,
            retention_hours: None,
            tags: HashMap::new(),
        }
    }

    pub fn on_demand(name: impl Into<String>) -> Self {
        CreateStream {
            name: name.into(),
            shard_count: None,
            mode: StreamMode::OnDemand,
            retention_hours: None,
            tags: HashMap::new(),
        }
    }
}

/// A connection to a Runnel node. Cheap to clone; clones share the connection.
#[derive(Debug, Clone)]
pub struct Client {
    streams: StreamsClient<Channel>,
    pub(crate) admin: AdminClient<Channel>,
    pub(crate) leases: LeasesClient<Channel>,
    limits: BatchLimits,
    endpoint: String,
}

impl Client {
    /// Connects to a node's gRPC address, e.g. `http://127.0.0.1:4568` (`http://` is assumed when
    /// no scheme is given).
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, Error> {
        let endpoint = endpoint.into();
        let uri = if endpoint.contains("://") {
            endpoint.clone()
        } else {
            format!("http://{endpoint}")
        };
        let invalid = |reason: String| Error::InvalidEndpoint {
            endpoint: endpoint.clone(),
            reason,
        };
        let channel = Endpoint::from_shared(uri)
            .map_err(|err| invalid(chain(&err)))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|err| Error::Connect {
                endpoint: endpoint.clone(),
                reason: chain(&err),
            })?;
        let mut client = Client::from_channel(channel);
        client.endpoint = endpoint;
        Ok(client)
    }

    /// A client over an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Client {
            streams: StreamsClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            leases: LeasesClient::new(channel.clone()),
            admin: AdminClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            limits: BatchLimits::default(),
            endpoint: String::new(),
        }
    }

    /// Changes the limits `put_records` splits input by.
    pub fn with_batch_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits [`Client::put_records`] splits batches by.
    pub fn batch_limits(&self) -> BatchLimits {
        self.limits
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The raw generated clients, for calls without a typed helper.
    pub fn raw(&self) -> (StreamsClient<Channel>, AdminClient<Channel>) {
        (self.streams.clone(), self.admin.clone())
    }

    pub async fn create_stream(&self, params: CreateStream) -> Result<proto::StreamDescription, Error> {
        let mode = match params.mode {
            StreamMode::Provisioned => proto::StreamMode::Provisioned,
            StreamMode::OnDemand => proto::StreamMode::OnDemand,
        };
        let request = proto::CreateStreamRequest {
            stream_name: params.name.clone(),
            shard_count: params.shard_count,
            mode: mode as i32,
            tags: params.tags,
            retention_period_hours: params.retention_hours,
            max_record_size_kib: None,
        };
        let response = self
            .admin
            .clone()
            .create_stream(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(&params.name)))?;
        response
            .into_inner()
            .stream
            .ok_or_else(|| Error::Protocol("CreateStream response without a stream".to_string()))
    }

    pub async fn describe_stream(&self, name: &str) -> Result<proto::StreamDescription, Error> {
        let request = proto::DescribeStreamRequest {
            stream_name: name.to_string(),
        };
        let response = self
            .admin
            .clone()
            .describe_stream(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(name)))?;
        response
            .into_inner()
            .stream
            .ok_or_else(|| Error::Protocol("DescribeStream response without a stream".to_string()))
    }

    /// Waits until the stream is ACTIVE, polling every 100 ms, for at most `timeout`.
    pub async fn wait_for_active(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<proto::StreamDescription, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let description = self.describe_stream(name).await?;
            if description.status == proto::StreamStatus::Active as i32
                || tokio::time::Instant::now() >= deadline
            {
                return Ok(description);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The names of all streams, paging through ListStreams.
    pub async fn list_streams(&self) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = Vec::new();
        loop {
            let request = proto::ListStreamsRequest {
                exclusive_start_stream_name: names.last().cloned().unwrap_or_default(),
                limit: LIST_PAGE,
            };
            let page = self
                .admin
                .clone()
                .list_streams(request)
                .await
                .map_err(|s| Error::from_status(s, Subject::None))?
                .into_inner();
            let got = page.stream_names.len();
            names.extend(page.stream_names);
            if !page.has_more_streams || got == 0 {
                return Ok(names);
            }
        }
    }

    pub async fn delete_stream(&self, name: &str) -> Result<(), Error> {
        let request = proto::DeleteStreamRequest {
            stream_name: name.to_string(),
        };
        self.admin
            .clone()
            .delete_stream(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(name)))?;
        Ok(())
    }

    /// UpdateShardCount (uniform scaling): returns (current, target) open shard counts. The
    /// stream is UPDATING until the new shards are open (see [`Client::wait_for_active`]).
    pub async fn update_shard_count(&self, name: &str, target: u32) -> Result<(u32, u32), Error> {
        let request = proto::UpdateShardCountRequest {
            stream_name: name.to_string(),
            target_shard_count: target,
        };
        let out = self
            .admin
            .clone()
            .update_shard_count(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(name)))?
            .into_inner();
        Ok((out.current_shard_count, out.target_shard_count))
    }

    /// SplitShard: `shard` closes and two children open, the upper one starting at
    /// `new_starting_hash_key`.
    pub async fn split_shard(
        &self,
        name: &str,
        shard: &str,
        new_starting_hash_key: u128,
    ) -> Result<(), Error> {
        let request = proto::SplitShardRequest {
            stream_name: name.to_string(),
            shard_to_split: shard.to_string(),
            new_starting_hash_key: new_starting_hash_key.to_string(),
        };
        self.admin
            .clone()
            .split_shard(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(name, shard)))?;
        Ok(())
    }

    /// MergeShards: two adjacent open shards close and one child covering both opens.
    pub async fn merge_shards(&self, name: &str, shard: &str, adjacent: &str) -> Result<(), Error> {
        let request = proto::MergeShardsRequest {
            stream_name: name.to_string(),
            shard_to_merge: shard.to_string(),
            adjacent_shard_to_merge: adjacent.to_string(),
        };
        self.admin
            .clone()
            .merge_shards(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(name, shard)))?;
        Ok(())
    }

    /// Registers an enhanced fan-out consumer (CREATING at first; see
    /// [`Client::wait_for_consumer`]).
    pub async fn register_consumer(&self, stream: &str, name: &str) -> Result<proto::Consumer, Error> {
        let request = proto::RegisterConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: name.to_string(),
        };
        let response = self
            .admin
            .clone()
            .register_consumer(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?;
        Ok(response.into_inner())
    }

    /// The stream's enhanced fan-out consumers.
    pub async fn list_consumers(&self, stream: &str) -> Result<Vec<proto::Consumer>, Error> {
        let request = proto::ListConsumersRequest {
            stream_name: stream.to_string(),
        };
        let response = self
            .admin
            .clone()
            .list_consumers(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?;
        Ok(response.into_inner().consumers)
    }

    /// Waits until the consumer is ACTIVE, polling every 100 ms, for at most `timeout`.
    pub async fn wait_for_consumer(&self, stream: &str, name: &str, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let consumers = self.list_consumers(stream).await?;
            if consumers
                .iter()
                .any(|c| c.consumer_name == name && c.status == "ACTIVE")
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "consumer {name} of {stream} is not ACTIVE after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn deregister_consumer(&self, stream: &str, name: &str) -> Result<(), Error> {
        let request = proto::DeregisterConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: name.to_string(),
        };
        self.admin
            .clone()
            .deregister_consumer(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?;
        Ok(())
    }

    /// One PutRecords call; `entries` must respect the batch limits. Results are in input order.
    pub async fn put_batch(&self, stream: &str, entries: Vec<PutEntry>) -> Result<Vec<PutResult>, Error> {
        let count = entries.len();
        let request = proto::PutRecordsRequest {
            stream_name: stream.to_string(),
            records: entries.into_iter().map(proto::PutRecordsEntry::from).collect(),
        };
        let response = self
            .streams
            .clone()
            .put_records(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?
            .into_inner();
        if response.records.len() != count {
            return Err(Error::Protocol(format!(
                "PutRecords returned {} results for {count} records",
                response.records.len()
            )));
        }
        Ok(response.records.into_iter().map(PutResult::from).collect())
    }

    /// Puts any number of records, split into batches within the limits and sent one after the
    /// other (so records of one partition key keep their order). Results are in input order.
    pub async fn put_records(&self, stream: &str, entries: Vec<PutEntry>) -> Result<Vec<PutResult>, Error> {
        let mut results = Vec::with_capacity(entries.len());
        for batch in split_batches(entries, self.limits) {
            results.extend(self.put_batch(stream, batch).await?);
        }
        Ok(results)
    }

    /// Reads at most `limit` records (1-10000) of one shard from `position`.
    pub async fn get_records(
        &self,
        stream: &str,
        shard: &str,
        position: Position,
        limit: u32,
    ) -> Result<GetRecordsOutput, Error> {
        let request = proto::GetRecordsRequest {
            stream_name: stream.to_string(),
            shard_id: shard.to_string(),
            position: Some(position.into()),
            limit,
        };
        let response = self
            .streams
            .clone()
            .get_records(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(stream, shard)))?
            .into_inner();
        GetRecordsOutput::from_proto(shard, response)
    }

    /// Subscribes to one shard from `position`: a stream of pushed events that ends when the
    /// server ends the subscription (resubscribe after the last continuation sequence number).
    pub async fn subscribe(
        &self,
        stream: &str,
        shard: &str,
        position: Position,
    ) -> Result<BoxStream<'static, Result<SubscribeEvent, Error>>, Error> {
        self.subscribe_as(stream, shard, position, None).await
    }

    /// [`Client::subscribe`] as a registered enhanced fan-out consumer (its name or ARN): one
    /// subscription per consumer and shard, ending after the server's subscription lifetime,
    /// with the consumer's own read budget.
    pub async fn subscribe_as(
        &self,
        stream: &str,
        shard: &str,
        position: Position,
        consumer: Option<&str>,
    ) -> Result<BoxStream<'static, Result<SubscribeEvent, Error>>, Error> {
        let request = proto::SubscribeRequest {
            stream_name: stream.to_string(),
            shard_id: shard.to_string(),
            position: Some(position.into()),
            consumer: consumer.map(str::to_string),
        };
        let events = self
            .streams
            .clone()
            .subscribe(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(stream, shard)))?
            .into_inner();
        let (stream, shard) = (stream.to_string(), shard.to_string());
        Ok(events
            .map(move |event| match event {
                Ok(event) => Ok(SubscribeEvent::from_proto(&shard, event)),
                Err(status) => Err(Error::from_status(status, Subject::Shard(&stream, &shard))),
            })
            .boxed())
    }
}
