//! `runnel.v1.Streams`.

use std::pin::Pin;

use futures::Stream;
use futures::StreamExt;
use runnel_proto::v1 as pb;
use runnel_proto::v1::streams_server::Streams;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::Streaming;

use super::convert;
use crate::service::GetRecordsInput;
use crate::service::PutEntryInput;
use crate::service::PutEntryResult;
use crate::service::PutRecordsInput;
use crate::service::StreamService;

pub struct StreamsApi {
    pub service: StreamService,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

async fn put(service: &StreamService, r: pb::PutRecordsRequest) -> Result<pb::PutRecordsResponse, Status> {
    let input = PutRecordsInput {
        stream_name: r.stream_name,
        records: r
            .records
            .into_iter()
            .map(|e| PutEntryInput {
                partition_key: e.partition_key,
                data: e.data,
                explicit_hash_key: e.explicit_hash_key,
            })
            .collect(),
    };
    let results = service.put_records(input).await.map_err(convert::status)?;
    let mut failed = 0;
    let records = results
        .into_iter()
        .map(|r| match r {
            PutEntryResult::Ok {
                shard_id,
                sequence_number,
                encrypted,
            } => pb::PutRecordResult {
                shard_id: shard_id.to_string(),
                sequence_number: sequence_number.to_string(),
                encrypted,
                ..Default::default()
            },
            PutEntryResult::Failed {
                error_code,
                error_message,
            } => {
                failed += 1;
                pb::PutRecordResult {
                    error_code,
                    error_message,
                    ..Default::default()
                }
            }
        })
        .collect();
    Ok(pb::PutRecordsResponse {
        failed_record_count: failed,
        records,
    })
}

#[tonic::async_trait]
impl Streams for StreamsApi {
    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Result<Response<pb::PutRecordsResponse>, Status> {
        put(&self.service, request.into_inner()).await.map(Response::new)
    }

    type PutRecordsStreamStream = BoxStream<pb::PutRecordsResponse>;

    async fn put_records_stream(
        &self,
        request: Request<Streaming<pb::PutRecordsRequest>>,
    ) -> Result<Response<Self::PutRecordsStreamStream>, Status> {
        let service = self.service.clone();
        let out = request.into_inner().then(move |req| {
            let service = service.clone();
            async move {
                match req {
                    Ok(r) => put(&service, r).await,
                    Err(e) => Err(e),
                }
            }
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_records(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Result<Response<pb::GetRecordsResponse>, Status> {
        let r = request.into_inner();
        let input = GetRecordsInput {
            stream_name: r.stream_name,
            shard_id: r.shard_id,
            position: convert::position(r.position)?,
            limit: Some(r.limit).filter(|l| *l != 0),
        };
        let stream = input.stream_name.clone();
        let out = self.service.get_records(input).await.map_err(convert::status)?;
        let created = self.service.shard_created_secs(&stream, out.shard_id.0);
        Ok(Response::new(pb::GetRecordsResponse {
            next_position: out
                .next
                .map(|next| convert::continuation(out.shard_id.0, created, next)),
            records: out.records.into_iter().map(convert::record).collect(),
            millis_behind_latest: out.millis_behind_latest,
            child_shards: out.child_shards.iter().map(convert::child_shard).collect(),
        }))
    }

    type SubscribeStream = BoxStream<pb::SubscribeEvent>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let r = request.into_inner();
        let position = convert::position(r.position)?;
        let events = match r.consumer.as_deref() {
            Some(consumer) => {
                self.service
                    .subscribe_as_consumer(&r.stream_name, consumer, &r.shard_id, position)
                    .await
            }
            None => self.service.subscribe(&r.stream_name, &r.shard_id, position),
        }
        .map_err(convert::status)?;
        let shard = crate::model::ShardId::parse(&r.shard_id).map_or(0, |s| s.0);
        let created = self.service.shard_created_secs(&r.stream_name, shard);
        let out = events.map(move |e| {
            let e = e.map_err(convert::status)?;
            let continuation = e.continuation.map(|c| convert::continuation(shard, created, c));
            let continuation_sequence_number = match continuation.and_then(|c| c.kind) {
                Some(pb::position::Kind::AtSequenceNumber(s)) => s,
                _ => String::new(),
            };
            Ok(pb::SubscribeEvent {
                records: e.records.into_iter().map(convert::record).collect(),
                continuation_sequence_number,
                millis_behind_latest: e.millis_behind_latest,
                child_shards: e.child_shards.iter().map(convert::child_shard).collect(),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}
