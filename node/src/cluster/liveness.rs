//! Node liveness: every node pings every other node a few times a second. A peer is alive
//! while this node's pings to it are answered *and* its pings arrive here, so a one-way cut
//! counts as dead from both sides. Pings also carry which groups the sender leads quiescently
//! (see `quiesce`): followers rely on them instead of per-group heartbeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use runnel_proto::v1 as pb;

use crate::raft::transport::PeerPool;
use crate::shard::ShardHost;

/// How often each peer is pinged.
pub const PING_EVERY: Duration = Duration::from_millis(200);
/// A peer not heard from (either way) for this long is dead.
pub const DEAD_AFTER: Duration = Duration::from_millis(1000);

/// What this node knows of one peer (pure: time is always an argument).
#[derive(Clone, Debug, Default)]
pub struct PeerRecord {
    /// Last ping of ours the peer answered.
    answered_at: Option<Instant>,
    /// Last ping received from the peer.
    heard_at: Option<Instant>,
    incarnation: u64,
    /// Since when the peer has been alive in its current incarnation (reset when it restarts
    /// or comes back after being dead).
    alive_since: Option<Instant>,
    quiesces: bool,
    /// The peer's quiesced groups (group → term) as of its last ping, received at `heard_at`.
    announced: HashMap<u64, u64>,
}

fn within(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| now.saturating_duration_since(t) < DEAD_AFTER)
}

impl PeerRecord {
    pub fn alive(&self, now: Instant) -> bool {
        within(self.answered_at, now) && within(self.heard_at, now)
    }

    /// A ping arrived from the peer.
    pub fn heard(&mut self, ping: &pb::PingRequest, now: Instant) {
        let restarted = ping.incarnation != self.incarnation;
        let was_dead = !within(self.heard_at, now);
        if restarted || was_dead || self.alive_since.is_none() {
            self.alive_since = Some(now);
        }
        self.incarnation = ping.incarnation;
        self.heard_at = Some(now);
        self.quiesces = ping.quiesces;
        self.announced = ping.quiesced.iter().map(|q| (q.group, q.term)).collect();
    }

    /// The peer answered one of our pings.
    pub fn answered(&mut self, now: Instant) {
        if !within(self.answered_at, now) && self.alive_since.is_some() {
            // Unreachable until now: whatever it was told before may be lost.
            self.alive_since = Some(now);
        }
        self.answered_at = Some(now);
    }
}

/// What the quiescing logic asks about a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerView {
    pub alive: bool,
    pub alive_since: Option<Instant>,
    pub quiesces: bool,
}

pub struct Liveness {
    me: u64,
    incarnation: u64,
    quiesces: bool,
    peers: Mutex<HashMap<u64, PeerRecord>>,
}

impl Liveness {
    pub fn new(me: u64, quiesces: bool) -> Arc<Liveness> {
        Arc::new(Liveness {
            me,
            incarnation: rand::random::<u64>() | 1,
            quiesces,
            peers: Mutex::default(),
        })
    }

    pub fn me(&self) -> u64 {
        self.me
    }

    fn with_peer<T>(&self, node: u64, f: impl FnOnce(&mut PeerRecord) -> T) -> T {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        f(peers.entry(node).or_default())
    }

    pub fn ping_received(&self, ping: &pb::PingRequest) {
        if ping.from != self.me {
            self.with_peer(ping.from, |p| p.heard(ping, Instant::now()));
        }
    }

    pub fn peer(&self, node: u64, now: Instant) -> PeerView {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(&node).map_or_else(PeerView::default, |p| PeerView {
            alive: p.alive(now),
            alive_since: p.alive_since,
            quiesces: p.quiesces,
        })
    }

    /// When `node` is alive and its last ping announced `group` quiesced, the term it leads in
    /// and when that ping arrived.
    pub fn announced(&self, node: u64, group: u64, now: Instant) -> Option<(u64, Instant)> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let p = peers.get(&node).filter(|p| p.alive(now))?;
        Some((*p.announced.get(&group)?, p.heard_at?))
    }

    /// Pings every other node of the cluster for the node's lifetime, announcing the groups
    /// this node leads quiescently.
    pub async fn ping_loop(self: Arc<Liveness>, host: Arc<ShardHost>, pool: Arc<PeerPool>) {
        let mut tick = tokio::time::interval(PING_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let quiesced: Vec<pb::QuiescedGroup> = host
                .all()
                .iter()
                .filter_map(|(_, r)| {
                    r.quiesced_leader_term().map(|term| pb::QuiescedGroup {
                        group: r.shard.group,
                        term,
                    })
                })
                .collect();
            let ping = pb::PingRequest {
                from: self.me,
                incarnation: self.incarnation,
                quiesces: self.quiesces,
                quiesced,
            };
            for (node, advertised) in host.nodes() {
                if node == self.me {
                    continue;
                }
                let addr = pool.address(node, &advertised);
                let (live, pool, ping) = (self.clone(), pool.clone(), ping.clone());
                tokio::spawn(async move {
                    if pool.ping(&addr, ping).await.is_ok() {
                        live.with_peer(node, |p| p.answered(Instant::now()));
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(incarnation: u64, quiesced: &[(u64, u64)]) -> pb::PingRequest {
        pb::PingRequest {
            from: 2,
            incarnation,
            quiesces: true,
            quiesced: quiesced
                .iter()
                .map(|&(group, term)| pb::QuiescedGroup { group, term })
                .collect(),
        }
    }

    #[test]
    fn a_peer_is_alive_only_while_pings_go_both_ways() {
        let t0 = Instant::now();
        let mut p = PeerRecord::default();
        assert!(!p.alive(t0));
        p.heard(&ping(7, &[]), t0);
        assert!(!p.alive(t0), "our pings were never answered");
        p.answered(t0);
        assert!(p.alive(t0));
        let later = t0 + DEAD_AFTER;
        assert!(!p.alive(later), "nothing heard for DEAD_AFTER");
        p.answered(later);
        assert!(!p.alive(later), "answers alone are a one-way link");
    }

    #[test]
    fn a_restart_or_a_comeback_starts_a_new_alive_span() {
        let t0 = Instant::now();
        let mut p = PeerRecord::default();
        p.heard(&ping(7, &[(5, 3)]), t0);
        p.answered(t0);
        assert_eq!(p.alive_since, Some(t0));
        assert_eq!(p.announced.get(&5), Some(&3));
        let t1 = t0 + PING_EVERY;
        p.heard(&ping(7, &[]), t1);
        assert_eq!(p.alive_since, Some(t0), "same process, pinging on time");
        assert!(
            p.announced.is_empty(),
            "the last ping's announcements replace the earlier ones"
        );
        let t2 = t1 + PING_EVERY;
        p.heard(&ping(9, &[]), t2);
        assert_eq!(p.alive_since, Some(t2), "a new incarnation: the node restarted");
        let t3 = t2 + DEAD_AFTER * 2;
        p.heard(&ping(9, &[]), t3);
        assert_eq!(p.alive_since, Some(t3), "heard again after being dead");
    }
}
