//! The node-to-node form of forwarded shard requests (`runnel.v1.Raft` ProposeShard,
//! ReadShard and SubscriptionLease): conversions between the router's values and their
//! protobuf messages. Pure.

use runnel_proto::v1 as pb;

use super::cursor::Cursor;
use super::cursor::ReadStart;
use super::replica::Appended;
use super::replica::FrameRead;
use super::router::Admitted;
use super::router::Proposed;
use crate::capacity::shard_admission::ReadAdmission;
use crate::capacity::subscription_leases::Holder;
use crate::capacity::subscription_leases::LeaseAnswer;
use crate::capacity::subscription_leases::LeaseKey;
use crate::capacity::subscription_leases::LeaseOp;
use crate::capacity::subscription_leases::LeaseRequest;
use crate::capacity::subscription_leases::Waiting;

/// A proposal's answer: where the records went and how many of them the leader admitted.
pub fn proposed_to_proto(proposed: Proposed) -> pb::ProposeShardResponse {
    let (at, closed_at, admitted) = match proposed {
        Proposed::Records(Admitted::All(at)) => (Some(at), None, None),
        Proposed::Records(Admitted::Prefix(at, count)) => (Some(at), None, Some(count as u32)),
        Proposed::Records(Admitted::None) => (None, None, Some(0)),
        Proposed::Closed(at) => (None, Some(at), None),
    };
    pb::ProposeShardResponse {
        log_index: at.map_or(0, |a| a.log_index),
        arrival_ms: at.map_or(0, |a| a.arrival_ms),
        closed_at,
        admitted,
        encrypted: at.is_some_and(|a| a.encrypted),
    }
}

/// The inverse of [`proposed_to_proto`]. A leader that does not answer `admitted` (one that
/// predates admission at the leader) appended the whole batch.
pub fn proposed_from_proto(r: pb::ProposeShardResponse) -> Proposed {
    if let Some(at) = r.closed_at {
        return Proposed::Closed(at);
    }
    let at = Appended {
        log_index: r.log_index,
        arrival_ms: r.arrival_ms,
        encrypted: r.encrypted,
    };
    Proposed::Records(match r.admitted {
        None => Admitted::All(at),
        Some(0) => Admitted::None,
        Some(count) => Admitted::Prefix(at, count as usize),
    })
}

pub fn admission_to_proto(admission: ReadAdmission) -> Option<pb::ReadAdmission> {
    use pb::read_admission::Kind;
    let kind = match admission {
        ReadAdmission::Unlimited => return None,
        ReadAdmission::GetRecords { first, records } => Kind::GetRecords(pb::GetRecordsRead {
            first,
            records: u32::try_from(records).unwrap_or(u32::MAX),
        }),
        ReadAdmission::GetShardIterator => Kind::GetShardIterator(pb::Empty {}),
    };
    Some(pb::ReadAdmission { kind: Some(kind) })
}

pub fn admission_from_proto(admission: Option<pb::ReadAdmission>) -> ReadAdmission {
    use pb::read_admission::Kind;
    match admission.and_then(|a| a.kind) {
        None => ReadAdmission::Unlimited,
        Some(Kind::GetRecords(g)) => ReadAdmission::GetRecords {
            first: g.first,
            records: g.records as usize,
        },
        Some(Kind::GetShardIterator(_)) => ReadAdmission::GetShardIterator,
    }
}

/// The answer to a read its leader refused.
pub fn throttled_read() -> pb::ReadShardResponse {
    pb::ReadShardResponse {
        throttled: true,
        ..pb::ReadShardResponse::default()
    }
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
        throttled: false,
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

pub fn frames_from_proto(r: pb::ReadShardResponse) -> FrameRead {
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

pub fn lease_to_proto(request: &LeaseRequest, hops: u32) -> pb::SubscriptionLeaseRequest {
    use pb::subscription_lease_request::Op;
    let op = match request.op {
        LeaseOp::Acquire { limit_rate, waits } => Op::Acquire(pb::AcquireLease { limit_rate, waits }),
        LeaseOp::Renew { age } => Op::Renew(pb::RenewLease {
            age_ms: u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        }),
        LeaseOp::Release => Op::Release(pb::Empty {}),
    };
    pb::SubscriptionLeaseRequest {
        group: request.key.group,
        consumer: request.key.consumer.clone(),
        holder_node: request.holder.node,
        holder_subscription: request.holder.subscription,
        hops,
        op: Some(op),
    }
}

/// The inverse of [`lease_to_proto`] and the request's hops; `None` without an operation.
pub fn lease_from_proto(r: pb::SubscriptionLeaseRequest) -> Option<(LeaseRequest, u32)> {
    use pb::subscription_lease_request::Op;
    let op = match r.op? {
        Op::Acquire(a) => LeaseOp::Acquire {
            limit_rate: a.limit_rate,
            waits: a.waits,
        },
        Op::Renew(n) => LeaseOp::Renew {
            age: std::time::Duration::from_millis(n.age_ms),
        },
        Op::Release(_) => LeaseOp::Release,
    };
    let request = LeaseRequest {
        key: LeaseKey {
            group: r.group,
            consumer: r.consumer,
        },
        holder: Holder {
            node: r.holder_node,
            subscription: r.holder_subscription,
        },
        op,
    };
    Some((request, r.hops))
}

pub fn lease_answer_to_proto(answer: LeaseAnswer) -> pb::SubscriptionLeaseResponse {
    use pb::subscription_lease_response::Outcome;
    let outcome = match answer {
        LeaseAnswer::Held => Outcome::Held,
        LeaseAnswer::InUse => Outcome::InUse,
        LeaseAnswer::RateExceeded => Outcome::RateExceeded,
        LeaseAnswer::TakenOver => Outcome::TakenOver,
        LeaseAnswer::Wait(Waiting::TakingOver) => Outcome::TakingOver,
        LeaseAnswer::Wait(Waiting::NewLeader) => Outcome::NewLeader,
    };
    pb::SubscriptionLeaseResponse {
        outcome: outcome as i32,
    }
}

/// The inverse of [`lease_answer_to_proto`]; an outcome this node does not know (a newer
/// leader's) lets the subscription go on.
pub fn lease_answer_from_proto(r: &pb::SubscriptionLeaseResponse) -> LeaseAnswer {
    use pb::subscription_lease_response::Outcome;
    match Outcome::try_from(r.outcome).unwrap_or(Outcome::Held) {
        Outcome::Held => LeaseAnswer::Held,
        Outcome::InUse => LeaseAnswer::InUse,
        Outcome::RateExceeded => LeaseAnswer::RateExceeded,
        Outcome::TakenOver => LeaseAnswer::TakenOver,
        Outcome::TakingOver => LeaseAnswer::Wait(Waiting::TakingOver),
        Outcome::NewLeader => LeaseAnswer::Wait(Waiting::NewLeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_survive_the_wire() {
        let at = Appended {
            log_index: 7,
            arrival_ms: 9,
            encrypted: false,
        };
        let sealed = Appended {
            encrypted: true,
            ..at
        };
        for p in [
            Proposed::Records(Admitted::All(at)),
            Proposed::Records(Admitted::All(sealed)),
            Proposed::Records(Admitted::Prefix(at, 3)),
            Proposed::Records(Admitted::Prefix(sealed, 3)),
            Proposed::Records(Admitted::None),
            Proposed::Closed(12),
        ] {
            assert_eq!(proposed_from_proto(proposed_to_proto(p)), p);
        }
        // An answer without `admitted` (an older leader) appended everything.
        let old = pb::ProposeShardResponse {
            log_index: 7,
            arrival_ms: 9,
            closed_at: None,
            admitted: None,
            encrypted: false,
        };
        assert_eq!(proposed_from_proto(old), Proposed::Records(Admitted::All(at)));
    }

    #[test]
    fn read_admissions_survive_the_wire() {
        for a in [
            ReadAdmission::Unlimited,
            ReadAdmission::GetRecords {
                first: true,
                records: 10_000,
            },
            ReadAdmission::GetRecords {
                first: false,
                records: 1,
            },
            ReadAdmission::GetShardIterator,
        ] {
            assert_eq!(admission_from_proto(admission_to_proto(a)), a);
        }
    }

    #[test]
    fn lease_requests_and_answers_survive_the_wire() {
        let key = LeaseKey {
            group: 4,
            consumer: "arn:c".into(),
        };
        let holder = Holder {
            node: 2,
            subscription: 99,
        };
        for op in [
            LeaseOp::Acquire {
                limit_rate: true,
                waits: true,
            },
            LeaseOp::Acquire {
                limit_rate: false,
                waits: false,
            },
            LeaseOp::Renew {
                age: std::time::Duration::from_millis(1_500),
            },
            LeaseOp::Release,
        ] {
            let request = LeaseRequest {
                key: key.clone(),
                holder,
                op,
            };
            assert_eq!(lease_from_proto(lease_to_proto(&request, 3)), Some((request, 3)));
        }
        for a in [
            LeaseAnswer::Held,
            LeaseAnswer::InUse,
            LeaseAnswer::RateExceeded,
            LeaseAnswer::TakenOver,
            LeaseAnswer::Wait(Waiting::TakingOver),
            LeaseAnswer::Wait(Waiting::NewLeader),
        ] {
            assert_eq!(lease_answer_from_proto(&lease_answer_to_proto(a)), a);
        }
        let unknown = pb::SubscriptionLeaseResponse { outcome: 42 };
        assert_eq!(lease_answer_from_proto(&unknown), LeaseAnswer::Held);
    }
}
