//! Invariants 1 and 2 across crashes and network partitions in a 3-node cluster: three real
//! `runnel-node cluster` processes on loopback, each reaching each other one through a
//! fault-injecting TCP proxy of its own (`support::proxy`, `support::partition`), a stream with
//! three shards replicated on all of them, and producers writing through random nodes (the
//! isolated one included) while a fault loop injects, at random moments (`support::faults`):
//! a `kill -9` of the node leading the most shards (or of a random node) and its restart; the
//! leader isolated from the majority; a random node (a minority) isolated; a one-way cut (the
//! leader cannot reach the others, or they cannot reach it); and an isolated node crashed and
//! restarted before the partition heals. Cut links either blackhole (accept, never forward) or
//! refuse (reset) connections, existing ones included.
//!
//! Afterwards, with every link healed: every acknowledged record is present exactly once, in its
//! shard, with its acknowledged sequence number; no two records were acknowledged at the same
//! sequence number (as two leaders of different terms would); sequence numbers never went
//! backwards (a request sent after another was acknowledged got higher ones, so a deposed leader
//! that acknowledged a write would be caught); and every shard reads the same from every node in
//! strictly increasing order. While the faults last, a reader asks random nodes for records
//! already acknowledged (`support::read_probe`): a successful read must return them.
//!
//! Nodes run with their default (idle groups quiesce, though producers rarely leave a group
//! idle); `CLUSTER_QUIESCE=0` runs them with `--quiesce false`, and `CLUSTER_QUIESCE=1` with
//! `--quiesce true` and, before each fault, pauses the producers and the reader until every
//! shard group is quiesced (bounded), so faults strike quiet groups: a dead or cut-off leader
//! must be replaced and a write must wake its group (writes start again 300 ms after the fault
//! strikes). `CLUSTER_FAULTS` sets how many faults to inject (default 5: each kind once, the CI-sized run,
//! about a minute); `CLUSTER_SEED` replays the fault plan (kinds, victims, pauses; not the
//! processes' scheduling); `CLUSTER_KEEP_DATA=1` keeps the nodes' data and logs. The long run is
//! `CLUSTER_FAULTS=200 cargo test -p runnel-node --test cluster_failover -- --nocapture`
//! (about 5 s per fault).

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
use support::faults;
use support::read_probe::LatestAcks;
use support::read_probe::probe_reads;
use support::workload::Ack;
use support::workload::PAUSED;
use support::workload::ack_order_violation;
use support::workload::check_exactly_once;
use support::workload::produce_published;
use support::workload::read_agreeing;
use support::workload::wait_progress;

const STREAM: &str = "failover";
const NODES: usize = 3;
const PRODUCERS: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_crashes_and_partitions() {
    let faults: usize = std::env::var("CLUSTER_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("CLUSTER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    println!("cluster_failover: faults={faults} seed={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mode = std::env::var("CLUSTER_QUIESCE").unwrap_or_default();
    let quiesce = !mode.is_empty() && mode != "0";
    println!("cluster_failover: CLUSTER_QUIESCE={mode:?}");
    let args: &[&str] = match mode.as_str() {
        "" => &["--throttling", "off"],
        "0" => &["--throttling", "off", "--quiesce", "false"],
        _ => &["--throttling", "off", "--quiesce", "true"],
    };
    let mut cluster = Cluster::start_partitionable_with(NODES as u64, args).await;
    let endpoints = cluster.endpoints();
    // Create through any node once the cluster answers.
    let mut admin = cluster.create_stream(1, STREAM, 3).await;
    let shards = support::wait_active(&mut admin, STREAM).await;
    assert_eq!(shards.len(), 3);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let latest = Arc::new(LatestAcks::default());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (endpoints, stop, acked) = (endpoints.clone(), stop.clone(), acked.clone());
            tokio::spawn(produce_published(
                STREAM,
                p,
                endpoints,
                stop,
                acked,
                Some(latest.clone()),
            ))
        })
        .collect();
    let reader = tokio::spawn(probe_reads(STREAM, endpoints.clone(), latest, stop.clone()));
    wait_progress(&acked, 0, &cluster).await;

    for (i, fault) in faults::plan(&mut rng, faults, true).into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        if quiesce {
            let quiet = quiesce_all(&cluster).await;
            println!("fault {i}: {quiet} shard replicas quiesced before it");
            // Writes start again just after the fault strikes.
            tokio::spawn(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                PAUSED.store(false, Ordering::SeqCst);
            });
        }
        let what = faults::inject(fault, &mut cluster, &mut rng, &acked).await;
        println!("fault {i} ({fault:?}): {what}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for p in producers {
        acks.extend(p.await.unwrap());
    }
    let probed = reader.await.unwrap();
    assert!(cluster.members.iter().all(Member::running));
    assert!(!cluster.network.as_ref().is_some_and(|n| n.partitioned()));
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
        "cluster_failover: {} acknowledged, {} stored, {probed} reads of acknowledged records checked, {} faults",
        acks.len(),
        where_stored.len(),
        faults
    );
}

/// Pauses the producers and the reader until every shard replica is quiesced, for at most
/// 20 s (an unreachable member reports none); returns how many were.
async fn quiesce_all(cluster: &Cluster) -> u64 {
    PAUSED.store(true, Ordering::SeqCst);
    let mut quiet = 0;
    for _ in 0..100 {
        quiet = cluster.quiesced_replicas().await;
        if quiet == (NODES * 3) as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    quiet
}

/// The acknowledgement checks catch what a deposed leader acknowledging a write would leave
/// behind: a position acknowledged twice, or a sequence number going backwards.
#[test]
fn ack_checks_catch_a_second_leader() {
    let ack = |p: u32, seq: &str, sent_after: u64, done: u64| Ack {
        id: (p, 0),
        shard: "shardId-000000000000".into(),
        seq: seq.into(),
        sent_after,
        done,
    };
    let fails = |acks: &[Ack]| ack_order_violation(acks).is_some();
    assert!(
        fails(&[ack(0, "100", 0, 1), ack(1, "100", 0, 2)]),
        "same position twice"
    );
    // The second request was sent after the first was acknowledged, and got a lower number.
    assert!(
        fails(&[ack(0, "200", 0, 1), ack(1, "150", 1, 2)]),
        "went backwards"
    );
    assert!(
        fails(&[ack(0, "200", 0, 1), ack(1, "99", 1, 2)]),
        "compared as numbers"
    );
    // Concurrent requests may be ordered either way.
    assert!(!fails(&[ack(0, "200", 0, 2), ack(1, "150", 0, 1)]));
    assert!(!fails(&[ack(0, "100", 0, 1), ack(1, "150", 1, 2)]));
}
