//! Ordered lanes for pipelined AppendEntries: a few long-lived `Raft.Pipeline` streams per peer,
//! on the same HTTP/2 connection as the rest of the Raft traffic. A group always uses the same
//! lane, so its requests arrive in the order they were sent, and any number of them can be in
//! flight. Each replication session (one `stream_append` of openraft) is a [`Session`] on a
//! lane: its requests carry the session id and a sequence number, and the receiver answers each
//! one with an acknowledgement carrying them back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::Stream;
use runnel_proto::v1 as pb;
use runnel_proto::v1::raft_client::RaftClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::metrics::TransportMetrics;

/// Lanes per peer; a group's lane is its id modulo this.
pub const LANES: u64 = 4;
/// Messages (or acknowledgements) coalesced into one frame, at most.
const FRAME_MESSAGES: usize = 1024;
const FRAME_BYTES: usize = 8 << 20;

/// What a session receives for one request: the encoded `StreamAppendResult`, or why the
/// request was not handled.
pub struct Ack {
    pub seq: u64,
    pub result: Result<Bytes, String>,
}

type SessionTable = Arc<Mutex<LaneSessions>>;

#[derive(Default)]
struct LaneSessions {
    /// Set when the lane's stream ended: no session may join it any more.
    closed: bool,
    sessions: HashMap<u64, mpsc::UnboundedSender<Ack>>,
}

/// The sending half of one lane to one peer.
#[derive(Clone)]
pub struct Lane {
    frames: mpsc::UnboundedSender<pb::PipelineMessage>,
    table: SessionTable,
    appends: Option<prometheus::IntCounter>,
}

/// Whether the peer answered `Raft.Pipeline` with Unimplemented (a node of an older build).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneEnd {
    Broken,
    Unsupported,
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl Lane {
    /// Opens a lane on `channel`: `on_end` is told once the stream ends, and why.
    pub fn open(
        addr: String,
        channel: Channel,
        max_message_bytes: usize,
        metrics: Option<TransportMetrics>,
        on_end: impl FnOnce(LaneEnd) + Send + 'static,
    ) -> Lane {
        let (frames, rx) = mpsc::unbounded_channel();
        let table = SessionTable::default();
        let appends = metrics
            .as_ref()
            .map(|m| m.pipelined_appends.with_label_values(&[&addr]));
        let client = RaftClient::new(channel)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        tokio::spawn(run(addr, client, rx, table.clone(), metrics, on_end));
        Lane {
            frames,
            table,
            appends,
        }
    }

    /// Whether this lane can still carry sessions.
    pub fn is_open(&self) -> bool {
        !self.frames.is_closed() && !self.table.lock().unwrap_or_else(|p| p.into_inner()).closed
    }

    /// Starts a session of `group` on this lane; `None` if the lane has ended.
    pub fn session(&self, group: u64) -> Option<Session> {
        let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        let (tx, acks) = mpsc::unbounded_channel();
        {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            if table.closed {
                return None;
            }
            table.sessions.insert(id, tx);
        }
        Some(Session {
            id,
            group,
            next_seq: 0,
            lane: self.clone(),
            acks,
        })
    }
}

/// One replication session on a lane. Dropping it tells the receiver the session is over.
pub struct Session {
    id: u64,
    group: u64,
    next_seq: u64,
    lane: Lane,
    acks: mpsc::UnboundedReceiver<Ack>,
}

impl Session {
    /// Queues an encoded AppendEntries request; returns its sequence number, or an error if
    /// the lane has ended.
    pub fn send(&mut self, payload: Bytes) -> Result<u64, String> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.lane
            .frames
            .send(pb::PipelineMessage {
                session: self.id,
                group: self.group,
                seq,
                payload,
                end: false,
            })
            .map_err(|_| "the pipeline lane has ended".to_owned())?;
        if let Some(appends) = &self.lane.appends {
            appends.inc();
        }
        Ok(seq)
    }

    /// The next acknowledgement; `None` once the lane has ended.
    pub async fn ack(&mut self) -> Option<Ack> {
        self.acks.recv().await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.lane
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sessions
            .remove(&self.id);
        let _ = self.lane.frames.send(pb::PipelineMessage {
            session: self.id,
            group: self.group,
            seq: self.next_seq,
            payload: Bytes::new(),
            end: true,
        });
    }
}

/// Whatever is queued when the transport asks for the next frame goes in it.
fn frames(
    rx: mpsc::UnboundedReceiver<pb::PipelineMessage>,
    sent: Option<prometheus::IntCounter>,
) -> impl Stream<Item = pb::PipelineFrame> {
    futures::stream::unfold(rx, move |mut rx| {
        let sent = sent.clone();
        async move {
            let first = rx.recv().await?;
            let mut bytes = first.payload.len();
            let mut messages = vec![first];
            while messages.len() < FRAME_MESSAGES && bytes < FRAME_BYTES {
                match rx.try_recv() {
                    Ok(m) => {
                        bytes += m.payload.len();
                        messages.push(m);
                    }
                    Err(_) => break,
                }
            }
            if let Some(sent) = &sent {
                sent.inc_by(bytes as u64);
            }
            Some((pb::PipelineFrame { messages }, rx))
        }
    })
}

async fn run(
    addr: String,
    mut client: RaftClient<Channel>,
    rx: mpsc::UnboundedReceiver<pb::PipelineMessage>,
    table: SessionTable,
    metrics: Option<TransportMetrics>,
    on_end: impl FnOnce(LaneEnd),
) {
    let sent = metrics.as_ref().map(|m| m.sent_bytes.with_label_values(&[&addr]));
    let received = metrics
        .as_ref()
        .map(|m| m.received_bytes.with_label_values(&[&addr]));
    let end = match client.pipeline(frames(rx, sent)).await {
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            tracing::info!(peer = %addr, "peer predates pipelined replication");
            LaneEnd::Unsupported
        }
        Err(status) => {
            tracing::debug!(peer = %addr, error = %status.message(), "pipeline lane not opened");
            LaneEnd::Broken
        }
        Ok(response) => {
            let mut acks = response.into_inner();
            loop {
                match acks.message().await {
                    Ok(Some(frame)) => dispatch(&table, frame, received.as_ref()),
                    Ok(None) => break LaneEnd::Broken,
                    Err(status) => {
                        tracing::debug!(peer = %addr, error = %status.message(), "pipeline lane ended");
                        break LaneEnd::Broken;
                    }
                }
            }
        }
    };
    // Dropping the sessions' senders ends every session on this lane.
    let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
    table.closed = true;
    table.sessions.clear();
    drop(table);
    on_end(end);
}

fn dispatch(table: &SessionTable, frame: pb::PipelineAcks, received: Option<&prometheus::IntCounter>) {
    let table = table.lock().unwrap_or_else(|p| p.into_inner());
    for ack in frame.acks {
        if let Some(received) = received {
            received.inc_by(ack.payload.len() as u64);
        }
        // A session that is gone no longer waits for anything.
        let Some(session) = table.sessions.get(&ack.session) else {
            continue;
        };
        let result = if ack.error.is_empty() {
            Ok(ack.payload)
        } else {
            Err(ack.error)
        };
        let _ = session.send(Ack { seq: ack.seq, result });
    }
}
