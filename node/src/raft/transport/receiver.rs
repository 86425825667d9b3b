//! The receiving end of a pipeline lane ([`super::lane`]): each session becomes one
//! `Raft::stream_append` of its group, fed in the order the lane delivered the requests, and
//! every request is answered by an acknowledgement with its session and sequence number.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use openraft::Raft;
use openraft::RaftTypeConfig;
use openraft::raft::AppendEntriesRequest;
use openraft::storage::RaftStateMachine;
use runnel_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::message;

const ACK_FRAME: usize = 1024;

/// Where a lane's acknowledgements go (in order, to the sender).
pub type AckSink = mpsc::UnboundedSender<pb::PipelineAck>;

fn ack_error(session: u64, seq: u64, error: String) -> pb::PipelineAck {
    pb::PipelineAck {
        session,
        seq,
        payload: Bytes::new(),
        error,
    }
}

/// Decodes request `seq` and hands it to the group.
type Push = Box<dyn FnMut(u64, &[u8]) -> Result<(), String> + Send>;

/// One open session: a group's `stream_append` taking the session's requests.
pub struct AppendSession {
    id: u64,
    acks: AckSink,
    push: Push,
}

impl AppendSession {
    /// Hands request `seq` to the group; a request that cannot be taken is answered with an
    /// error at once (the sender ends the session on it).
    pub fn push(&mut self, seq: u64, payload: &[u8]) {
        if let Err(e) = (self.push)(seq, payload) {
            let _ = self.acks.send(ack_error(self.id, seq, e));
        }
    }
}

/// Opens session `id` on `raft`; `on_request` runs as each request arrives.
pub fn append_session<C, SM>(
    raft: &Raft<C, SM>,
    id: u64,
    acks: AckSink,
    on_request: impl Fn() + Send + 'static,
) -> AppendSession
where
    C: RaftTypeConfig,
    SM: RaftStateMachine<C>,
{
    let (tx, rx) = mpsc::unbounded_channel::<(u64, AppendEntriesRequest<C>)>();
    // The sequence numbers of the requests openraft took, oldest first: its answers come in
    // the same order.
    let seqs: Arc<Mutex<VecDeque<u64>>> = Arc::default();
    let ended = Arc::new(AtomicBool::new(false));
    let taken = seqs.clone();
    let input = UnboundedReceiverStream::new(rx).map(move |(seq, req)| {
        taken.lock().unwrap_or_else(|p| p.into_inner()).push_back(seq);
        req
    });
    let raft = raft.clone();
    let (out_acks, out_ended) = (acks.clone(), ended.clone());
    tokio::spawn(async move {
        let answers = raft.stream_append(input);
        futures::pin_mut!(answers);
        while let Some(answer) = answers.next().await {
            let seq = seqs.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
            let Some(seq) = seq else {
                break;
            };
            let (ack, last) = match answer {
                Ok(result) => {
                    let last = result.is_err();
                    match message::encode(&result) {
                        Ok(payload) => (
                            pb::PipelineAck {
                                session: id,
                                seq,
                                payload: payload.into(),
                                error: String::new(),
                            },
                            last,
                        ),
                        Err(e) => (ack_error(id, seq, e), true),
                    }
                }
                Err(fatal) => (ack_error(id, seq, fatal.to_string()), true),
            };
            let _ = out_acks.send(ack);
            if last {
                break;
            }
        }
        out_ended.store(true, Ordering::Release);
    });
    let push = move |seq: u64, payload: &[u8]| {
        on_request();
        if ended.load(Ordering::Acquire) {
            return Err("the replication session has ended".to_owned());
        }
        let req: AppendEntriesRequest<C> = message::decode(payload)?;
        tx.send((seq, req))
            .map_err(|_| "the replication session has ended".to_owned())
    };
    AppendSession {
        id,
        acks,
        push: Box::new(push),
    }
}

/// Serves one lane: `open` starts a session of a group (or says why it cannot), and
/// `inbound_bytes` counts what arrives. Ends when the lane does; its sessions end with it.
pub async fn serve_lane<S, E, O>(
    mut frames: S,
    acks: AckSink,
    inbound_bytes: prometheus::IntCounter,
    mut open: O,
) where
    S: Stream<Item = Result<pb::PipelineFrame, E>> + Unpin,
    O: FnMut(u64, u64, AckSink) -> Result<AppendSession, String>,
{
    let mut sessions: HashMap<u64, AppendSession> = HashMap::new();
    while let Some(Ok(frame)) = frames.next().await {
        for m in frame.messages {
            inbound_bytes.inc_by(m.payload.len() as u64);
            if m.end {
                sessions.remove(&m.session);
                continue;
            }
            let session = match sessions.entry(m.session) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    match open(m.group, m.session, acks.clone()) {
                        Ok(s) => v.insert(s),
                        Err(e) => {
                            let _ = acks.send(ack_error(m.session, m.seq, e));
                            continue;
                        }
                    }
                }
            };
            session.push(m.seq, &m.payload);
        }
    }
}

/// The acknowledgements of a lane as its response stream, coalesced into frames.
pub fn ack_frames<E>(
    rx: mpsc::UnboundedReceiver<pb::PipelineAck>,
) -> impl Stream<Item = Result<pb::PipelineAcks, E>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let first = rx.recv().await?;
        let mut acks = vec![first];
        while acks.len() < ACK_FRAME {
            match rx.try_recv() {
                Ok(a) => acks.push(a),
                Err(_) => break,
            }
        }
        Some((Ok(pb::PipelineAcks { acks }), rx))
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    impl AppendSession {
        fn with_push(id: u64, acks: AckSink, push: Push) -> AppendSession {
            AppendSession { id, acks, push }
        }
    }

    fn message(session: u64, group: u64, seq: u64, payload: &[u8]) -> pb::PipelineMessage {
        pb::PipelineMessage {
            session,
            group,
            seq,
            payload: Bytes::copy_from_slice(payload),
            end: false,
        }
    }

    fn end(session: u64, group: u64) -> pb::PipelineMessage {
        pb::PipelineMessage {
            end: true,
            ..message(session, group, 0, b"")
        }
    }

    /// Serves `frames` with sessions that answer each request at once with its payload
    /// (or refuse payload "bad"); groups above 100 are not hosted. Returns the
    /// acknowledgements and how many sessions were opened.
    async fn serve(frames: Vec<Vec<pb::PipelineMessage>>) -> (Vec<pb::PipelineAck>, usize) {
        let (acks, mut rx) = mpsc::unbounded_channel();
        let frames = futures::stream::iter(
            frames
                .into_iter()
                .map(|messages| Ok::<_, ()>(pb::PipelineFrame { messages })),
        );
        let opened = Rc::new(Cell::new(0));
        let counter = opened.clone();
        serve_lane(
            frames,
            acks,
            prometheus::IntCounter::new("t", "t").unwrap(),
            |group, id, acks| {
                if group > 100 {
                    return Err(format!("group {group} is not hosted here"));
                }
                counter.set(counter.get() + 1);
                let out = acks.clone();
                let push: Push = Box::new(move |seq, payload| {
                    if payload == b"bad" {
                        return Err("undecodable".into());
                    }
                    let _ = out.send(pb::PipelineAck {
                        session: id,
                        seq,
                        payload: Bytes::copy_from_slice(payload),
                        error: String::new(),
                    });
                    Ok(())
                });
                Ok(AppendSession::with_push(id, acks, push))
            },
        )
        .await;
        let mut out = Vec::new();
        while let Ok(a) = rx.try_recv() {
            out.push(a);
        }
        (out, opened.get())
    }

    fn summary(acks: &[pb::PipelineAck]) -> Vec<(u64, u64, String)> {
        acks.iter()
            .map(|a| {
                let what = if a.error.is_empty() {
                    String::from_utf8_lossy(&a.payload).into_owned()
                } else {
                    format!("error: {}", a.error)
                };
                (a.session, a.seq, what)
            })
            .collect()
    }

    #[tokio::test]
    async fn requests_reach_their_session_in_lane_order_across_frames() {
        let (acks, opened) = serve(vec![
            vec![
                message(1, 7, 0, b"a"),
                message(2, 8, 0, b"x"),
                message(1, 7, 1, b"b"),
            ],
            vec![message(1, 7, 2, b"c"), message(2, 8, 1, b"y")],
        ])
        .await;
        assert_eq!(opened, 2);
        let s = |session, seq, what: &str| (session, seq, what.to_owned());
        assert_eq!(
            summary(&acks),
            vec![
                s(1, 0, "a"),
                s(2, 0, "x"),
                s(1, 1, "b"),
                s(1, 2, "c"),
                s(2, 1, "y")
            ]
        );
    }

    #[tokio::test]
    async fn a_request_that_cannot_be_taken_is_answered_with_an_error() {
        let (acks, opened) = serve(vec![vec![
            message(1, 500, 0, b"a"),
            message(1, 500, 1, b"b"),
            message(2, 7, 0, b"bad"),
        ]])
        .await;
        // The unknown group is tried again for each request, and never opened.
        assert_eq!(opened, 1);
        let got = summary(&acks);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].0, got[0].1), (1, 0));
        assert!(got[0].2.contains("group 500 is not hosted"), "{got:?}");
        assert_eq!((got[1].0, got[1].1), (1, 1));
        assert_eq!((got[2].0, got[2].1), (2, 0));
        assert!(got[2].2.contains("undecodable"), "{got:?}");
    }

    #[tokio::test]
    async fn an_ended_session_is_dropped() {
        let (acks, opened) = serve(vec![vec![
            message(1, 7, 0, b"a"),
            end(1, 7),
            // Ids are never reused by a sender; one that was would get a fresh session.
            message(1, 7, 0, b"b"),
        ]])
        .await;
        assert_eq!(opened, 2);
        assert_eq!(acks.len(), 2);
    }

    #[tokio::test]
    async fn acknowledgements_are_coalesced_into_frames() {
        let (tx, rx) = mpsc::unbounded_channel();
        for seq in 0..3 {
            tx.send(ack_error(1, seq, "e".into())).unwrap();
        }
        drop(tx);
        let frames: Vec<Result<pb::PipelineAcks, ()>> = ack_frames(rx).collect().await;
        assert_eq!(frames.len(), 1);
        let seqs: Vec<u64> = frames[0].as_ref().unwrap().acks.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, vec![0, 1, 2]);
    }
}
