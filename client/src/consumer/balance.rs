//! Which shard leases a worker should take: pure decisions over what it observed (the stream's
//! shards, the application's leases, which leases stand still), time always an argument.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use super::leases::Lease;
use crate::Position;

/// A listed shard of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    /// Parents that are still listed (expired parents are gone and count as processed).
    pub parents: Vec<String>,
    pub closed: bool,
}

/// A lease the worker should take: a free or expired one at the counter it saw, or one held
/// by a live worker (`steal_from`), whose renewals keep moving the counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    pub shard_id: String,
    pub expected: Option<u64>,
    pub steal_from: Option<String>,
}

/// Notices leases whose owner stopped renewing them: a lease is expired once its counter has
/// not moved for the failover time, measured on this worker's own clock (no clocks are
/// compared across machines).
#[derive(Debug, Default)]
pub struct ExpiryTracker {
    seen: BTreeMap<String, (u64, Instant)>,
}

impl ExpiryTracker {
    /// Records the counters seen at `now`; answers the shards whose leases are expired.
    pub fn observe(&mut self, leases: &[Lease], now: Instant, failover: Duration) -> BTreeSet<String> {
        let mut expired = BTreeSet::new();
        let mut seen = BTreeMap::new();
        for lease in leases {
            let since = match self.seen.get(&lease.shard_id) {
                Some((counter, since)) if *counter == lease.counter => *since,
                _ => now,
            };
            if lease.owner.is_none() || now.duration_since(since) >= failover {
                expired.insert(lease.shard_id.clone());
            }
            seen.insert(lease.shard_id.clone(), (lease.counter, since));
        }
        self.seen = seen;
        expired
    }
}

/// True when the shard is processed to its end, or never will be: with `skip_closed` (a
/// LATEST start), closed shards nobody ever leased are skipped.
fn done(shard: &ShardInfo, lease: Option<&Lease>, skip_closed: bool) -> bool {
    match lease {
        Some(l) => l.is_ended(),
        None => skip_closed && shard.closed,
    }
}

/// Shards ready to be processed: not done, and every listed parent done.
pub fn workable<'a>(
    shards: &'a [ShardInfo],
    leases: &BTreeMap<&str, &Lease>,
    skip_closed: bool,
) -> Vec<&'a ShardInfo> {
    let done_ids: BTreeSet<&str> = shards
        .iter()
        .filter(|s| done(s, leases.get(s.shard_id.as_str()).copied(), skip_closed))
        .map(|s| s.shard_id.as_str())
        .collect();
    let listed: BTreeSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    shards
        .iter()
        .filter(|s| !done_ids.contains(s.shard_id.as_str()))
        .filter(|s| {
            s.parents
                .iter()
                .all(|p| !listed.contains(p.as_str()) || done_ids.contains(p.as_str()))
        })
        .collect()
}

/// Where processing of a shard without a checkpoint starts: a child of a shard this
/// application processed starts at its beginning; any other shard at the configured start.
pub fn start_position(shard: &ShardInfo, leases: &BTreeMap<&str, &Lease>, initial: &Position) -> Position {
    let after_parent = shard
        .parents
        .iter()
        .any(|p| leases.get(p.as_str()).is_some_and(|l| l.is_ended()));
    if after_parent {
        Position::TrimHorizon
    } else {
        initial.clone()
    }
}

/// The leases `me` should take now: free or expired leases of workable shards up to its fair
/// share (the workable shards divided by the live workers, rounded up); when none is free and
/// it holds less than that share, one lease of the most loaded worker holding more than the
/// share (one per round, so balancing converges without flapping).
pub fn plan(
    me: &str,
    shards: &[ShardInfo],
    leases: &[Lease],
    expired: &BTreeSet<String>,
    skip_closed: bool,
) -> Vec<Take> {
    let by_shard: BTreeMap<&str, &Lease> = leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
    let work = workable(shards, &by_shard, skip_closed);
    if work.is_empty() {
        return Vec::new();
    }
    let live_owner = |id: &str| -> Option<&str> {
        let lease = by_shard.get(id)?;
        if expired.contains(id) {
            return None;
        }
        lease.owner.as_deref()
    };
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    load.insert(me, 0);
    for s in &work {
        if let Some(owner) = live_owner(&s.shard_id) {
            *load.entry(owner).or_default() += 1;
        }
    }
    let share = work.len().div_ceil(load.len());
    let mine = load.get(me).copied().unwrap_or(0);
    if mine >= share {
        return Vec::new();
    }
    let take = |s: &ShardInfo| Take {
        shard_id: s.shard_id.clone(),
        expected: by_shard.get(s.shard_id.as_str()).map(|l| l.counter),
        steal_from: None,
    };
    let free: Vec<Take> = work
        .iter()
        .filter(|s| live_owner(&s.shard_id).is_none())
        .take(share - mine)
        .map(|s| take(s))
        .collect();
    if !free.is_empty() {
        return free;
    }
    // Steal one from the most loaded worker above the share (ties: the smallest name).
    let victim = load
        .iter()
        .filter(|(owner, n)| **owner != me && **n > share)
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(owner, _)| *owner);
    let Some(victim) = victim else {
        return Vec::new();
    };
    work.iter()
        .rev()
        .find(|s| live_owner(&s.shard_id) == Some(victim))
        .map(|s| {
            vec![Take {
                steal_from: Some(victim.to_string()),
                ..take(s)
            }]
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::consumer::leases::Checkpoint;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            closed,
        }
    }

    fn lease(id: &str, owner: Option<&str>, counter: u64, end: bool) -> Lease {
        Lease {
            shard_id: id.into(),
            owner: owner.map(String::from),
            counter,
            checkpoint: end.then_some(Checkpoint::ShardEnd),
        }
    }

    fn ids(takes: &[Take]) -> Vec<&str> {
        takes.iter().map(|t| t.shard_id.as_str()).collect()
    }

    fn four() -> Vec<ShardInfo> {
        (0..4).map(|i| shard(&format!("s{i}"), &[], false)).collect()
    }

    #[test]
    fn a_lone_worker_takes_everything_free() {
        let takes = plan("a", &four(), &[], &BTreeSet::new(), false);
        assert_eq!(ids(&takes), vec!["s0", "s1", "s2", "s3"]);
        assert!(takes.iter().all(|t| t.expected.is_none()));
    }

    #[test]
    fn a_second_worker_steals_one_per_round_until_balanced() {
        let shards = four();
        let mut leases: Vec<Lease> = (0..4)
            .map(|i| lease(&format!("s{i}"), Some("a"), 5, false))
            .collect();
        let none = BTreeSet::new();
        let mut rounds = 0;
        loop {
            let takes = plan("b", &shards, &leases, &none, false);
            if takes.is_empty() {
                break;
            }
            assert_eq!(takes.len(), 1, "one steal per round");
            let l = leases
                .iter_mut()
                .find(|l| l.shard_id == takes[0].shard_id)
                .unwrap();
            assert_eq!(
                takes[0].steal_from.as_deref(),
                Some("a"),
                "a steal names the owner"
            );
            l.owner = Some("b".into());
            l.counter += 1;
            rounds += 1;
            assert!(rounds <= 4);
        }
        let b = leases.iter().filter(|l| l.owner.as_deref() == Some("b")).count();
        assert_eq!((rounds, b), (2, 2));
        // And the other worker, now at its share, takes nothing back: no flapping.
        assert!(plan("a", &shards, &leases, &none, false).is_empty());
    }

    #[test]
    fn an_odd_count_leaves_the_extra_lease_where_it_is() {
        let shards: Vec<ShardInfo> = (0..3).map(|i| shard(&format!("s{i}"), &[], false)).collect();
        let leases = vec![
            lease("s0", Some("a"), 1, false),
            lease("s1", Some("a"), 1, false),
            lease("s2", Some("b"), 1, false),
        ];
        assert!(plan("b", &shards, &leases, &BTreeSet::new(), false).is_empty());
        assert!(plan("a", &shards, &leases, &BTreeSet::new(), false).is_empty());
    }

    #[test]
    fn expired_and_released_leases_are_taken_first_at_their_counter() {
        let shards = four();
        let leases = vec![
            lease("s0", Some("a"), 3, false),
            lease("s1", Some("dead"), 7, false),
            lease("s2", None, 2, false),
            lease("s3", Some("a"), 3, false),
        ];
        let expired: BTreeSet<String> = ["s1".to_string()].into();
        let takes = plan("b", &shards, &leases, &expired, false);
        assert_eq!(
            takes,
            vec![
                Take {
                    shard_id: "s1".into(),
                    expected: Some(7),
                    steal_from: None,
                },
                Take {
                    shard_id: "s2".into(),
                    expected: Some(2),
                    steal_from: None,
                }
            ]
        );
    }

    #[test]
    fn children_wait_for_their_parents_to_end() {
        // s0 split into s1, s2; s1 and s2 merged into s3.
        let shards = vec![
            shard("s0", &[], true),
            shard("s1", &["s0"], true),
            shard("s2", &["s0"], true),
            shard("s3", &["s1", "s2"], false),
        ];
        let takes = plan("a", &shards, &[], &BTreeSet::new(), false);
        assert_eq!(ids(&takes), vec!["s0"]);
        let leases = vec![lease("s0", Some("a"), 4, true), lease("s1", Some("a"), 2, true)];
        let takes = plan("a", &shards, &leases, &BTreeSet::new(), false);
        assert_eq!(ids(&takes), vec!["s2"], "s3 waits for s2");
        // Children of a processed parent start at their beginning; others where configured.
        let by: BTreeMap<&str, &Lease> = leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
        assert_eq!(
            start_position(&shards[2], &by, &Position::Latest),
            Position::TrimHorizon
        );
        assert_eq!(
            start_position(&shards[0], &by, &Position::Latest),
            Position::Latest
        );
        // A LATEST start skips closed shards nobody leased.
        let takes = plan("a", &shards, &[], &BTreeSet::new(), true);
        assert_eq!(ids(&takes), vec!["s3"]);
        // Expired (unlisted) parents count as processed.
        let takes = plan("a", &shards[3..], &[], &BTreeSet::new(), false);
        assert_eq!(ids(&takes), vec!["s3"]);
    }

    #[test]
    fn expiry_is_a_counter_standing_still_for_the_failover_time() {
        let mut tracker = ExpiryTracker::default();
        let t0 = Instant::now();
        let failover = Duration::from_secs(10);
        let leases = vec![lease("s0", Some("a"), 1, false), lease("s1", None, 1, false)];
        let expired = tracker.observe(&leases, t0, failover);
        assert_eq!(
            expired,
            ["s1".to_string()].into(),
            "released leases are free at once"
        );
        let expired = tracker.observe(&leases, t0 + Duration::from_secs(9), failover);
        assert!(!expired.contains("s0"));
        // A renewal restarts the wait.
        let renewed = vec![lease("s0", Some("a"), 2, false)];
        let expired = tracker.observe(&renewed, t0 + Duration::from_secs(11), failover);
        assert!(expired.is_empty());
        let expired = tracker.observe(&renewed, t0 + Duration::from_secs(21), failover);
        assert_eq!(expired, ["s0".to_string()].into());
    }
}
