//! When a group may quiesce and when it must wake (pure: every input is an argument).

use std::time::Duration;
use std::time::Instant;

/// A leader whose log and commit index stood still this long (heartbeating meanwhile, so the
/// followers learned the commit index) may go quiet.
pub const QUIET_AFTER: Duration = Duration::from_millis(1500);
/// A follower woken while its leader's node is alive may campaign only after this long:
/// by then the leader's heartbeats (or a new leader's) have renewed its lease, so waking
/// never starts a needless election.
pub const ELECT_AFTER_WAKING: Duration = Duration::from_millis(1000);
/// When the leader's node died, the surviving replicas campaign one after another (in the
/// order of the shard's replica set) this far apart, so they rarely split the vote.
pub const STAGGER: Duration = Duration::from_millis(400);

/// A voter of a group other than its leader, as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voter {
    pub node: u64,
    /// Its last replicated log index.
    pub matched: u64,
    /// Its node is alive (liveness pings both ways).
    pub alive: bool,
    /// Its node quiesces groups (stops its election timers under a quiet leader).
    pub quiesces: bool,
    /// It acknowledged this leader since its node last came alive (restarted or returned):
    /// it knows the leader in its current incarnation.
    pub acked_since_alive: bool,
}

/// What a leader knows of one of its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderView {
    pub last_log_index: u64,
    pub committed: u64,
    /// The membership is committed, not joint, and has no learners.
    pub membership_settled: bool,
    pub voters: Vec<Voter>,
    /// Since the last change of log or commit index, request, Raft message or wake-up.
    pub idle_for: Duration,
    /// Kept awake on purpose (a leader transfer is coming).
    pub held: bool,
}

/// Why a leader keeps heartbeating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderBusy {
    Held,
    MembershipChanging,
    Uncommitted,
    /// A live voter does not have the whole log yet.
    FollowerBehind(u64),
    /// A live voter has not heard from this leader since it (re)started or came back.
    FollowerNotReached(u64),
    /// A live voter's node does not quiesce: it would time out and elect.
    FollowerDoesNotQuiesce(u64),
    Active,
}

/// Whether a leader may stop its ticker. Voters whose nodes are dead are not waited for:
/// when one comes back, its `acked_since_alive` is false until the leader reached it again.
pub fn leader_may_quiesce(v: &LeaderView) -> Result<(), LeaderBusy> {
    if v.held {
        return Err(LeaderBusy::Held);
    }
    if !v.membership_settled {
        return Err(LeaderBusy::MembershipChanging);
    }
    if v.committed != v.last_log_index {
        return Err(LeaderBusy::Uncommitted);
    }
    for f in v.voters.iter().filter(|f| f.alive) {
        if !f.quiesces {
            return Err(LeaderBusy::FollowerDoesNotQuiesce(f.node));
        }
        if f.matched != v.last_log_index {
            return Err(LeaderBusy::FollowerBehind(f.node));
        }
        if !f.acked_since_alive {
            return Err(LeaderBusy::FollowerNotReached(f.node));
        }
    }
    if v.idle_for < QUIET_AFTER {
        return Err(LeaderBusy::Active);
    }
    Ok(())
}

/// What a follower knows of its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerView {
    pub me: u64,
    /// The leader of the current term (a committed vote), if known.
    pub leader: Option<u64>,
    pub term: u64,
    /// The leader's node is alive (liveness pings both ways).
    pub leader_alive: bool,
    /// The leader's last ping: the term it announced this group quiet in, and when it arrived.
    pub announced: Option<(u64, Instant)>,
    /// The last Raft message of this group received here.
    pub last_message: Option<Instant>,
}

/// Why a follower keeps its election timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerAwake {
    NoLeader,
    LeaderIsMe,
    LeaderDead,
    /// The leader does not announce the group quiet (it is active, transferring, deposed or
    /// restarted).
    NotAnnounced,
    /// The announcement is of another term than the one this follower is in.
    OtherTerm,
    /// A Raft message of the group arrived after the announcement.
    MessageSinceAnnouncement,
}

/// Whether a follower may stop its ticker (and with it its election timer).
pub fn follower_may_sleep(v: &FollowerView) -> Result<(), FollowerAwake> {
    let leader = v.leader.ok_or(FollowerAwake::NoLeader)?;
    if leader == v.me {
        return Err(FollowerAwake::LeaderIsMe);
    }
    if !v.leader_alive {
        return Err(FollowerAwake::LeaderDead);
    }
    let (term, at) = v.announced.ok_or(FollowerAwake::NotAnnounced)?;
    if term != v.term {
        return Err(FollowerAwake::OtherTerm);
    }
    if v.last_message.is_some_and(|m| m >= at) {
        return Err(FollowerAwake::MessageSinceAnnouncement);
    }
    Ok(())
}

/// This replica's place among the candidates to succeed `leader`: the other voters in the
/// order of the shard's replica set (its first node is the preferred leader), then by id.
pub fn rank(me: u64, leader: Option<u64>, replica_order: &[u64], voters: &[u64]) -> usize {
    let position = |n: &u64| replica_order.iter().position(|r| r == n).unwrap_or(usize::MAX);
    let mut candidates: Vec<u64> = voters.iter().copied().filter(|v| Some(*v) != leader).collect();
    candidates.sort_by_key(|n| (position(n), *n));
    candidates
        .iter()
        .position(|n| *n == me)
        .unwrap_or(candidates.len())
}

/// How long a woken follower waits before it may campaign.
pub fn election_delay(leader_alive: bool, rank: usize, jitter: Duration) -> Duration {
    if leader_alive {
        ELECT_AFTER_WAKING
    } else {
        STAGGER * rank as u32 + jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type LeaderCase = (fn(&mut LeaderView), LeaderBusy);
    type FollowerCase = (fn(&mut FollowerView, Instant), FollowerAwake);

    fn voter(node: u64) -> Voter {
        Voter {
            node,
            matched: 10,
            alive: true,
            quiesces: true,
            acked_since_alive: true,
        }
    }

    fn idle_leader() -> LeaderView {
        LeaderView {
            last_log_index: 10,
            committed: 10,
            membership_settled: true,
            voters: vec![voter(2), voter(3)],
            idle_for: QUIET_AFTER,
            held: false,
        }
    }

    #[test]
    fn an_idle_caught_up_leader_goes_quiet() {
        assert_eq!(leader_may_quiesce(&idle_leader()), Ok(()));
    }

    #[test]
    fn a_leader_keeps_heartbeating_while_anything_is_under_way() {
        let cases: Vec<LeaderCase> = vec![
            (|v| v.idle_for = QUIET_AFTER / 2, LeaderBusy::Active),
            (|v| v.held = true, LeaderBusy::Held),
            (|v| v.membership_settled = false, LeaderBusy::MembershipChanging),
            (|v| v.committed = 9, LeaderBusy::Uncommitted),
            (|v| v.voters[1].matched = 9, LeaderBusy::FollowerBehind(3)),
            (
                |v| v.voters[0].acked_since_alive = false,
                LeaderBusy::FollowerNotReached(2),
            ),
            (
                |v| v.voters[0].quiesces = false,
                LeaderBusy::FollowerDoesNotQuiesce(2),
            ),
        ];
        for (change, busy) in cases {
            let mut v = idle_leader();
            change(&mut v);
            assert_eq!(leader_may_quiesce(&v), Err(busy));
        }
    }

    #[test]
    fn a_dead_voter_is_not_waited_for() {
        let mut v = idle_leader();
        v.voters[1] = Voter {
            alive: false,
            matched: 3,
            acked_since_alive: false,
            ..voter(3)
        };
        assert_eq!(leader_may_quiesce(&v), Ok(()));
    }

    fn sleepy_follower(now: Instant) -> FollowerView {
        FollowerView {
            me: 2,
            leader: Some(1),
            term: 4,
            leader_alive: true,
            announced: Some((4, now)),
            last_message: Some(now - Duration::from_millis(300)),
        }
    }

    #[test]
    fn a_follower_sleeps_only_under_a_live_leader_announcing_its_term() {
        let now = Instant::now();
        assert_eq!(follower_may_sleep(&sleepy_follower(now)), Ok(()));
        let cases: Vec<FollowerCase> = vec![
            (|v, _| v.leader = None, FollowerAwake::NoLeader),
            (|v, _| v.leader = Some(2), FollowerAwake::LeaderIsMe),
            (|v, _| v.leader_alive = false, FollowerAwake::LeaderDead),
            (|v, _| v.announced = None, FollowerAwake::NotAnnounced),
            (|v, now| v.announced = Some((3, now)), FollowerAwake::OtherTerm),
            (
                |v, now| v.last_message = Some(now),
                FollowerAwake::MessageSinceAnnouncement,
            ),
        ];
        for (change, awake) in cases {
            let mut v = sleepy_follower(now);
            change(&mut v, now);
            assert_eq!(follower_may_sleep(&v), Err(awake));
        }
    }

    #[test]
    fn survivors_campaign_in_replica_set_order() {
        // Replica set [3, 1, 2]; leader 3 died: 1 goes first, then 2.
        assert_eq!(rank(1, Some(3), &[3, 1, 2], &[1, 2, 3]), 0);
        assert_eq!(rank(2, Some(3), &[3, 1, 2], &[1, 2, 3]), 1);
        // A voter the (possibly stale) replica set does not list goes last.
        assert_eq!(rank(4, Some(3), &[3, 1, 2], &[1, 2, 3, 4]), 2);
        assert_eq!(
            election_delay(false, 0, Duration::from_millis(30)),
            Duration::from_millis(30)
        );
        assert_eq!(election_delay(false, 1, Duration::ZERO), STAGGER);
        assert_eq!(election_delay(true, 0, Duration::ZERO), ELECT_AFTER_WAKING);
    }
}
