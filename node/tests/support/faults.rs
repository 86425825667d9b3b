//! The faults of the cluster checkers: crashes (`kill -9`, restart later) and network
//! partitions (links cut through the cluster's [`Network`](super::partition::Network)), each
//! injected at random moments, with a random victim and random durations from a seeded RNG.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::cluster::Cluster;
use super::partition::Cut;
use super::workload::wait_progress;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the node leading the most groups (sometimes a random node), restart it later.
    Crash,
    /// Cut the node leading the most groups off from the majority, both ways.
    IsolateLeader,
    /// Cut a random node (a minority of one) off from the others, both ways.
    IsolateMinority,
    /// A one-way cut: the leader can no longer open connections to the others while they still
    /// reach it, or the others can no longer reach it while it still reaches them.
    OneWay,
    /// Isolate a random node, `kill -9` it and restart it while still isolated, then heal.
    IsolatedCrash,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Crash,
        Fault::IsolateLeader,
        Fault::IsolateMinority,
        Fault::OneWay,
        Fault::IsolatedCrash,
    ];

    fn partitions(self) -> bool {
        self != Fault::Crash
    }
}

/// `count` faults: every kind once per round of [`Fault::ALL`] (in a random order), so even a
/// short run injects each kind; crashes only when the cluster has no proxies.
pub fn plan(rng: &mut StdRng, count: usize, partitions: bool) -> Vec<Fault> {
    let kinds: Vec<Fault> = Fault::ALL
        .into_iter()
        .filter(|f| partitions || !f.partitions())
        .collect();
    let mut faults = Vec::with_capacity(count);
    while faults.len() < count {
        let mut round = kinds.clone();
        round.shuffle(rng);
        faults.extend(round);
    }
    faults.truncate(count);
    faults
}

/// The member leading the most groups (shards and catalog), or any member when none leads.
pub async fn busiest_leader(cluster: &Cluster) -> usize {
    let mut victim = 0;
    let mut best = 0;
    for (i, m) in cluster.members.iter().enumerate() {
        if !m.running() {
            continue;
        }
        let leads = m.leads().await;
        if leads > best {
            best = leads;
            victim = i;
        }
    }
    victim
}

fn pause(rng: &mut StdRng, ms: std::ops::Range<u64>) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(rng.random_range(ms)))
}

/// Injects `fault`, waits until acknowledged writes resume while it lasts, and repairs it (the
/// crashed node restarted, the network healed). Returns a line describing what happened.
pub async fn inject(fault: Fault, cluster: &mut Cluster, rng: &mut StdRng, acked: &AtomicU64) -> String {
    let n = cluster.members.len();
    let cut = if rng.random_bool(0.5) {
        Cut::Blackhole
    } else {
        Cut::Refuse
    };
    let leader = busiest_leader(cluster).await;
    let before = acked.load(Ordering::SeqCst);
    let line = match fault {
        Fault::Crash => {
            let victim = if rng.random_bool(0.75) {
                leader
            } else {
                rng.random_range(0..n)
            };
            cluster.members[victim].kill9();
            let resumed = wait_progress(acked, before, cluster).await;
            pause(rng, 200..2000).await;
            cluster.restart(victim);
            format!(
                "killed node {}, writes resumed after {resumed:?}",
                cluster.members[victim].id
            )
        }
        Fault::IsolateLeader | Fault::IsolateMinority | Fault::IsolatedCrash => {
            let victim = if fault == Fault::IsolateLeader {
                leader
            } else {
                rng.random_range(0..n)
            };
            network(cluster).isolate(victim, cut);
            let resumed = wait_progress(acked, before, cluster).await;
            pause(rng, 200..3000).await;
            let mut what = "isolated";
            if fault == Fault::IsolatedCrash {
                cluster.members[victim].kill9();
                pause(rng, 100..1000).await;
                cluster.restart(victim);
                pause(rng, 200..2000).await;
                what = "isolated, crashed and restarted";
            }
            network(cluster).heal();
            format!(
                "{what} node {} ({cut:?}), writes resumed after {resumed:?}",
                cluster.members[victim].id
            )
        }
        Fault::OneWay => {
            let outbound = rng.random_bool(0.5);
            for other in (0..n).filter(|o| *o != leader) {
                if outbound {
                    network(cluster).cut(leader, other, cut);
                } else {
                    network(cluster).cut(other, leader, cut);
                }
            }
            let resumed = wait_progress(acked, before, cluster).await;
            pause(rng, 200..3000).await;
            network(cluster).heal();
            let direction = if outbound { "to" } else { "from" };
            format!(
                "cut node {} one way ({direction} the others, {cut:?}), writes resumed after {resumed:?}",
                cluster.members[leader].id
            )
        }
    };
    pause(rng, 200..1500).await;
    line
}

fn network(cluster: &Cluster) -> &super::partition::Network {
    cluster
        .network
        .as_ref()
        .expect("partition faults need Cluster::start_partitionable")
}
