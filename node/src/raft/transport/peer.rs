//! One batching sender per peer: every group's messages to that peer share its HTTP/2
//! connection, and whatever is queued when a call leaves goes in the same `Raft.Batch`.
//!
//! Where a peer is reached is this node's own business: its `--peers` entry (the local
//! address book) wins over the address the peer has in a group's membership, which is only
//! what the node that formed the group knew. Peers are always looked up by node id.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use bytes::Bytes;
use runnel_proto::v1 as pb;
use runnel_proto::v1::raft_client::RaftClient;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use super::lane::LANES;
use super::lane::Lane;
use super::lane::LaneEnd;
use super::lane::Session;
use crate::metrics::TransportMetrics;

/// Messages per call and bytes per call, at most.
const MAX_BATCH: usize = 1024;
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Calls in flight to one peer.
const IN_FLIGHT: usize = 4;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_millis(500);
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// How long a peer that answered `Raft.Pipeline` with Unimplemented is not asked again.
const UNSUPPORTED_RECHECK: Duration = Duration::from_secs(30);

type Reply = Result<pb::RaftReply, String>;

struct Pending {
    message: pb::RaftMessage,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
pub struct PeerPool {
    /// Node id → the address this node reaches it at (its `--peers`).
    routes: BTreeMap<u64, String>,
    peers: Mutex<HashMap<String, mpsc::Sender<Pending>>>,
    /// The replication connection to each peer, shared by its batches and its lanes.
    replication: Connections,
    lanes: Mutex<HashMap<(String, u64), Lane>>,
    /// The connection for requests forwarded to each peer.
    forwarded: Connections,
    /// The connection for liveness pings to each peer.
    pings: Connections,
    /// Peers of an older build (no `Raft.Pipeline`), and since when.
    unpipelined: Arc<Mutex<HashMap<String, Instant>>>,
    metrics: Option<TransportMetrics>,
}

impl PeerPool {
    /// A pool reaching the nodes of `routes` at their given addresses, and any other node at
    /// the address its group memberships advertise.
    pub fn new(routes: BTreeMap<u64, String>, metrics: Option<TransportMetrics>) -> Arc<PeerPool> {
        Arc::new(PeerPool {
            routes,
            peers: Mutex::default(),
            replication: Connections::default(),
            lanes: Mutex::default(),
            forwarded: Connections::default(),
            pings: Connections::default(),
            unpipelined: Arc::default(),
            metrics,
        })
    }

    /// Where to reach node `id`, which a membership advertises at `advertised`.
    pub fn address(&self, id: u64, advertised: &str) -> String {
        self.routes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| advertised.to_owned())
    }

    /// The local address book: node id → address.
    pub fn routes(&self) -> &BTreeMap<u64, String> {
        &self.routes
    }

    fn sender(&self, addr: &str) -> Result<mpsc::Sender<Pending>, String> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = peers.get(addr).filter(|tx| !tx.is_closed()) {
            return Ok(tx.clone());
        }
        let channel = self.replication.get(addr)?;
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(addr.to_owned(), channel, rx, self.metrics.clone()));
        peers.insert(addr.to_owned(), tx.clone());
        if let Some(m) = &self.metrics {
            m.connections
                .with_label_values(&[] as &[&str])
                .set(peers.len() as i64);
        }
        Ok(tx)
    }

    /// Whether the node at `addr` takes pipelined replication (as far as this node knows).
    pub fn pipelines(&self, addr: &str) -> bool {
        let old = self.unpipelined.lock().unwrap_or_else(|p| p.into_inner());
        old.get(addr)
            .is_none_or(|since| since.elapsed() >= UNSUPPORTED_RECHECK)
    }

    /// A pipelined replication session of `group` to the node at `addr`, on the group's lane;
    /// `None` while that node is of a build without pipelines.
    pub fn session(&self, addr: &str, group: u64) -> Result<Option<Session>, String> {
        if !self.pipelines(addr) {
            return Ok(None);
        }
        let key = (addr.to_owned(), group % LANES);
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(session) = lanes
            .get(&key)
            .filter(|l| l.is_open())
            .and_then(|l| l.session(group))
        {
            return Ok(Some(session));
        }
        let unpipelined = self.unpipelined.clone();
        let peer = addr.to_owned();
        let lane = Lane::open(
            addr.to_owned(),
            self.replication.get(addr)?,
            MAX_MESSAGE_BYTES,
            self.metrics.clone(),
            move |end| {
                if end == LaneEnd::Unsupported {
                    unpipelined
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(peer, Instant::now());
                }
            },
        );
        let session = lane.session(group);
        lanes.insert(key, lane);
        Ok(session)
    }

    /// Sends one group's message to the node at `addr` and waits for its reply.
    pub async fn call(&self, addr: &str, group: u64, payload: Bytes) -> Reply {
        let tx = self.sender(addr)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Pending {
            message: pb::RaftMessage { group, payload },
            reply,
        })
        .await
        .map_err(|_| format!("sender to {addr} stopped"))?;
        rx.await.map_err(|_| format!("call to {addr} dropped"))?
    }

    /// A liveness ping to the node at `addr`, on a connection kept for pings so they never
    /// queue behind replication traffic.
    pub async fn ping(&self, addr: &str, ping: pb::PingRequest) -> Result<(), String> {
        let mut client = RaftClient::new(self.pings.get(addr)?);
        match tokio::time::timeout(PING_TIMEOUT, client.ping(ping)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!("{addr}: {}", status.message())),
            Err(_) => Err(format!("{addr}: ping timed out")),
        }
    }

    /// A client for forwarded requests (proposals, reads, leases) to the node at `addr`, on a
    /// connection kept for them: one per peer, so a forwarded put costs no TCP and HTTP/2
    /// handshake, and large forwarded batches do not queue in the replication connection.
    pub fn client(&self, addr: &str) -> Result<RaftClient<Channel>, String> {
        Ok(RaftClient::new(self.forwarded.get(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// One kept connection per peer address, made on first use (tonic reconnects it as needed).
#[derive(Default)]
struct Connections(Mutex<HashMap<String, Channel>>);

impl Connections {
    fn get(&self, addr: &str) -> Result<Channel, String> {
        let mut channels = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let c = channel(addr)?;
        channels.insert(addr.to_owned(), c.clone());
        Ok(c)
    }
}

fn channel(addr: &str) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad peer address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(endpoint.connect_lazy())
}

async fn run(
    addr: String,
    channel: Channel,
    mut rx: mpsc::Receiver<Pending>,
    metrics: Option<TransportMetrics>,
) {
    let client = RaftClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let mut bytes = first.message.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.message.payload.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut client = client.clone();
        let addr = addr.clone();
        if let Some(m) = &metrics {
            m.sent_bytes.with_label_values(&[&addr]).inc_by(bytes as u64);
            m.batches.with_label_values(&[&addr]).inc();
        }
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let (messages, waiters): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.message, p.reply)).unzip();
            let result = tokio::time::timeout(CALL_TIMEOUT, client.batch(pb::RaftBatch { messages })).await;
            match result {
                Ok(Ok(resp)) => {
                    let replies = resp.into_inner().replies;
                    if let Some(m) = &metrics {
                        let received: usize = replies.iter().map(|r| r.payload.len()).sum();
                        m.received_bytes
                            .with_label_values(&[&addr])
                            .inc_by(received as u64);
                    }
                    if replies.len() != waiters.len() {
                        for w in waiters {
                            let _ = w.send(Err(format!(
                                "{addr} answered a batch with the wrong number of replies"
                            )));
                        }
                    } else {
                        for (w, r) in waiters.into_iter().zip(replies) {
                            let _ = w.send(Ok(r));
                        }
                    }
                }
                Ok(Err(status)) => {
                    for w in waiters {
                        let _ = w.send(Err(format!("{addr}: {}", status.message())));
                    }
                }
                Err(_) => {
                    for w in waiters {
                        let _ = w.send(Err(format!("{addr}: timed out")));
                    }
                }
            }
            drop(slot);
        });
    }
}
