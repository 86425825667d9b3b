//! Sends appends and reads to the leader of a shard's group, wherever it runs: locally when
//! this node's replica leads, otherwise over the node-to-node API. Clients never see "not
//! leader". An append is retried only when it certainly was not appended (the group rejected it
//! before appending, or the request never left), so the server never duplicates a record.
//!
//! The leader also admits what the node taking the request asks it to (`capacity::
//! shard_admission`): its buckets are the shard's, whichever node a client talks to. Each attempt
//! decides afresh on the node that appends or reads, so a batch charged by a leader that then
//! lost its leadership is charged again by the next one (refusing more, never admitting more).

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use runnel_proto::v1 as pb;
use runnel_proto::v1::raft_client::RaftClient;
use tonic::Code;
use tonic::transport::Channel;

use super::cursor::ReadStart;
use super::decode::Take;
use super::decode::returned_bytes;
use super::host::ShardHost;
use super::replica::AppendError;
use super::replica::Appended;
use super::replica::FrameRead;
use super::replica::ReadError;
use super::replica::ShardReplica;
use super::wire;
use crate::capacity::shard_admission::BatchAdmission;
use crate::capacity::shard_admission::ReadAdmission;
use crate::capacity::shard_admission::ShardAdmission;
use crate::catalog::ShardRecord;
use crate::encryption::BatchCipher;
use crate::encryption::SealError;
use crate::model::ShardId;
use crate::raft::transport::PeerPool;

/// Forwarding hops before a request gives up (leadership moving while it travels).
pub const MAX_HOPS: u32 = 4;
/// How long an append or read keeps looking for a leader (elections take up to ~3 s).
const DEADLINE: Duration = Duration::from_secs(8);
/// Metadata a node sets on a forwarded append it is sure it did not append.
pub const NOT_APPENDED: &str = "x-runnel-not-appended";
/// Metadata of a forwarded append refused because the stream's key is not in the leader's
/// keyring (nothing appended; retrying elsewhere would not help).
pub const KEY_NOT_FOUND: &str = "x-runnel-key-not-found";

#[derive(Clone)]
pub struct ShardRouter {
    host: Arc<ShardHost>,
    peers: Option<Arc<PeerPool>>,
    /// The budgets (and subscription leases) of the shards this node leads.
    pub(super) admission: Arc<ShardAdmission>,
    /// Seals the batches of encrypted streams before this node's replicas propose them, and
    /// opens what is read.
    cipher: Arc<BatchCipher>,
}

/// What a proposal to a shard group carries.
#[derive(Clone, Debug)]
pub enum Proposal {
    /// An encoded batch; with `admit`, only what fits the shard's write budget is appended.
    Records {
        batch: Bytes,
        admit: bool,
    },
    Seal,
}

/// What the shard's leader appended of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Every record.
    All(Appended),
    /// The first `count` records; the others were over the shard's write budget.
    Prefix(Appended, usize),
    /// None: the first record was already over the budget.
    None,
}

impl Admitted {
    /// How many records of a batch of `len` were appended, and where (`None` when none was).
    pub fn appended(self, len: usize) -> (usize, Option<Appended>) {
        match self {
            Admitted::All(at) => (len, Some(at)),
            Admitted::Prefix(at, count) => (count.min(len), Some(at)),
            Admitted::None => (0, None),
        }
    }
}

/// How a shard group answered a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    Records(Admitted),
    /// The shard is sealed at this log index; nothing was appended.
    Closed(u64),
}

/// Where a request that this node's replica did not take goes next.
pub(super) enum Hop {
    /// Forward it to this node.
    To {
        client: RaftClient<Channel>,
        addr: String,
    },
    /// No leader is known yet, or leadership kept moving while the request travelled: try again
    /// (the request was not applied).
    Retry(Option<u64>),
    /// The node to forward to cannot be reached.
    Unreachable(String),
}

pub enum Attempt<T, E> {
    Done(Result<T, E>),
    /// Certainly not applied; try again (after a pause when no leader is known).
    Retry(E),
}

/// The pause before retry `step`: 20, 40, 80, then every 100 ms. While a shard elects a new
/// leader its requests wait here; a coarser step would add up to itself to every failover.
fn backoff(step: u32) -> Duration {
    Duration::from_millis((20u64 << step.min(3)).min(100))
}

/// Runs `attempt` until it is done, pausing with backoff between retries, for at most
/// `DEADLINE` (then the last retryable error is returned). An attempt still running at the
/// deadline is abandoned and `unanswered` is returned: a leader cut off from its quorum (or a
/// peer behind a partition) never answers, and the request must not hang with it. Its outcome
/// is unknown, so `unanswered` must be an error that is not retried.
pub async fn retry<T, E, F, Fut>(mut attempt: F, unanswered: impl Fn() -> E) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt<T, E>>,
{
    let start = Instant::now();
    let mut step = 0;
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        let Ok(outcome) = tokio::time::timeout(left, attempt()).await else {
            return Err(unanswered());
        };
        match outcome {
            Attempt::Done(r) => return r,
            Attempt::Retry(e) => {
                if start.elapsed() + backoff(step) > DEADLINE {
                    return Err(e);
                }
                tokio::time::sleep(backoff(step)).await;
                step += 1;
            }
        }
    }
}

/// The message of an attempt abandoned at the deadline.
pub fn unanswered(what: &str) -> String {
    format!(
        "no answer within {} s (the leader may be cut off from its quorum); the {what} may or may not have been applied",
        DEADLINE.as_secs()
    )
}

impl ShardRouter {
    pub fn new(
        host: Arc<ShardHost>,
        peers: Option<Arc<PeerPool>>,
        admission: Arc<ShardAdmission>,
        cipher: Arc<BatchCipher>,
    ) -> ShardRouter {
        ShardRouter {
            host,
            peers,
            admission,
            cipher,
        }
    }

    /// Seals and opens batches of encrypted streams.
    pub fn cipher(&self) -> &Arc<BatchCipher> {
        &self.cipher
    }

    pub fn host(&self) -> &Arc<ShardHost> {
        &self.host
    }

    /// A node to ask when this node has no replica of the group.
    fn some_replica_addr(&self, shard: &ShardRecord, hops: u32) -> Option<String> {
        let n = shard.replicas.len();
        (0..n).find_map(|i| self.host.address(shard.replicas[(i + hops as usize) % n]))
    }

    /// Where this node reaches a group's leader, when one is known.
    fn leader_addr(&self, leader: Option<u64>) -> Option<String> {
        leader.and_then(|l| self.host.address(l))
    }

    /// The next hop of a request for `shard` that this node's replica did not take: the leader
    /// the replica named (`local` = `Some(leader)`), or some replica of the group when this node
    /// has none (`local` = `None`).
    pub(super) fn next_hop(&self, shard: &ShardRecord, local: Option<Option<u64>>, hops: u32) -> Hop {
        let target = match local {
            Some(leader) => self.leader_addr(leader).ok_or(leader),
            None => self.some_replica_addr(shard, hops).ok_or(None),
        };
        let addr = match target {
            Ok(addr) => addr,
            Err(leader) => return Hop::Retry(leader),
        };
        if hops >= MAX_HOPS {
            // Leadership kept moving while the request travelled.
            return Hop::Retry(None);
        }
        let Some(pool) = &self.peers else {
            return Hop::Unreachable("no peers".into());
        };
        match pool.client(&addr) {
            Ok(client) => Hop::To { client, addr },
            Err(message) => Hop::Unreachable(message),
        }
    }

    /// Appends an encoded batch to the shard; returns once it is committed. With `admit`, the
    /// shard's leader appends only the prefix of the batch that fits the shard's write budget.
    /// A sealed shard answers [`AppendError::Closed`] (nothing appended).
    pub async fn append(
        &self,
        shard: &ShardRecord,
        batch: Bytes,
        admit: bool,
        hops: u32,
    ) -> Result<Admitted, AppendError> {
        let proposal = Proposal::Records { batch, admit };
        let attempt = || self.propose_once(shard, &proposal, hops);
        match retry(attempt, || unavailable(shard, "append")).await? {
            Proposed::Records(admitted) => Ok(admitted),
            Proposed::Closed(at) => Err(AppendError::Closed {
                shard: ShardId(shard.index),
                at,
            }),
        }
    }

    /// Seals the shard at its leader (idempotent); returns the seal's log index.
    pub async fn seal(&self, shard: &ShardRecord, hops: u32) -> Result<u64, AppendError> {
        let attempt = || self.propose_once(shard, &Proposal::Seal, hops);
        match retry(attempt, || unavailable(shard, "seal")).await? {
            Proposed::Closed(at) => Ok(at),
            Proposed::Records(_) => Err(AppendError::Storage {
                shard: ShardId(shard.index),
                message: "seal answered as an append".into(),
            }),
        }
    }

    /// Proposes on this node's replica: appends only when it leads, after admitting the batch
    /// when asked to.
    async fn propose_local(
        &self,
        replica: &ShardReplica,
        proposal: &Proposal,
    ) -> Result<Proposed, AppendError> {
        let (batch, admit) = match proposal {
            Proposal::Seal => return replica.seal().await.map(Proposed::Closed),
            Proposal::Records { batch, admit } => (batch, *admit),
        };
        if !admit {
            return self
                .append_sealed(replica, batch.clone())
                .await
                .map(|at| Proposed::Records(Admitted::All(at)));
        }
        // Only the leader admits: a follower's buckets would be its own.
        if let Err(leader) = replica.leadership() {
            return Err(AppendError::NotLeader {
                shard: replica.id(),
                leader,
            });
        }
        let admission = self
            .admission
            .admit_batch(replica.shard.group, batch, Instant::now())
            .map_err(|e| AppendError::Malformed {
                shard: replica.id(),
                message: e.to_string(),
            })?;
        let admitted = match admission {
            BatchAdmission::All => Admitted::All(self.append_sealed(replica, batch.clone()).await?),
            BatchAdmission::Prefix { batch, count } => {
                Admitted::Prefix(self.append_sealed(replica, batch).await?, count)
            }
            BatchAdmission::None => Admitted::None,
        };
        Ok(Proposed::Records(admitted))
    }

    /// Appends a plain batch on this node's replica, sealed first if its stream is encrypted.
    async fn append_sealed(&self, replica: &ShardReplica, batch: Bytes) -> Result<Appended, AppendError> {
        let (batch, sealed) = self
            .cipher
            .seal(&replica.stream, replica.shard.group, batch)
            .map_err(|e| match e {
                SealError::Key(e) => AppendError::KeyNotFound {
                    shard: replica.id(),
                    message: e.to_string(),
                },
                other => AppendError::Storage {
                    shard: replica.id(),
                    message: other.to_string(),
                },
            })?;
        replica.append(batch, sealed).await
    }

    async fn propose_once(
        &self,
        shard: &ShardRecord,
        proposal: &Proposal,
        hops: u32,
    ) -> Attempt<Proposed, AppendError> {
        let id = ShardId(shard.index);
        let local = match self.host.by_group(shard.group) {
            Some(replica) => match self.propose_local(&replica, proposal).await {
                Err(AppendError::NotLeader { leader, .. }) => Some(leader),
                Err(AppendError::Closed { at, .. }) => return Attempt::Done(Ok(Proposed::Closed(at))),
                other => return Attempt::Done(other),
            },
            None => None,
        };
        let (mut client, target) = match self.next_hop(shard, local, hops) {
            Hop::To { client, addr } => (client, addr),
            // Nothing was appended.
            Hop::Retry(leader) => return Attempt::Retry(AppendError::NotLeader { shard: id, leader }),
            Hop::Unreachable(message) => {
                return Attempt::Done(Err(AppendError::Unavailable { shard: id, message }));
            }
        };
        let (batch, seal, admit) = match proposal {
            Proposal::Records { batch, admit } => (batch.clone(), false, *admit),
            Proposal::Seal => (Bytes::new(), true, false),
        };
        let req = pb::ProposeShardRequest {
            group: shard.group,
            batch,
            hops: hops + 1,
            seal,
            admit,
        };
        match client.propose_shard(req).await {
            Ok(resp) => Attempt::Done(Ok(wire::proposed_from_proto(resp.into_inner()))),
            Err(status) if status.metadata().contains_key(KEY_NOT_FOUND) => {
                Attempt::Done(Err(AppendError::KeyNotFound {
                    shard: id,
                    message: status.message().to_string(),
                }))
            }
            Err(status) => {
                let err = AppendError::Unavailable {
                    shard: id,
                    message: format!("{target}: {}", status.message()),
                };
                if certainly_not_appended(&status) {
                    Attempt::Retry(err)
                } else {
                    Attempt::Done(Err(err))
                }
            }
        }
    }

    /// Reads frames of the shard from its leader, which first admits the read as `admission`
    /// says ([`ReadError::Throttled`] when it refuses).
    pub async fn read(
        &self,
        shard: &ShardRecord,
        start: ReadStart,
        limits: ReadLimits,
        admission: ReadAdmission,
        hops: u32,
    ) -> Result<FrameRead, ReadError> {
        let attempt = || self.read_once(shard, start, limits, admission, hops);
        retry(attempt, || ReadError::Failed {
            shard: ShardId(shard.index),
            message: unanswered("read"),
        })
        .await
    }

    /// Reads from this node's replica when it leads, admitting and charging the read.
    async fn read_local(
        &self,
        replica: &ShardReplica,
        start: ReadStart,
        limits: ReadLimits,
        admission: ReadAdmission,
    ) -> Result<FrameRead, ReadError> {
        let (max_entries, max_bytes) = (limits.max_entries, limits.max_bytes);
        if admission == ReadAdmission::Unlimited {
            return replica.read_frames(start, max_entries, max_bytes).await;
        }
        // Only the leader admits: a follower's buckets would be its own.
        if let Err(leader) = replica.leadership() {
            return Err(ReadError::NotLeader {
                shard: replica.id(),
                leader,
            });
        }
        let group = replica.shard.group;
        if !self.admission.admit_read(group, admission, Instant::now()) {
            return Err(ReadError::Throttled { shard: replica.id() });
        }
        let read = replica.read_frames(start, max_entries, max_bytes).await?;
        if let ReadAdmission::GetRecords { records, first } = admission {
            let take = Take {
                records,
                bytes: max_bytes,
                at_least_one: first,
            };
            let bytes = returned_bytes(&replica.shard, &read, take, &self.cipher);
            self.admission.charge_read(group, bytes, Instant::now());
        }
        Ok(read)
    }

    async fn read_once(
        &self,
        shard: &ShardRecord,
        start: ReadStart,
        limits: ReadLimits,
        admission: ReadAdmission,
        hops: u32,
    ) -> Attempt<FrameRead, ReadError> {
        let id = ShardId(shard.index);
        let local = match self.host.by_group(shard.group) {
            Some(replica) => match self.read_local(&replica, start, limits, admission).await {
                Err(ReadError::NotLeader { leader, .. }) => Some(leader),
                other => return Attempt::Done(other),
            },
            None => None,
        };
        let failed = |message: String| ReadError::Failed { shard: id, message };
        let (mut client, target) = match self.next_hop(shard, local, hops) {
            Hop::To { client, addr } => (client, addr),
            Hop::Retry(leader) => return Attempt::Retry(ReadError::NotLeader { shard: id, leader }),
            Hop::Unreachable(message) => return Attempt::Done(Err(failed(message))),
        };
        let req = pb::ReadShardRequest {
            group: shard.group,
            start: Some(wire::start_to_proto(start)),
            limit: limits.max_entries as u32,
            max_bytes: limits.max_bytes as u64,
            hops: hops + 1,
            admission: wire::admission_to_proto(admission),
        };
        match client.read_shard(req).await {
            Ok(resp) if resp.get_ref().throttled => Attempt::Done(Err(ReadError::Throttled { shard: id })),
            Ok(resp) => Attempt::Done(Ok(wire::frames_from_proto(resp.into_inner()))),
            // Reads change nothing: any failure may be retried.
            Err(status) => Attempt::Retry(failed(format!("{target}: {}", status.message()))),
        }
    }
}

/// How much one read of a shard may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// Log entries (0 only resolves the start).
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl ReadLimits {
    /// A read that only resolves its start.
    pub const RESOLVE: ReadLimits = ReadLimits {
        max_entries: 0,
        max_bytes: 0,
    };
}

fn unavailable(shard: &ShardRecord, what: &str) -> AppendError {
    AppendError::Unavailable {
        shard: ShardId(shard.index),
        message: unanswered(what),
    }
}

fn certainly_not_appended(status: &tonic::Status) -> bool {
    status.metadata().contains_key(NOT_APPENDED)
        || (status.code() == Code::Unavailable && status.message().contains("connect"))
}
