//! `runnel.v1.Admin`.

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_server::Admin;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::convert;
use crate::service::ConsumerDescription;
use crate::service::CreateStreamInput;
use crate::service::DeliveryStreamDescription;
use crate::service::StreamService;

pub struct AdminApi {
    pub service: StreamService,
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Result<Response<pb::CreateStreamResponse>, Status> {
        let r = request.into_inner();
        let input = CreateStreamInput {
            stream_name: r.stream_name,
            shard_count: r.shard_count,
            on_demand: r.mode == pb::StreamMode::OnDemand as i32,
            retention_hours: r.retention_period_hours,
            tags: r.tags.into_iter().collect(),
            max_record_size_kib: r.max_record_size_kib,
        };
        let d = self.service.create_stream(input).await.map_err(convert::status)?;
        Ok(Response::new(pb::CreateStreamResponse {
            stream: Some(convert::stream_description(d)),
        }))
    }

    async fn describe_stream(
        &self,
        request: Request<pb::DescribeStreamRequest>,
    ) -> Result<Response<pb::DescribeStreamResponse>, Status> {
        let d = self
            .service
            .describe_stream(&request.into_inner().stream_name)
            .map_err(convert::status)?;
        Ok(Response::new(pb::DescribeStreamResponse {
            stream: Some(convert::stream_description(d)),
        }))
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        let r = request.into_inner();
        let start = Some(r.exclusive_start_stream_name).filter(|s| !s.is_empty());
        let limit = Some(r.limit).filter(|l| *l != 0);
        let out = self
            .service
            .list_streams(start.as_deref(), limit)
            .map_err(convert::status)?;
        Ok(Response::new(pb::ListStreamsResponse {
            stream_names: out.names,
            has_more_streams: out.has_more,
        }))
    }

    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Result<Response<pb::DeleteStreamResponse>, Status> {
        self.service
            .delete_stream(&request.into_inner().stream_name, true)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::DeleteStreamResponse {}))
    }

    async fn update_retention(
        &self,
        request: Request<pb::UpdateRetentionRequest>,
    ) -> Result<Response<pb::UpdateRetentionResponse>, Status> {
        let r = request.into_inner();
        self.service
            .update_retention(&r.stream_name, r.retention_period_hours)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::UpdateRetentionResponse {}))
    }

    async fn update_max_record_size(
        &self,
        request: Request<pb::UpdateMaxRecordSizeRequest>,
    ) -> Result<Response<pb::UpdateMaxRecordSizeResponse>, Status> {
        let r = request.into_inner();
        self.service
            .update_max_record_size(&r.stream_name, r.max_record_size_kib)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::UpdateMaxRecordSizeResponse {}))
    }

    async fn update_encryption(
        &self,
        request: Request<pb::UpdateEncryptionRequest>,
    ) -> Result<Response<pb::UpdateEncryptionResponse>, Status> {
        let r = request.into_inner();
        self.service
            .update_encryption(&r.stream_name, r.key_id.as_deref())
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::UpdateEncryptionResponse {}))
    }

    async fn update_shard_count(
        &self,
        request: Request<pb::UpdateShardCountRequest>,
    ) -> Result<Response<pb::UpdateShardCountResponse>, Status> {
        let r = request.into_inner();
        let out = self
            .service
            .update_shard_count(&r.stream_name, r.target_shard_count)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::UpdateShardCountResponse {
            current_shard_count: out.current_shard_count,
            target_shard_count: out.target_shard_count,
        }))
    }

    async fn split_shard(
        &self,
        request: Request<pb::SplitShardRequest>,
    ) -> Result<Response<pb::SplitShardResponse>, Status> {
        let r = request.into_inner();
        self.service
            .split_shard(&r.stream_name, &r.shard_to_split, &r.new_starting_hash_key)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::SplitShardResponse {}))
    }

    async fn merge_shards(
        &self,
        request: Request<pb::MergeShardsRequest>,
    ) -> Result<Response<pb::MergeShardsResponse>, Status> {
        let r = request.into_inner();
        self.service
            .merge_shards(&r.stream_name, &r.shard_to_merge, &r.adjacent_shard_to_merge)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::MergeShardsResponse {}))
    }

    async fn update_stream_mode(
        &self,
        request: Request<pb::UpdateStreamModeRequest>,
    ) -> Result<Response<pb::UpdateStreamModeResponse>, Status> {
        let r = request.into_inner();
        let on_demand = match pb::StreamMode::try_from(r.mode) {
            Ok(pb::StreamMode::OnDemand) => true,
            Ok(pb::StreamMode::Provisioned) => false,
            _ => return Err(Status::invalid_argument("mode must be PROVISIONED or ON_DEMAND")),
        };
        self.service
            .update_stream_mode(&r.stream_name, on_demand)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::UpdateStreamModeResponse {}))
    }

    async fn update_tags(
        &self,
        request: Request<pb::UpdateTagsRequest>,
    ) -> Result<Response<pb::UpdateTagsResponse>, Status> {
        let r = request.into_inner();
        if !r.add.is_empty() {
            self.service
                .add_tags(&r.stream_name, r.add.into_iter().collect())
                .await
                .map_err(convert::status)?;
        }
        if !r.remove.is_empty() {
            self.service
                .remove_tags(&r.stream_name, r.remove)
                .await
                .map_err(convert::status)?;
        }
        Ok(Response::new(pb::UpdateTagsResponse {}))
    }
    async fn register_consumer(
        &self,
        request: Request<pb::RegisterConsumerRequest>,
    ) -> Result<Response<pb::Consumer>, Status> {
        let r = request.into_inner();
        let arn = self.service.arn(&r.stream_name);
        let c = self
            .service
            .register_consumer(&arn, &r.consumer_name, Default::default())
            .await
            .map_err(convert::status)?;
        Ok(Response::new(consumer(c)))
    }

    async fn list_consumers(
        &self,
        request: Request<pb::ListConsumersRequest>,
    ) -> Result<Response<pb::ListConsumersResponse>, Status> {
        let r = request.into_inner();
        let arn = self.service.arn(&r.stream_name);
        let mut consumers = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .service
                .list_consumers(&arn, token.as_deref(), None, None)
                .map_err(convert::status)?;
            consumers.extend(page.consumers.into_iter().map(consumer));
            match page.next_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        Ok(Response::new(pb::ListConsumersResponse { consumers }))
    }

    async fn deregister_consumer(
        &self,
        request: Request<pb::DeregisterConsumerRequest>,
    ) -> Result<Response<pb::DeregisterConsumerResponse>, Status> {
        let r = request.into_inner();
        let arn = self.service.arn(&r.stream_name);
        self.service
            .deregister_consumer(Some(&arn), Some(&r.consumer_name), None)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::DeregisterConsumerResponse {}))
    }

    async fn add_node(
        &self,
        request: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::AddNodeResponse>, Status> {
        let r = request.into_inner();
        self.service
            .add_node(r.node_id, &r.address)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::AddNodeResponse {}))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let r = request.into_inner();
        self.service
            .remove_node(r.node_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::RemoveNodeResponse {}))
    }

    async fn drain_node(
        &self,
        request: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        let r = request.into_inner();
        let moving = self
            .service
            .drain_node(r.node_id)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::DrainNodeResponse { moving }))
    }

    async fn move_replica(
        &self,
        request: Request<pb::MoveReplicaRequest>,
    ) -> Result<Response<pb::MoveReplicaResponse>, Status> {
        let r = request.into_inner();
        self.service
            .move_replica(&r.stream_name, &r.shard_id, r.from_node, r.to_node)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::MoveReplicaResponse {}))
    }

    async fn describe_cluster(
        &self,
        _request: Request<pb::DescribeClusterRequest>,
    ) -> Result<Response<pb::DescribeClusterResponse>, Status> {
        let (nodes, leader) = self.service.describe_cluster();
        Ok(Response::new(pb::DescribeClusterResponse {
            nodes: nodes
                .into_iter()
                .map(|n| pb::ClusterNode {
                    node_id: n.node_id,
                    address: n.address,
                    voter: n.voter,
                    draining: n.draining,
                    replicas: n.replicas,
                    moving: n.moving,
                })
                .collect(),
            catalog_leader: leader.unwrap_or(0),
        }))
    }

    async fn put_delivery_stream(
        &self,
        request: Request<pb::PutDeliveryStreamRequest>,
    ) -> Result<Response<pb::PutDeliveryStreamResponse>, Status> {
        let r = request.into_inner();
        let d = self
            .service
            .put_delivery_stream(&r.delivery_stream_name, r.spec_json)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::PutDeliveryStreamResponse {
            delivery_stream: Some(delivery_stream(d)),
        }))
    }

    async fn describe_delivery_stream(
        &self,
        request: Request<pb::DescribeDeliveryStreamRequest>,
    ) -> Result<Response<pb::DescribeDeliveryStreamResponse>, Status> {
        let d = self
            .service
            .describe_delivery_stream(&request.into_inner().delivery_stream_name)
            .map_err(convert::status)?;
        Ok(Response::new(pb::DescribeDeliveryStreamResponse {
            delivery_stream: Some(delivery_stream(d)),
        }))
    }

    async fn list_delivery_streams(
        &self,
        request: Request<pb::ListDeliveryStreamsRequest>,
    ) -> Result<Response<pb::ListDeliveryStreamsResponse>, Status> {
        let r = request.into_inner();
        let start = Some(r.exclusive_start_delivery_stream_name).filter(|s| !s.is_empty());
        let limit = Some(r.limit).filter(|l| *l != 0);
        let out = self
            .service
            .list_delivery_streams(start.as_deref(), limit)
            .map_err(convert::status)?;
        Ok(Response::new(pb::ListDeliveryStreamsResponse {
            delivery_stream_names: out.names,
            has_more_delivery_streams: out.has_more,
        }))
    }

    async fn delete_delivery_stream(
        &self,
        request: Request<pb::DeleteDeliveryStreamRequest>,
    ) -> Result<Response<pb::DeleteDeliveryStreamResponse>, Status> {
        self.service
            .delete_delivery_stream(&request.into_inner().delivery_stream_name)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::DeleteDeliveryStreamResponse {}))
    }
}

fn delivery_stream(d: DeliveryStreamDescription) -> pb::DeliveryStreamDescription {
    let status = match d.status {
        crate::catalog::DeliveryStreamStatus::Declared => pb::DeliveryStreamStatus::Declared,
    };
    pb::DeliveryStreamDescription {
        delivery_stream_name: d.name,
        delivery_stream_arn: d.arn,
        status: status as i32,
        spec_json: d.spec_json,
        creation_timestamp_ms: d.created_ms,
        last_update_timestamp_ms: d.updated_ms,
    }
}

fn consumer(c: ConsumerDescription) -> pb::Consumer {
    pb::Consumer {
        consumer_name: c.name,
        consumer_arn: c.arn,
        status: c.status.aws_name().to_string(),
        creation_timestamp_ms: c.created_ms,
    }
}
