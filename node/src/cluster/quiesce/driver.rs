//! The quiescing loop: every `EVERY`, for each replica on this node, reads the group's Raft
//! metrics and node liveness, asks `decision`, and flips the group's `switch`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use openraft::async_runtime::WatchReceiver;
use rand::Rng;

use super::decision;
use super::decision::FollowerView;
use super::decision::LeaderView;
use super::decision::Voter;
use super::switch::Mode;
use super::switch::Seen;
use crate::cluster::liveness::Liveness;
use crate::shard::ShardHost;
use crate::shard::ShardReplica;

/// How often every group is looked at.
pub const EVERY: Duration = Duration::from_millis(200);
/// Random spread added to a survivor's campaign delay.
const JITTER_MS: u64 = 150;

/// A group's log position, and since when it has not moved.
struct Progress {
    at: (u64, u64, u64),
    since: Instant,
}

/// Runs for the node's lifetime.
pub async fn run(host: Arc<ShardHost>, liveness: Arc<Liveness>, quiesced: prometheus::IntGauge) {
    let mut progress: HashMap<u64, Progress> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let replicas = host.all();
        progress.retain(|g, _| replicas.iter().any(|(_, r)| r.shard.group == *g));
        let mut n = 0;
        for (_, replica) in &replicas {
            step(replica, &liveness, &mut progress, now);
            if replica.quiesce().mode() != Mode::Awake {
                n += 1;
            }
        }
        quiesced.set(n);
    }
}

/// What one look at a group's metrics yields.
enum Role {
    Leading { term: u64, view: LeaderView },
    Following { view: FollowerView },
}

fn read_role(
    replica: &ShardReplica,
    liveness: &Liveness,
    progress: &mut HashMap<u64, Progress>,
    seen: &Seen,
    now: Instant,
) -> Role {
    let me = liveness.me();
    let group = replica.shard.group;
    let metrics = replica.group().raft.metrics();
    let m = metrics.borrow_watched();
    let last_log_index = m.last_log_index.unwrap_or(0);
    let committed = m.local_committed.as_ref().map_or(0, |l| l.index);
    let at = (m.current_term, last_log_index, committed);
    let p = progress.entry(group).or_insert(Progress { at, since: now });
    if p.at != at {
        *p = Progress { at, since: now };
    }
    if m.current_leader == Some(me) {
        let membership = m.membership_config.membership();
        let settled = m.membership_config.log_id() == m.committed_membership_config.log_id()
            && membership.get_joint_config().len() == 1
            && membership.learner_ids().next().is_none();
        let voters = membership
            .voter_ids()
            .filter(|v| *v != me)
            .map(|node| {
                let peer = liveness.peer(node, now);
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&node))
                    .and_then(|l| l.as_ref())
                    .map_or(0, |l| l.index);
                let acked = m
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(&node).copied().flatten())
                    .map(|t| crate::cluster::quiesce::std_instant(*t, now));
                Voter {
                    node,
                    matched,
                    alive: peer.alive,
                    quiesces: peer.quiesces,
                    acked_since_alive: matches!((acked, peer.alive_since), (Some(a), Some(s)) if a >= s),
                }
            })
            .collect();
        let last_event = [Some(p.since), seen.activity, seen.last_message]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now);
        Role::Leading {
            term: m.current_term,
            view: LeaderView {
                last_log_index,
                committed,
                membership_settled: settled,
                voters,
                idle_for: now.saturating_duration_since(last_event),
                held: seen.held_until.is_some_and(|u| u > now),
            },
        }
    } else {
        let leader_alive = m.current_leader.is_some_and(|l| liveness.peer(l, now).alive);
        let announced = m.current_leader.and_then(|l| liveness.announced(l, group, now));
        Role::Following {
            view: FollowerView {
                me,
                leader: m.current_leader,
                term: m.current_term,
                leader_alive,
                announced,
                last_message: seen.last_message,
            },
        }
    }
}

/// This replica's place among the candidates to succeed its leader (read only when waking).
fn rank(replica: &ShardReplica, view: &FollowerView) -> usize {
    let voters: Vec<u64> = {
        let metrics = replica.group().raft.metrics();
        let m = metrics.borrow_watched();
        m.membership_config.membership().voter_ids().collect()
    };
    decision::rank(view.me, view.leader, &replica.shard.replicas, &voters)
}

fn step(replica: &ShardReplica, liveness: &Liveness, progress: &mut HashMap<u64, Progress>, now: Instant) {
    let switch = replica.quiesce();
    let raft = &replica.group().raft;
    let seen = switch.seen();
    let group = replica.shard.group;
    match read_role(replica, liveness, progress, &seen, now) {
        Role::Leading { term, view } => match (decision::leader_may_quiesce(&view), seen.mode) {
            (Ok(()), Mode::QuietLeader { term: t }) if t == term => {}
            (Ok(()), _) => {
                if switch.quiet_leader(raft, term, &seen) {
                    tracing::debug!(group, term, "leader quiesced");
                }
            }
            (Err(busy), Mode::Awake) => {
                tracing::trace!(group, ?busy, "leader stays awake");
            }
            (Err(busy), _) => {
                tracing::debug!(group, ?busy, "leader wakes");
                switch.wake(raft, Duration::ZERO);
            }
        },
        Role::Following { view } => match (decision::follower_may_sleep(&view), seen.mode) {
            (Ok(()), Mode::SleepingFollower) => {}
            (Ok(()), _) => {
                if switch.sleep_follower(raft, &seen) {
                    tracing::debug!(group, leader = ?view.leader, "follower sleeps");
                }
            }
            (Err(awake), Mode::Awake) => {
                tracing::trace!(group, ?awake, "follower stays awake");
            }
            (Err(awake), _) => {
                let jitter = Duration::from_millis(rand::rng().random_range(0..JITTER_MS));
                let delay = decision::election_delay(view.leader_alive, rank(replica, &view), jitter);
                tracing::debug!(group, ?awake, ?delay, "follower wakes");
                switch.wake(raft, delay);
            }
        },
    }
    switch.elect_when_due(raft, now);
}
