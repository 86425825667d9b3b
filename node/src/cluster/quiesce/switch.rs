//! A replica's quiescing state and the openraft runtime switches that go with it. Every change
//! happens under one lock, so a request or Raft message that wakes the group and the driver
//! that quiesces it never interleave.

use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use super::decision::ELECT_AFTER_WAKING;
use crate::raft::group::ShardRaftHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ticking: heartbeats when leading, an election timer otherwise (maybe switched on only
    /// later, see `elect_at`).
    Awake,
    /// Leading in `term` without ticking; announced in this node's liveness pings.
    QuietLeader { term: u64 },
    /// Following without ticking (no election timer).
    SleepingFollower,
}

/// What the driver saw before deciding; quiescing is refused if anything happened since.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub mode: Mode,
    /// The last request, wake-up or hold of the group.
    pub activity: Option<Instant>,
    /// The last Raft message of the group received here.
    pub last_message: Option<Instant>,
    pub held_until: Option<Instant>,
}

struct State {
    seen: Seen,
    /// The election timer is switched on at this time (it is off until then).
    elect_at: Option<Instant>,
}

pub struct GroupSwitch {
    state: Mutex<State>,
}

impl Default for GroupSwitch {
    fn default() -> Self {
        GroupSwitch {
            state: Mutex::new(State {
                seen: Seen {
                    mode: Mode::Awake,
                    activity: None,
                    last_message: None,
                    held_until: None,
                },
                elect_at: None,
            }),
        }
    }
}

impl GroupSwitch {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn seen(&self) -> Seen {
        self.lock().seen
    }

    pub fn mode(&self) -> Mode {
        self.lock().seen.mode
    }

    /// Wakes the group now; its election timer comes on after `elect_after`.
    fn wake_locked(st: &mut State, raft: &ShardRaftHandle, now: Instant, elect_after: Duration) {
        let rc = raft.runtime_config();
        rc.heartbeat(true);
        if elect_after.is_zero() {
            rc.elect(true);
            st.elect_at = None;
        } else {
            rc.elect(false);
            st.elect_at = Some(now + elect_after);
        }
        rc.tick(true);
        st.seen.mode = Mode::Awake;
        st.seen.activity = Some(now);
    }

    /// A write or read arrived: a quiet leader ticks and heartbeats again, and stays awake for
    /// a while. True when it was quiet (its leader lease has likely run out: it must hear from
    /// a quorum before it may write). A sleeping follower is left alone: the request goes on
    /// to the leader, whose messages wake it (waking it here could start a needless election).
    pub fn on_request(&self, raft: &ShardRaftHandle) -> bool {
        let now = Instant::now();
        let mut st = self.lock();
        st.seen.activity = Some(now);
        if !matches!(st.seen.mode, Mode::QuietLeader { .. }) {
            return false;
        }
        Self::wake_locked(&mut st, raft, now, Duration::ZERO);
        true
    }

    /// A Raft message of the group arrived: a quiet replica ticks again. A follower woken this
    /// way campaigns only after `ELECT_AFTER_WAKING`: the message may be a candidate's vote
    /// request, and the election it belongs to should be left to finish.
    pub fn on_message(&self, raft: &ShardRaftHandle) {
        let now = Instant::now();
        let mut st = self.lock();
        st.seen.last_message = Some(now);
        match st.seen.mode {
            Mode::Awake => {}
            Mode::QuietLeader { .. } => Self::wake_locked(&mut st, raft, now, Duration::ZERO),
            Mode::SleepingFollower => Self::wake_locked(&mut st, raft, now, ELECT_AFTER_WAKING),
        }
    }

    /// Keeps a leader awake until `until` (before a leader transfer: its heartbeats wake the
    /// followers).
    pub fn hold_awake(&self, raft: &ShardRaftHandle, until: Instant) {
        let now = Instant::now();
        let mut st = self.lock();
        st.seen.held_until = Some(until);
        if matches!(st.seen.mode, Mode::QuietLeader { .. }) {
            Self::wake_locked(&mut st, raft, now, Duration::ZERO);
        }
    }

    /// Wakes the group (the driver decided it must); the election timer comes on after
    /// `elect_after`.
    pub fn wake(&self, raft: &ShardRaftHandle, elect_after: Duration) {
        let mut st = self.lock();
        Self::wake_locked(&mut st, raft, Instant::now(), elect_after);
    }

    fn unchanged(st: &State, seen: &Seen) -> bool {
        st.seen.mode == seen.mode
            && st.seen.activity == seen.activity
            && st.seen.last_message == seen.last_message
    }

    /// Stops a leader's ticker (no heartbeats) unless something happened since `seen`.
    pub fn quiet_leader(&self, raft: &ShardRaftHandle, term: u64, seen: &Seen) -> bool {
        let mut st = self.lock();
        if !Self::unchanged(&st, seen) {
            return false;
        }
        let rc = raft.runtime_config();
        rc.tick(false);
        rc.heartbeat(false);
        st.seen.mode = Mode::QuietLeader { term };
        true
    }

    /// Stops a follower's ticker and election timer unless something happened since `seen`.
    pub fn sleep_follower(&self, raft: &ShardRaftHandle, seen: &Seen) -> bool {
        let mut st = self.lock();
        if !Self::unchanged(&st, seen) {
            return false;
        }
        let rc = raft.runtime_config();
        rc.tick(false);
        rc.elect(false);
        st.elect_at = None;
        st.seen.mode = Mode::SleepingFollower;
        true
    }

    /// Switches a woken follower's election timer on once its delay has passed.
    pub fn elect_when_due(&self, raft: &ShardRaftHandle, now: Instant) {
        let mut st = self.lock();
        if st.seen.mode == Mode::Awake && st.elect_at.is_some_and(|at| at <= now) {
            raft.runtime_config().elect(true);
            st.elect_at = None;
        }
    }

    /// The term this replica leads quietly in, for the liveness pings.
    pub fn quiet_term(&self) -> Option<u64> {
        match self.lock().seen.mode {
            Mode::QuietLeader { term } => Some(term),
            _ => None,
        }
    }
}
