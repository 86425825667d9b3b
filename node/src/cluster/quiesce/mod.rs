//! Quiescing idle shard groups: a group with nothing to replicate stops its ticker (no
//! heartbeats, no election timer, no wake-ups at all), and its followers stop theirs while the
//! leader's node is alive and announces, in its liveness pings, that it leads the group
//! quietly in the follower's term. A node leading 300 idle groups would otherwise send about
//! 2,400 heartbeats a second, and every group would tick 20 times a second.
//!
//! - `decision`: when a leader may go quiet, when a follower may sleep, how long a woken
//!   follower waits before it may campaign (pure).
//! - `switch`: a replica's state and the openraft runtime switches (`tick`, `heartbeat`,
//!   `elect`); requests and Raft messages wake a group through it at once.
//! - `driver`: the loop that reads each group's metrics and node liveness and applies the
//!   decisions.
//!
//! Raft's safety does not depend on any of this: votes, commits and leader leases are
//! openraft's, unchanged. Quiescing only decides when timers run, i.e. how soon a dead leader
//! is replaced.

pub mod decision;
pub mod driver;
pub mod switch;

pub use switch::GroupSwitch;
pub use switch::Mode;

/// An openraft (tokio) instant, such as a follower's last acknowledgement in the leader's
/// metrics, as a `std` instant.
pub fn std_instant(t: openraft_rt_tokio::TokioInstant, now: std::time::Instant) -> std::time::Instant {
    use openraft::Instant as _;
    let age = openraft_rt_tokio::TokioInstant::now() - t;
    now.checked_sub(age).unwrap_or(now)
}
