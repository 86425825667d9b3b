//! Sends a subscription's lease requests (`capacity::subscription_leases`) to the leader of the
//! shard's group, as the router sends reads: to this node's replica when it leads, otherwise
//! over `Raft.SubscriptionLease`. Every lease request may be retried: an acquire its holder
//! already won or waits for is answered again, renewals and releases are idempotent. The leader
//! confirms its leadership before it applies a request (see `capacity::subscription_leases`
//! for why).

use std::time::Instant;

use runnel_proto::v1 as pb;
use tonic::Code;

use super::replica::ShardReplica;
use super::router::Attempt;
use super::router::Hop;
use super::router::ShardRouter;
use super::router::retry;
use super::router::unanswered;
use super::wire;
use crate::capacity::subscription_leases::LeaseAnswer;
use crate::capacity::subscription_leases::LeaseRequest;
use crate::catalog::ShardRecord;
use crate::model::ShardId;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("shard {shard} is not led by this node")]
    NotLeader { shard: ShardId, leader: Option<u64> },
    #[error("cannot reach the leader of shard {shard} for a subscription lease: {message}")]
    Failed { shard: ShardId, message: String },
}

impl ShardRouter {
    /// Applies a lease request at the shard's leader and returns its answer.
    pub async fn subscription_lease(
        &self,
        shard: &ShardRecord,
        request: &LeaseRequest,
        hops: u32,
    ) -> Result<LeaseAnswer, LeaseError> {
        let attempt = || self.lease_once(shard, request, hops);
        retry(attempt, || LeaseError::Failed {
            shard: ShardId(shard.index),
            message: unanswered("lease request"),
        })
        .await
    }

    /// Applies the request to this node's lease table when its replica leads, after confirming
    /// that it does (only the leader keeps leases: a follower's table would be its own, and a
    /// deposed leader's out of date).
    async fn lease_local(
        &self,
        replica: &ShardReplica,
        request: &LeaseRequest,
    ) -> Result<LeaseAnswer, LeaseError> {
        let not_leader = |leader| LeaseError::NotLeader {
            shard: replica.id(),
            leader,
        };
        let term = replica.confirm_leadership().await.map_err(not_leader)?;
        self.admission
            .subscription_lease(&request.key, request.holder, request.op, term, Instant::now())
            .map_err(|stale| {
                tracing::debug!(shard = %replica.id(), error = %stale, "subscription lease request of an older term");
                not_leader(None)
            })
    }

    async fn lease_once(
        &self,
        shard: &ShardRecord,
        request: &LeaseRequest,
        hops: u32,
    ) -> Attempt<LeaseAnswer, LeaseError> {
        let id = ShardId(shard.index);
        let local = match self.host().by_group(shard.group) {
            Some(replica) => match self.lease_local(&replica, request).await {
                Err(LeaseError::NotLeader { leader, .. }) => Some(leader),
                other => return Attempt::Done(other),
            },
            None => None,
        };
        let failed = |message: String| LeaseError::Failed { shard: id, message };
        let (mut client, target) = match self.next_hop(shard, local, hops) {
            Hop::To { client, addr } => (client, addr),
            Hop::Retry(leader) => return Attempt::Retry(LeaseError::NotLeader { shard: id, leader }),
            Hop::Unreachable(message) => return Attempt::Done(Err(failed(message))),
        };
        let req: pb::SubscriptionLeaseRequest = wire::lease_to_proto(request, hops + 1);
        match client.subscription_lease(req).await {
            Ok(resp) => Attempt::Done(Ok(wire::lease_answer_from_proto(&resp.into_inner()))),
            // A leader that predates leases keeps none: the subscription goes ahead.
            Err(status) if status.code() == Code::Unimplemented => Attempt::Done(Ok(LeaseAnswer::Held)),
            Err(status) => Attempt::Retry(failed(format!("{target}: {}", status.message()))),
        }
    }
}
