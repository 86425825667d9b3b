//! Membership changes under load, with real processes: a fourth node joins a running 3-node
//! cluster (`--join`), a replica moves to it, a node is drained and removed, while producers
//! keep writing through every node. Afterwards every acknowledged record is present exactly
//! once where its acknowledgement said, every remaining node reads every shard identically, and
//! the removed node's shard data is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use support::cluster::Cluster;
use support::joiner::Joiner;
use support::membership::move_replica;
use support::membership::replica_sets;
use support::wait::applied;
use support::wait::eventually;
use support::workload::check_exactly_once;
use support::workload::produce;
use support::workload::read_agreeing;
use support::workload::wait_progress;
use tonic::transport::Channel;

const STREAM: &str = "moving";

async fn cluster_nodes(admin: &mut AdminClient<Channel>) -> Vec<pb::ClusterNode> {
    admin
        .describe_cluster(pb::DescribeClusterRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_join_replicas_move_and_nodes_drain_without_losing_a_record() {
    let mut cluster = Cluster::start(3);
    let mut admin = cluster.create_stream(0, STREAM, 3).await;
    let shards = support::wait_active(&mut admin, STREAM).await;

    // Three nodes, three replicas per shard: there is nowhere to drain a node to.
    let refused = admin
        .drain_node(pb::DrainNodeRequest { node_id: 3 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("Cannot drain node 3"),
        "{}",
        refused.message()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..3)
        .map(|p| {
            tokio::spawn(produce(
                STREAM,
                p,
                cluster.endpoints(),
                stop.clone(),
                acked.clone(),
            ))
        })
        .collect();
    wait_progress(&acked, 0, &cluster).await;

    // Node 4 joins through node 2 and becomes a catalog voter.
    let joiner = Joiner::start(4, cluster.members[1].grpc);
    let logs = || format!("{}\n--- node 4\n{}", cluster.logs(), joiner.log());
    eventually("node 4 to join", &logs, || {
        let mut admin = admin.clone();
        async move {
            cluster_nodes(&mut admin)
                .await
                .iter()
                .any(|n| n.node_id == 4 && n.voter)
        }
    })
    .await;
    support::cluster::wait_ready(&joiner.endpoint(), STREAM).await;

    // Move shard 0's replica from node 1 to node 4 while writes go on.
    let before = acked.load(Ordering::SeqCst);
    move_replica(&mut admin, STREAM, (0, &shards[0]), (1, 4), vec![2, 3, 4], &logs).await;
    wait_progress(&acked, before, &cluster).await;

    // Drain node 3: every replica it holds moves (to node 4 or node 1, the nodes without one).
    let moving = admin
        .drain_node(pb::DrainNodeRequest { node_id: 3 })
        .await
        .unwrap()
        .into_inner()
        .moving;
    assert_eq!(moving, 3);
    eventually("node 3 to be drained", &logs, || {
        let mut admin = admin.clone();
        async move {
            let nodes = cluster_nodes(&mut admin).await;
            let n3 = nodes.iter().find(|n| n.node_id == 3).unwrap();
            n3.draining && n3.replicas == 0 && nodes.iter().all(|n| n.moving == 0)
        }
    })
    .await;
    let sets = replica_sets(&mut admin, STREAM).await;
    assert!(sets.iter().all(|r| r.len() == 3 && !r.contains(&3)), "{sets:?}");
    // A drained node keeps no shard data.
    let data3 = cluster.members[2].dir.join("shards");
    eventually("node 3 to delete its shard data", &logs, || {
        let data3 = data3.clone();
        async move { std::fs::read_dir(&data3).map(|d| d.count() == 0).unwrap_or(true) }
    })
    .await;

    // A node with replicas cannot be removed; a drained one can.
    let refused = admin
        .remove_node(pb::RemoveNodeRequest { node_id: 4 })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    admin
        .remove_node(pb::RemoveNodeRequest { node_id: 3 })
        .await
        .unwrap();
    let nodes = cluster_nodes(&mut admin).await;
    assert_eq!(nodes.iter().map(|n| n.node_id).collect::<Vec<_>>(), vec![1, 2, 4]);
    cluster.members[2].kill9();
    let logs = || format!("{}\n--- node 4\n{}", cluster.logs(), joiner.log());

    // Writes go on without node 3.
    let endpoints = vec![
        cluster.members[0].endpoint(),
        cluster.members[1].endpoint(),
        joiner.endpoint(),
    ];
    let before = acked.load(Ordering::SeqCst);
    wait_progress(&acked, before + 100, &cluster).await;
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for p in producers {
        acks.extend(p.await.unwrap());
    }
    assert!(!acks.is_empty());
    // Replication traffic is counted per peer.
    let text = support::http_get(cluster.members[0].metrics, "/metrics").await;
    let sent: f64 = text
        .lines()
        .filter(|l| l.starts_with("runnel_replication_sent_bytes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(sent > 0.0, "no replication bytes counted:\n{text}");
    // Replication to followers is pipelined: requests went out on the lanes, not one at a time.
    let pipelined: f64 = text
        .lines()
        .filter(|l| l.starts_with("runnel_replication_pipelined_appends_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        pipelined > 0.0,
        "no AppendEntries went on a pipeline lane:\n{text}"
    );
    let stored = read_agreeing(&endpoints, STREAM, &shards).await;
    // The replicas that moved to node 4 hold the whole log: it applies every shard group up to
    // where the other replicas are (Raft's log matching makes equal indexes equal logs).
    eventually("node 4 to apply every shard group's log", &logs, || async {
        let mine = applied(joiner.metrics).await;
        let mut others = applied(cluster.members[0].metrics).await;
        for (g, i) in applied(cluster.members[1].metrics).await {
            let e = others.entry(g).or_default();
            *e = (*e).max(i);
        }
        mine.len() == 3 && mine.iter().all(|(g, i)| others.get(g) == Some(i))
    })
    .await;
    let where_stored = check_exactly_once(&stored, &acks);
    println!(
        "cluster_membership: {} acknowledged, {} stored",
        acks.len(),
        where_stored.len()
    );
}

/// Shard groups (not the catalog) a member leads, from its metrics.
async fn shard_leaderships(metrics_port: u16) -> usize {
    // A restarting member may not listen yet.
    if tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
        .await
        .is_err()
    {
        return 0;
    }
    let text = support::http_get(metrics_port, "/metrics").await;
    text.lines()
        .filter(|l| l.starts_with("runnel_raft_is_leader{") && l.ends_with(" 1"))
        .filter(|l| !l.contains("group=\"0\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaders_go_back_to_their_preferred_nodes_after_a_restart() {
    let mut cluster = Cluster::start(3);
    let mut admin = cluster.create_stream(0, STREAM, 6).await;
    support::wait_active(&mut admin, STREAM).await;
    let ports: Vec<u16> = cluster.members.iter().map(|m| m.metrics).collect();
    let balanced = || async {
        let mut counts = Vec::new();
        for p in &ports {
            counts.push(shard_leaderships(*p).await);
        }
        counts == vec![2, 2, 2]
    };
    let logs = || cluster.logs();
    eventually("two shard leaders per node", &logs, balanced).await;
    // Node 1 crashes: its groups elect leaders elsewhere; when it is back and caught up, they
    // hand leadership back.
    cluster.members[0].kill9();
    let (p2, p3) = (ports[1], ports[2]);
    let logs = || String::new();
    eventually("nodes 2 and 3 to lead every shard", &logs, || async move {
        shard_leaderships(p2).await + shard_leaderships(p3).await == 6
    })
    .await;
    cluster.restart(0);
    let logs = || cluster.logs();
    eventually("leaders to spread again", &logs, balanced).await;
}

/// Puts one record per shard (retrying until each is acknowledged); returns the acks.
async fn put_one_per_shard(endpoints: &[String], round: u32) -> Vec<(String, String, Vec<u8>)> {
    let mut acks = Vec::new();
    for k in 0..24 {
        let data = format!("round-{round}-key-{k}").into_bytes();
        let mut attempt = 0;
        loop {
            let endpoint = &endpoints[attempt % endpoints.len()];
            attempt += 1;
            assert!(attempt < 600, "record {k} of round {round} never acknowledged");
            let Ok(mut client) = support::streams_client(endpoint).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let put = client.put_records(pb::PutRecordsRequest {
                stream_name: STREAM.into(),
                records: vec![support::entry(&format!("key-{k}"), data.clone())],
            });
            if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(10), put).await {
                let r = &resp.into_inner().records[0];
                if r.error_code.is_empty() {
                    acks.push((r.shard_id.clone(), r.sequence_number.clone(), data));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    acks
}

/// Reads every shard through every node (all must agree) and checks that each acknowledged
/// record is where its acknowledgement put it.
async fn assert_reads_back(endpoints: &[String], shards: &[String], acks: &[(String, String, Vec<u8>)]) {
    let stored = read_agreeing(endpoints, STREAM, shards).await;
    for (shard, seq, data) in acks {
        let found = stored[shard].iter().find(|r| &r.sequence_number == seq);
        assert_eq!(
            found.map(|r| r.data.as_ref()),
            Some(data.as_slice()),
            "{shard} {seq}"
        );
    }
}

/// Shard groups each member leads.
async fn leaderships(ports: &[u16]) -> Vec<usize> {
    let mut led = Vec::new();
    for p in ports {
        led.push(shard_leaderships(*p).await);
    }
    led
}

/// Idle groups quiesce (every replica, led or followed); a write wakes its group and is
/// acknowledged; a read of a quiet leader confirms leadership with a heartbeat round; when the
/// node leading the most groups dies, the others notice through liveness pings and elect; once
/// it is back, leadership returns to the preferred nodes (transfers wake the groups first) and
/// every replica quiesces again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quiesced_groups_wake_for_writes_and_fail_over() {
    let mut cluster = Cluster::start_with(3, &["--throttling", "off", "--quiesce", "true"]);
    let mut admin = cluster.create_stream(0, STREAM, 6).await;
    let shards = support::wait_active(&mut admin, STREAM).await;
    let ports: Vec<u16> = cluster.members.iter().map(|m| m.metrics).collect();
    let endpoints = cluster.endpoints();
    // Every replica of the six groups: led without ticking or followed without a timer.
    let all_quiet = || async { cluster.quiesced_replicas().await == 18 };
    let logs = || cluster.logs();
    eventually("every replica to quiesce", &logs, all_quiet).await;
    // A write wakes its group and is acknowledged; the groups go quiet again.
    let mut acks = put_one_per_shard(&endpoints, 0).await;
    eventually("every replica to quiesce again", &logs, all_quiet).await;
    // Reads of quiet leaders (through every node) return what was acknowledged.
    assert_reads_back(&endpoints, &shards, &acks).await;
    eventually("every replica to quiesce after the reads", &logs, all_quiet).await;
    // The node leading the most groups dies while they are quiet: node liveness wakes the
    // followers, they elect, and writes go on. (Leaderships are reported every few seconds.)
    eventually("every leadership to be reported", &logs, || async {
        leaderships(&ports).await.iter().sum::<usize>() == 6
    })
    .await;
    let led = leaderships(&ports).await;
    let victim = (0..3).max_by_key(|i| led[*i]).unwrap();
    assert!(led[victim] > 0, "{led:?}");
    cluster.members[victim].kill9();
    let alive: Vec<String> = endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, e)| e.clone())
        .collect();
    let killed = std::time::Instant::now();
    acks.extend(put_one_per_shard(&alive, 1).await);
    // Informational only (the machine's speed must not decide the test).
    println!(
        "writes to every shard acknowledged {:?} after the kill",
        killed.elapsed()
    );
    cluster.restart(victim);
    acks.extend(put_one_per_shard(&endpoints, 2).await);
    // Leadership goes back to the preferred nodes (two groups each) and everything quiesces.
    let logs = || cluster.logs();
    eventually(
        "leaders to spread again and every replica to quiesce",
        &logs,
        || async { leaderships(&ports).await == vec![2, 2, 2] && cluster.quiesced_replicas().await == 18 },
    )
    .await;
    // Every acknowledged record reads back where its acknowledgement put it, through every node.
    assert_reads_back(&endpoints, &shards, &acks).await;
}
