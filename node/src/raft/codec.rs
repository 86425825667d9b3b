//! How an openraft entry becomes a shard-log frame and back.
//!
//! The frame kind says what the payload is; record batches are stored as they arrived (no
//! re-encoding), membership changes and catalog commands as JSON (rare and small).

use std::io;

use bytes::Bytes;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::RaftTypeConfig;
use openraft::vote::leader_id_std::CommittedLeaderId;

use super::types::CatalogRaft;
use super::types::ShardCommand;
use super::types::ShardRaft;
use crate::catalog::CatalogCommand;

pub const KIND_BLANK: u8 = 0;
pub const KIND_MEMBERSHIP: u8 = 1;
pub const KIND_RECORDS: u8 = 2;
pub const KIND_CATALOG: u8 = 3;
pub const KIND_SEAL: u8 = 4;

/// Application data that knows its frame kind and encoding.
pub trait FrameData: Sized {
    fn kind(&self) -> u8;
    fn timestamp_ms(&self) -> Option<i64>;
    fn encode(&self) -> io::Result<Bytes>;
    fn decode(kind: u8, payload: Bytes) -> io::Result<Self>;
}

impl FrameData for ShardCommand {
    fn kind(&self) -> u8 {
        match self {
            ShardCommand::Records { .. } => KIND_RECORDS,
            ShardCommand::Seal => KIND_SEAL,
        }
    }
    fn timestamp_ms(&self) -> Option<i64> {
        match self {
            ShardCommand::Records { timestamp_ms, .. } => Some(*timestamp_ms),
            ShardCommand::Seal => None,
        }
    }
    fn encode(&self) -> io::Result<Bytes> {
        match self {
            ShardCommand::Records { batch, .. } => Ok(batch.clone()),
            ShardCommand::Seal => Ok(Bytes::new()),
        }
    }
    fn decode(kind: u8, payload: Bytes) -> io::Result<Self> {
        match kind {
            // The frame's timestamp is restored by the caller.
            KIND_RECORDS => Ok(ShardCommand::Records {
                timestamp_ms: 0,
                batch: payload,
            }),
            KIND_SEAL => Ok(ShardCommand::Seal),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected frame kind {kind}"),
            )),
        }
    }
}

impl FrameData for CatalogCommand {
    fn kind(&self) -> u8 {
        KIND_CATALOG
    }
    fn timestamp_ms(&self) -> Option<i64> {
        None
    }
    fn encode(&self) -> io::Result<Bytes> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(io::Error::other)
    }
    fn decode(kind: u8, payload: Bytes) -> io::Result<Self> {
        if kind != KIND_CATALOG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected frame kind {kind}"),
            ));
        }
        serde_json::from_slice(&payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

type Clid = CommittedLeaderId<u64>;
type FramedEntry<D> = openraft::Entry<Clid, EntryPayload<D, u64, openraft::BasicNode>>;

/// A type configuration whose entries can be framed in the shard log.
pub trait FramedConfig: RaftTypeConfig<NodeId = u64, Node = openraft::BasicNode, Term = u64> {
    fn to_frame(entry: &Self::Entry, now_ms: i64) -> io::Result<runnel_log::Entry>;
    fn from_frame(frame: runnel_log::Entry) -> io::Result<Self::Entry>;
    fn log_id(term: u64, index: u64) -> openraft::type_config::alias::LogIdOf<Self>;
}

impl FramedConfig for ShardRaft {
    fn to_frame(entry: &Self::Entry, now_ms: i64) -> io::Result<runnel_log::Entry> {
        to_frame(entry, now_ms)
    }
    fn from_frame(frame: runnel_log::Entry) -> io::Result<Self::Entry> {
        from_frame(frame, |data, timestamp_ms| match data {
            ShardCommand::Records { batch, .. } => ShardCommand::Records { timestamp_ms, batch },
            ShardCommand::Seal => ShardCommand::Seal,
        })
    }
    fn log_id(term: u64, index: u64) -> LogId<Clid> {
        log_id(term, index)
    }
}

impl FramedConfig for CatalogRaft {
    fn to_frame(entry: &Self::Entry, now_ms: i64) -> io::Result<runnel_log::Entry> {
        to_frame(entry, now_ms)
    }
    fn from_frame(frame: runnel_log::Entry) -> io::Result<Self::Entry> {
        from_frame(frame, |data, _| data)
    }
    fn log_id(term: u64, index: u64) -> LogId<Clid> {
        log_id(term, index)
    }
}

pub type EntryOf<C> = <C as RaftTypeConfig>::Entry;

fn to_frame<D: FrameData + openraft::AppData>(
    entry: &FramedEntry<D>,
    now_ms: i64,
) -> io::Result<runnel_log::Entry> {
    let (kind, timestamp_ms, payload) = match &entry.payload {
        EntryPayload::Blank => (KIND_BLANK, now_ms, Bytes::new()),
        EntryPayload::Normal(d) => (d.kind(), d.timestamp_ms().unwrap_or(now_ms), d.encode()?),
        EntryPayload::Membership(m) => (
            KIND_MEMBERSHIP,
            now_ms,
            Bytes::from(serde_json::to_vec(m).map_err(io::Error::other)?),
        ),
    };
    Ok(runnel_log::Entry {
        index: entry.log_id.index,
        term: entry.log_id.leader_id.term,
        timestamp_ms,
        kind,
        payload,
    })
}

/// Decodes a frame; `restore` puts back data fields kept in the frame header.
fn from_frame<D: FrameData + openraft::AppData>(
    frame: runnel_log::Entry,
    restore: impl FnOnce(D, i64) -> D,
) -> io::Result<FramedEntry<D>> {
    let payload = match frame.kind {
        KIND_BLANK => EntryPayload::Blank,
        KIND_MEMBERSHIP => EntryPayload::Membership(
            serde_json::from_slice(&frame.payload)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
        ),
        kind => EntryPayload::Normal(restore(D::decode(kind, frame.payload)?, frame.timestamp_ms)),
    };
    Ok(openraft::Entry {
        log_id: log_id(frame.term, frame.index),
        payload,
    })
}

pub fn log_id(term: u64, index: u64) -> LogId<Clid> {
    LogId {
        leader_id: CommittedLeaderId::new(term),
        index,
    }
}
