//! Leader balancing: each shard's preferred leader is the first node of its replica set
//! (placement spreads those evenly, see `placement::place`). A node leading a group it is not
//! the preferred leader of hands leadership to the preferred node once that node has caught
//! up — the "preferred leader election" of Kafka — so leaders spread out again after crashes,
//! restarts and elections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::raft::catalog_sm::CatalogView;
use crate::shard::ShardHost;

/// How often a node looks at the groups it leads.
pub const REBALANCE_EVERY: Duration = Duration::from_secs(5);
/// A preferred leader this many entries or fewer behind may take over.
pub const MAX_LAG: u64 = 16;
/// A group about to hand over leadership is kept awake (not quiesced) this long.
const HOLD_AWAKE: Duration = Duration::from_secs(2 * REBALANCE_EVERY.as_secs());
/// The target must have acknowledged the leader this recently: then its ticker is on (a
/// quiesced replica wakes at the first message of its group) and it has the leader's log.
const ACKED_WITHIN: Duration = Duration::from_secs(1);

/// What a leader knows about one of its groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedGroup {
    pub me: u64,
    /// The catalog's replica set; its first node is the preferred leader.
    pub replicas: Vec<u64>,
    /// The group's voters now.
    pub voters: Vec<u64>,
    pub last_log_index: u64,
    /// Each follower's last replicated index.
    pub matched: BTreeMap<u64, u64>,
    /// A replica change of the shard is under way (leadership is left alone meanwhile).
    pub changing: bool,
}

/// The node to hand leadership to, if any: the preferred leader when it is not this node,
/// is a voter, and is at most `max_lag` entries behind.
pub fn transfer_target(g: &LedGroup, max_lag: u64) -> Option<u64> {
    let preferred = *g.replicas.first()?;
    if preferred == g.me || g.changing || !g.voters.contains(&preferred) {
        return None;
    }
    let matched = *g.matched.get(&preferred)?;
    (g.last_log_index.saturating_sub(matched) <= max_lag).then_some(preferred)
}

/// Runs for the node's lifetime: every few seconds, hands the groups it leads but should not
/// to their preferred leaders.
pub async fn rebalance_leaders(host: Arc<ShardHost>, view: CatalogView) {
    let mut tick = tokio::time::interval(REBALANCE_EVERY);
    loop {
        tick.tick().await;
        for (stream, replica) in host.all() {
            if replica.leadership().is_err() {
                continue;
            }
            let Some(shard) = view.read(|c| {
                c.stream(&stream)
                    .and_then(|s| s.shard(replica.shard.index))
                    .cloned()
            }) else {
                continue;
            };
            let raft = &replica.group().raft;
            let m = raft.metrics().borrow_watched().clone();
            let led = LedGroup {
                me: m.id,
                replicas: shard.replicas.clone(),
                voters: m.membership_config.membership().voter_ids().collect(),
                last_log_index: m.last_log_index.unwrap_or(0),
                matched: m
                    .replication
                    .iter()
                    .flatten()
                    .map(|(n, l)| (*n, l.as_ref().map_or(0, |l| l.index)))
                    .collect(),
                changing: shard.target_replicas.is_some(),
            };
            if let Some(to) = transfer_target(&led, MAX_LAG) {
                // Wake the group first (a quiesced leader heartbeats again, its followers tick
                // again) and keep it awake until the transfer is over; hand over once the
                // target has answered the woken leader.
                let now = std::time::Instant::now();
                replica.quiesce().hold_awake(raft, now + HOLD_AWAKE);
                let acked = m
                    .heartbeat
                    .as_ref()
                    .and_then(|h| h.get(&to).copied().flatten())
                    .map(|t| crate::cluster::quiesce::std_instant(*t, now));
                if acked.is_none_or(|t| now.saturating_duration_since(t) >= ACKED_WITHIN) {
                    tracing::debug!(
                        group = shard.group,
                        to,
                        "woke the group; transferring on the next round"
                    );
                    continue;
                }
                tracing::info!(stream = %stream, group = shard.group, to, "handing leadership to the preferred leader");
                if let Err(e) = raft.trigger().transfer_leader(to).await {
                    tracing::warn!(group = shard.group, error = %e, "leader transfer failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(me: u64, matched: &[(u64, u64)]) -> LedGroup {
        LedGroup {
            me,
            replicas: vec![1, 2, 3],
            voters: vec![1, 2, 3],
            last_log_index: 100,
            matched: matched.iter().copied().collect(),
            changing: false,
        }
    }

    #[test]
    fn leadership_goes_back_to_a_caught_up_preferred_leader() {
        assert_eq!(transfer_target(&led(2, &[(1, 100), (3, 90)]), 16), Some(1));
        assert_eq!(transfer_target(&led(2, &[(1, 84)]), 16), Some(1));
        // The preferred leader itself, a lagging or unknown preferred node: nothing to do.
        assert_eq!(transfer_target(&led(1, &[(2, 100)]), 16), None);
        assert_eq!(transfer_target(&led(2, &[(1, 50)]), 16), None);
        assert_eq!(transfer_target(&led(2, &[(3, 100)]), 16), None);
        // Not while the replicas change, nor to a node that is no voter.
        let mut g = led(2, &[(1, 100)]);
        g.changing = true;
        assert_eq!(transfer_target(&g, 16), None);
        let mut g = led(2, &[(1, 100)]);
        g.voters = vec![2, 3, 4];
        assert_eq!(transfer_target(&g, 16), None);
    }
}
