//! Invariants 1 and 2 across leader crashes in a 3-node cluster: three real `runnel-node
//! cluster` processes on loopback, a stream with three shards replicated on all of them,
//! producers writing through random nodes while a fault loop `kill -9`s the node that leads the
//! most shards (or a random one) and restarts it, at random moments. Afterwards every
//! acknowledged record is present exactly once, in its shard, with its acknowledged sequence
//! number, and every shard reads the same from every node in strictly increasing order.
//!
//! `CLUSTER_FAULTS` sets how many faults to inject (default 4, the CI-sized run); the long run
//! is `CLUSTER_FAULTS=200 cargo test -p runnel-node --test cluster_failover -- --nocapture`.
//! Partitions (as opposed to crashes) are not injected yet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use support::cluster::Cluster;
use support::cluster::Member;
use support::workload::check_exactly_once;
use support::workload::produce;
use support::workload::read_agreeing;
use support::workload::wait_progress;

const STREAM: &str = "failover";
const NODES: usize = 3;
const PRODUCERS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_leader_crashes() {
    let faults: usize = std::env::var("CLUSTER_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("CLUSTER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("cluster_failover: faults={faults} seed={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(NODES as u64);
    let endpoints = cluster.endpoints();
    // Create through any node once the cluster answers.
    let mut admin = cluster.create_stream(1, STREAM, 3).await;
    let shards = support::wait_active(&mut admin, STREAM).await;
    assert_eq!(shards.len(), 3);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(STREAM, p, endpoints.clone(), stop.clone(), acked.clone())))
        .collect();
    wait_progress(&acked, 0, &cluster).await;

    for fault in 0..faults {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        // Kill the node leading the most shards (a leader crash), or sometimes a random one.
        let mut victim = rng.random_range(0..NODES);
        if rng.random_bool(0.75) {
            let mut best = 0;
            for (i, m) in cluster.members.iter().enumerate() {
                let leads = m.leads().await;
                if leads > best {
                    best = leads;
                    victim = i;
                }
            }
        }
        let before = acked.load(Ordering::SeqCst);
        cluster.members[victim].kill9();
        let resumed = wait_progress(&acked, before, &cluster).await;
        println!(
            "fault {fault}: killed node {}, writes resumed after {resumed:?}",
            cluster.members[victim].id
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2000))).await;
        cluster.restart(victim);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for p in producers {
        acks.extend(p.await.unwrap());
    }
    assert!(cluster.members.iter().all(Member::running));
    assert!(!acks.is_empty());

    // Read every shard through every node; all must agree and hold every acknowledged record.
    let stored = read_agreeing(&endpoints, STREAM, &shards).await;
    let where_stored = check_exactly_once(&stored, &acks);
    // Leaders report how far each follower is behind (refreshed every 5 s).
    let mut reported = false;
    for _ in 0..100 {
        for m in &cluster.members {
            let text = support::http_get(m.metrics, "/metrics").await;
            reported |= text
                .lines()
                .any(|l| l.starts_with("runnel_raft_replication_lag{"));
        }
        if reported {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reported, "no leader reports runnel_raft_replication_lag");
    println!(
        "cluster_failover: {} acknowledged, {} stored, {} faults",
        acks.len(),
        where_stored.len(),
        faults
    );
}
