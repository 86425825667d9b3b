//! openraft's `stream_append` for a cluster peer, pipelined: the requests of one replication
//! session go out on the group's lane as soon as openraft makes them (up to
//! [`MAX_IN_FLIGHT`] unanswered), and the answers are yielded in order. openraft's default
//! adapter waits for each answer before sending the next request, so a put waited for the
//! follower's previous round (transfer and fsync) before its own could start.
//!
//! The first request of a session goes as a unary call, like before: a heartbeat is a session
//! of one request and should not cost a pipeline session on both nodes. Only a second request
//! opens the pipelined session, after the first has been answered, so the order holds.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::Stream;
use futures::StreamExt;
use futures::stream::BoxStream;
use openraft::AnyError;
use openraft::BasicNode;
use openraft::OptionalSend;
use openraft::RaftTypeConfig;
use openraft::entry::RaftEntry;
use openraft::error::NetworkError;
use openraft::error::RPCError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::StreamAppendResult;
use openraft::type_config::alias::LogIdOf;
use tokio::time::Instant;

use super::client::ClusterClient;
use super::client::transfer_allowance;
use super::lane::Ack;
use super::lane::Session;
use super::message;
use super::message::RaftRequest;
use super::message::RaftResponse;

/// Requests of one session sent and not yet answered, at most; and their bytes (at least one
/// request is always allowed, whatever its size).
const MAX_IN_FLIGHT: usize = 8;
const MAX_IN_FLIGHT_BYTES: usize = 32 << 20;

type Item<C> = Result<StreamAppendResult<C>, RPCError<C>>;

struct Sent {
    seq: u64,
    bytes: usize,
    deadline: Instant,
}

struct State<'s, C: RaftTypeConfig, S> {
    client: &'s ClusterClient<C>,
    input: S,
    option: RPCOption,
    /// The first request has been answered (it goes unary).
    started: bool,
    input_done: bool,
    session: Option<Session>,
    pending: VecDeque<Sent>,
    pending_bytes: usize,
    /// An error or a refusal was yielded: the stream is over.
    over: bool,
}

/// The pipelined `stream_append` of `client`.
pub fn pipelined<'s, C, S>(
    client: &'s ClusterClient<C>,
    input: S,
    option: RPCOption,
) -> BoxStream<'s, Item<C>>
where
    C: RaftTypeConfig<Node = BasicNode>,
    S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
{
    let state = State {
        client,
        input,
        option,
        started: false,
        input_done: false,
        session: None,
        pending: VecDeque::new(),
        pending_bytes: 0,
        over: false,
    };
    Box::pin(futures::stream::unfold(state, step))
}

fn range<C: RaftTypeConfig>(req: &AppendEntriesRequest<C>) -> (Option<LogIdOf<C>>, Option<LogIdOf<C>>) {
    let last = req
        .entries
        .last()
        .map(|e| e.log_id())
        .or_else(|| req.prev_log_id.clone());
    (req.prev_log_id.clone(), last)
}

fn unreachable<C: RaftTypeConfig>(message: impl Into<String>) -> RPCError<C> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(message.into())))
}

fn network<C: RaftTypeConfig>(message: impl Into<String>) -> RPCError<C> {
    RPCError::Network(NetworkError::new(&AnyError::error(message.into())))
}

async fn next_ack(session: &mut Option<Session>) -> Option<Ack> {
    match session {
        Some(s) => s.ack().await,
        None => std::future::pending().await,
    }
}

async fn step<'s, C, S>(mut st: State<'s, C, S>) -> Option<(Item<C>, State<'s, C, S>)>
where
    C: RaftTypeConfig<Node = BasicNode>,
    S: Stream<Item = AppendEntriesRequest<C>> + OptionalSend + Unpin + 'static,
{
    if st.over {
        return None;
    }
    if !st.started {
        let req = st.input.next().await?;
        st.started = true;
        let (item, stop) = first(st.client, req, &st.option).await;
        st.over = stop;
        return Some((item, st));
    }
    loop {
        if st.input_done && st.pending.is_empty() {
            return None;
        }
        let can_send = !st.input_done
            && st.pending.len() < MAX_IN_FLIGHT
            && (st.pending.is_empty() || st.pending_bytes < MAX_IN_FLIGHT_BYTES);
        let deadline = st.pending.front().map(|p| p.deadline);
        tokio::select! {
            biased;
            ack = next_ack(&mut st.session), if !st.pending.is_empty() => {
                let item = acknowledged::<C>(&mut st, ack);
                st.over = !matches!(item, Ok(Ok(_)));
                return Some((item, st));
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                st.over = true;
                let addr = st.client.addr.clone();
                return Some((Err(network(format!("{addr}: timed out"))), st));
            }
            req = st.input.next(), if can_send => match req {
                None => st.input_done = true,
                Some(req) => {
                    if let Err(e) = send(&mut st, req) {
                        st.over = true;
                        return Some((Err(e), st));
                    }
                }
            },
        }
    }
}

/// The first request, as one unary call; whether the session must stop after it.
async fn first<C>(
    client: &ClusterClient<C>,
    req: AppendEntriesRequest<C>,
    option: &RPCOption,
) -> (Item<C>, bool)
where
    C: RaftTypeConfig<Node = BasicNode>,
{
    let (prev, last) = range(&req);
    let resp = match client.call(RaftRequest::Append(req), option).await {
        Ok(RaftResponse::Append(resp)) => resp,
        Ok(_) => return (Err(network("unexpected response kind")), true),
        Err(e) => return (Err(super::client::rpc_error(e)), true),
    };
    // Only part of the entries taken: the rest needs a new session, as in openraft's
    // sequential adapter.
    let partial = matches!(&resp, AppendEntriesResponse::PartialSuccess(p) if *p != last);
    let result = resp.into_stream_result(prev, last);
    let stop = partial || result.is_err();
    (Ok(result), stop)
}

/// Sends the next request on the session, opening it first if need be.
fn send<C>(st: &mut State<'_, C, impl Sized>, req: AppendEntriesRequest<C>) -> Result<(), RPCError<C>>
where
    C: RaftTypeConfig<Node = BasicNode>,
{
    let client = st.client;
    if st.session.is_none() {
        st.session = match client.pool.session(&client.addr, client.group) {
            Ok(Some(s)) => Some(s),
            Ok(None) => return Err(unreachable(format!("{}: no pipeline to this peer", client.addr))),
            Err(e) => return Err(unreachable(e)),
        };
    }
    let payload = message::encode(&req).map_err(network)?;
    let bytes = payload.len();
    let session = st
        .session
        .as_mut()
        .ok_or_else(|| unreachable("no pipeline session"))?;
    let seq = session.send(Bytes::from(payload)).map_err(unreachable)?;
    st.pending_bytes += bytes;
    let deadline = Instant::now() + st.option.hard_ttl() + transfer_allowance(st.pending_bytes);
    st.pending.push_back(Sent { seq, bytes, deadline });
    Ok(())
}

/// What an acknowledgement (or the lane's end, `None`) means for the oldest request in flight.
fn acknowledged<C: RaftTypeConfig>(st: &mut State<'_, C, impl Sized>, ack: Option<Ack>) -> Item<C> {
    let addr = &st.client.addr;
    let Some(ack) = ack else {
        return Err(unreachable(format!("{addr}: pipeline lane ended")));
    };
    let payload = ack.result.map_err(unreachable)?;
    let Some(sent) = st.pending.pop_front() else {
        return Err(network(format!("{addr}: an acknowledgement nothing waited for")));
    };
    st.pending_bytes -= sent.bytes;
    if sent.seq != ack.seq {
        return Err(network(format!(
            "{addr}: acknowledgement {} arrived for request {}",
            ack.seq, sent.seq
        )));
    }
    let result: StreamAppendResult<C> = message::decode(&payload).map_err(network)?;
    Ok(result)
}
