//! Sends appends and reads to the leader of a shard's group, wherever it runs: locally when
//! this node's replica leads, otherwise over the node-to-node API. Clients never see "not
//! leader". An append is retried only when it certainly was not appended (the group rejected it
//! before appending, or the request never left), so the server never duplicates a record.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use runnel_proto::v1 as pb;
use tonic::Code;

use super::cursor::Cursor;
use super::cursor::ReadStart;
use super::host::ShardHost;
use super::replica::AppendError;
use super::replica::Appended;
use super::replica::FrameRead;
use super::replica::ReadError;
use crate::catalog::ShardRecord;
use crate::model::ShardId;
use crate::raft::transport::PeerPool;

/// Forwarding hops before a request gives up (leadership moving while it travels).
pub const MAX_HOPS: u32 = 4;
/// How long an append or read keeps looking for a leader (elections take up to ~3 s).
const DEADLINE: Duration = Duration::from_secs(8);
/// Metadata a node sets on a forwarded append it is sure it did not append.
pub const NOT_APPENDED: &str = "x-runnel-not-appended";

#[derive(Clone)]
pub struct ShardRouter {
    host: Arc<ShardHost>,
    peers: Option<Arc<PeerPool>>,
}

/// What a proposal to a shard group carries.
#[derive(Clone, Debug)]
pub enum Proposal {
    Records(Bytes),
    Seal,
}

/// How a shard group answered a proposal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proposed {
    Appended(Appended),
    /// The shard is sealed at this log index; nothing was appended.
    Closed(u64),
}

pub enum Attempt<T, E> {
    Done(Result<T, E>),
    /// Certainly not applied; try again (after a pause when no leader is known).
    Retry(E),
}

fn backoff(step: u32) -> Duration {
    Duration::from_millis((20u64 << step.min(5)).min(500))
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
    pub fn new(host: Arc<ShardHost>, peers: Option<Arc<PeerPool>>) -> ShardRouter {
        ShardRouter { host, peers }
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

    /// Appends an encoded batch to the shard; returns once it is committed. A sealed shard
    /// answers [`AppendError::Closed`] (nothing appended).
    pub async fn append(
        &self,
        shard: &ShardRecord,
        batch: Bytes,
        hops: u32,
    ) -> Result<Appended, AppendError> {
        let attempt = || self.propose_once(shard, Proposal::Records(batch.clone()), hops);
        match retry(attempt, || unavailable(shard, "append")).await? {
            Proposed::Appended(a) => Ok(a),
            Proposed::Closed(at) => Err(AppendError::Closed {
                shard: ShardId(shard.index),
                at,
            }),
        }
    }

    /// Seals the shard at its leader (idempotent); returns the seal's log index.
    pub async fn seal(&self, shard: &ShardRecord, hops: u32) -> Result<u64, AppendError> {
        let attempt = || self.propose_once(shard, Proposal::Seal, hops);
        match retry(attempt, || unavailable(shard, "seal")).await? {
            Proposed::Closed(at) => Ok(at),
            Proposed::Appended(_) => Err(AppendError::Storage {
                shard: ShardId(shard.index),
                message: "seal answered as an append".into(),
            }),
        }
    }

    async fn propose_once(
        &self,
        shard: &ShardRecord,
        proposal: Proposal,
        hops: u32,
    ) -> Attempt<Proposed, AppendError> {
        let id = ShardId(shard.index);
        let target = match self.host.by_group(shard.group) {
            Some(replica) => {
                let local = match &proposal {
                    Proposal::Records(batch) => replica.append(batch.clone()).await.map(Proposed::Appended),
                    Proposal::Seal => replica.seal().await.map(Proposed::Closed),
                };
                match local {
                    Err(AppendError::NotLeader { leader, .. }) => match self.leader_addr(leader) {
                        Some(addr) => addr,
                        None => return Attempt::Retry(AppendError::NotLeader { shard: id, leader }),
                    },
                    Err(AppendError::Closed { at, .. }) => return Attempt::Done(Ok(Proposed::Closed(at))),
                    other => return Attempt::Done(other),
                }
            }
            None => match self.some_replica_addr(shard, hops) {
                Some(addr) => addr,
                None => {
                    return Attempt::Retry(AppendError::NotLeader {
                        shard: id,
                        leader: None,
                    });
                }
            },
        };
        if hops >= MAX_HOPS {
            // Leadership kept moving while the request travelled; nothing was appended.
            return Attempt::Retry(AppendError::NotLeader {
                shard: id,
                leader: None,
            });
        }
        let Some(pool) = &self.peers else {
            return Attempt::Done(Err(AppendError::Unavailable {
                shard: id,
                message: "no peers".into(),
            }));
        };
        let mut client = match pool.client(&target) {
            Ok(c) => c,
            Err(message) => return Attempt::Done(Err(AppendError::Unavailable { shard: id, message })),
        };
        let (batch, seal) = match proposal {
            Proposal::Records(batch) => (batch, false),
            Proposal::Seal => (Bytes::new(), true),
        };
        let req = pb::ProposeShardRequest {
            group: shard.group,
            batch,
            hops: hops + 1,
            seal,
        };
        match client.propose_shard(req).await {
            Ok(resp) => {
                let r = resp.into_inner();
                Attempt::Done(Ok(match r.closed_at {
                    Some(at) => Proposed::Closed(at),
                    None => Proposed::Appended(Appended {
                        log_index: r.log_index,
                        arrival_ms: r.arrival_ms,
                    }),
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

    /// Reads frames of the shard from its leader.
    pub async fn read(
        &self,
        shard: &ShardRecord,
        start: ReadStart,
        max_entries: usize,
        max_bytes: usize,
        hops: u32,
    ) -> Result<FrameRead, ReadError> {
        let attempt = || self.read_once(shard, start, max_entries, max_bytes, hops);
        retry(attempt, || ReadError::Failed {
            shard: ShardId(shard.index),
            message: unanswered("read"),
        })
        .await
    }

    async fn read_once(
        &self,
        shard: &ShardRecord,
        start: ReadStart,
        max_entries: usize,
        max_bytes: usize,
        hops: u32,
    ) -> Attempt<FrameRead, ReadError> {
        let id = ShardId(shard.index);
        let target = match self.host.by_group(shard.group) {
            Some(replica) => match replica.read_frames(start, max_entries, max_bytes).await {
                Err(ReadError::NotLeader { leader, .. }) => match self.leader_addr(leader) {
                    Some(addr) => addr,
                    None => return Attempt::Retry(ReadError::NotLeader { shard: id, leader }),
                },
                other => return Attempt::Done(other),
            },
            None => match self.some_replica_addr(shard, hops) {
                Some(addr) => addr,
                None => {
                    return Attempt::Retry(ReadError::NotLeader {
                        shard: id,
                        leader: None,
                    });
                }
            },
        };
        let failed = |message: String| ReadError::Failed { shard: id, message };
        if hops >= MAX_HOPS {
            return Attempt::Retry(ReadError::NotLeader {
                shard: id,
                leader: None,
            });
        }
        let Some(pool) = &self.peers else {
            return Attempt::Done(Err(failed("no peers".into())));
        };
        let mut client = match pool.client(&target) {
            Ok(c) => c,
            Err(m) => return Attempt::Done(Err(failed(m))),
        };
        let req = pb::ReadShardRequest {
            group: shard.group,
            start: Some(start_to_proto(start)),
            limit: max_entries as u32,
            max_bytes: max_bytes as u64,
            hops: hops + 1,
        };
        match client.read_shard(req).await {
            Ok(resp) => Attempt::Done(Ok(frames_from_proto(resp.into_inner()))),
            // Reads change nothing: any failure may be retried.
            Err(status) => Attempt::Retry(failed(format!("{target}: {}", status.message()))),
        }
    }
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

pub fn start_to_proto(start: ReadStart) -> pb::read_shard_request::Start {
    use pb::read_shard_request::Start;
    match start {
        ReadStart::Cursor(c) => Start::Cursor(pb::ShardCursor {
            log_index: c.log_index,
            position: u32::from(c.position),
        }),
        ReadStart::TrimHorizon => Start::TrimHorizon(pb::Empty {}),
        ReadStart::Latest => Start::Latest(pb::Empty {}),
        ReadStart::AtTimestamp(t) => Start::AtTimestampMs(t),
    }
}

pub fn start_from_proto(start: Option<pb::read_shard_request::Start>) -> ReadStart {
    use pb::read_shard_request::Start;
    match start {
        Some(Start::Cursor(c)) => ReadStart::Cursor(Cursor {
            log_index: c.log_index,
            position: c.position.min(u32::from(u16::MAX)) as u16,
        }),
        Some(Start::Latest(_)) => ReadStart::Latest,
        Some(Start::AtTimestampMs(t)) => ReadStart::AtTimestamp(t),
        Some(Start::TrimHorizon(_)) | None => ReadStart::TrimHorizon,
    }
}

pub fn frames_to_proto(read: FrameRead) -> pb::ReadShardResponse {
    pb::ReadShardResponse {
        start: Some(pb::ShardCursor {
            log_index: read.start.log_index,
            position: u32::from(read.start.position),
        }),
        watermark: read.watermark,
        frames: read
            .frames
            .into_iter()
            .map(|f| pb::LogFrame {
                index: f.index,
                term: f.term,
                timestamp_ms: f.timestamp_ms,
                kind: u32::from(f.kind),
                payload: f.payload,
            })
            .collect(),
    }
}

fn frames_from_proto(r: pb::ReadShardResponse) -> FrameRead {
    let start = r.start.map_or(Cursor::entry_start(1), |c| Cursor {
        log_index: c.log_index,
        position: c.position.min(u32::from(u16::MAX)) as u16,
    });
    FrameRead {
        start,
        watermark: r.watermark,
        frames: r
            .frames
            .into_iter()
            .map(|f| runnel_log::Entry {
                index: f.index,
                term: f.term,
                timestamp_ms: f.timestamp_ms,
                kind: f.kind as u8,
                payload: f.payload,
            })
            .collect(),
    }
}
