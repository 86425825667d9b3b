//! `runnel.v1.Leases`: shard leases and checkpoints of consuming applications.

use runnel_proto::v1 as pb;
use runnel_proto::v1::leases_server::Leases;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use super::convert;
use crate::catalog::Checkpoint;
use crate::catalog::Lease;
use crate::model::ShardId;
use crate::service::StreamService;

pub struct LeasesApi {
    pub service: StreamService,
}

fn shard_lease(shard_id: ShardId, lease: Lease) -> pb::ShardLease {
    let (checkpoint, shard_end) = match lease.checkpoint {
        Some(Checkpoint::Sequence(seq)) => (seq, false),
        Some(Checkpoint::ShardEnd) => (String::new(), true),
        None => (String::new(), false),
    };
    pb::ShardLease {
        shard_id: shard_id.to_string(),
        owner: lease.owner.unwrap_or_default(),
        counter: lease.counter,
        checkpoint,
        shard_end,
    }
}

#[tonic::async_trait]
impl Leases for LeasesApi {
    async fn list_leases(
        &self,
        request: Request<pb::ListLeasesRequest>,
    ) -> Result<Response<pb::ListLeasesResponse>, Status> {
        let r = request.into_inner();
        let leases = self
            .service
            .list_leases(&r.stream_name, &r.application_name)
            .map_err(convert::status)?;
        Ok(Response::new(pb::ListLeasesResponse {
            leases: leases
                .into_iter()
                .map(|l| shard_lease(l.shard_id, l.lease))
                .collect(),
        }))
    }

    async fn take_lease(
        &self,
        request: Request<pb::TakeLeaseRequest>,
    ) -> Result<Response<pb::ShardLease>, Status> {
        let r = request.into_inner();
        let lease = self
            .service
            .take_lease(
                &r.stream_name,
                &r.application_name,
                &r.shard_id,
                &r.owner,
                r.expected_counter,
                r.steal_from.as_deref(),
            )
            .await
            .map_err(convert::status)?;
        Ok(Response::new(shard_lease(lease.shard_id, lease.lease)))
    }

    async fn renew_leases(
        &self,
        request: Request<pb::RenewLeasesRequest>,
    ) -> Result<Response<pb::RenewLeasesResponse>, Status> {
        let r = request.into_inner();
        let held = self
            .service
            .renew_leases(&r.stream_name, &r.application_name, &r.owner, &r.shard_ids)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::RenewLeasesResponse {
            held_shard_ids: held.into_iter().map(|s| s.to_string()).collect(),
        }))
    }

    async fn checkpoint(
        &self,
        request: Request<pb::CheckpointRequest>,
    ) -> Result<Response<pb::CheckpointResponse>, Status> {
        let r = request.into_inner();
        let sequence = if r.shard_end {
            None
        } else {
            Some(r.sequence_number.as_str())
        };
        self.service
            .checkpoint(
                &r.stream_name,
                &r.application_name,
                &r.shard_id,
                &r.owner,
                sequence,
            )
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::CheckpointResponse {}))
    }

    async fn release_lease(
        &self,
        request: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let r = request.into_inner();
        self.service
            .release_lease(&r.stream_name, &r.application_name, &r.shard_id, &r.owner)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::ReleaseLeaseResponse {}))
    }

    async fn delete_application(
        &self,
        request: Request<pb::DeleteApplicationRequest>,
    ) -> Result<Response<pb::DeleteApplicationResponse>, Status> {
        let r = request.into_inner();
        self.service
            .delete_application(&r.stream_name, &r.application_name)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::DeleteApplicationResponse {}))
    }
}
