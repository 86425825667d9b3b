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

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::io::BufRead;
use std::io::BufReader;
use std::net::TcpListener;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use rand::Rng;
use rand::SeedableRng;
use runnel_proto::v1 as pb;
use support::seq_cmp;

const STREAM: &str = "failover";
const NODES: usize = 3;
const PRODUCERS: u32 = 3;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One cluster member process; its ports stay the same across restarts (peers name them).
struct Member {
    id: u64,
    grpc: u16,
    metrics: u16,
    kinesis: u16,
    dir: std::path::PathBuf,
    log: std::path::PathBuf,
    child: Option<Child>,
}

impl Member {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc)
    }

    fn spawn(&mut self, peers: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new(support::node_bin())
            .arg("cluster")
            .args(["--node-id", &self.id.to_string(), "--peers", peers])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc)])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", self.metrics)])
            .args(["--kinesis-addr", &format!("127.0.0.1:{}", self.kinesis)])
            // Producers write as fast as they can; this test is about failover, not limits.
            .args(["--throttling", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || for _ in BufReader::new(stdout).lines() {});
        self.child = Some(child);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    async fn leads(&self) -> usize {
        let text = support::http_get(self.metrics, "/metrics").await;
        text.lines()
            .filter(|l| l.starts_with("runnel_raft_is_leader{") && l.ends_with(" 1"))
            .count()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Ack {
    id: (u32, u64),
    shard: String,
    seq: String,
}

fn data(p: u32, c: u64) -> Vec<u8> {
    format!("{p}:{c}:{}", "x".repeat((c % 200) as usize)).into_bytes()
}

async fn produce(p: u32, endpoints: Vec<String>, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) -> Vec<Ack> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(p) * 7919);
    let mut acks = Vec::new();
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let endpoint = &endpoints[rng.random_range(0..endpoints.len())];
        let Ok(mut client) = support::streams_client(endpoint).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let n: u64 = rng.random_range(1..=100);
        // Every attempt uses fresh ids, so a stored duplicate can only come from the server.
        let first = next;
        next += n;
        let records = (first..first + n)
            .map(|c| support::entry(&format!("k{p}-{}", c % 16), data(p, c)))
            .collect();
        let put = client.put_records(pb::PutRecordsRequest {
            stream_name: STREAM.into(),
            records,
        });
        if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(15), put).await {
            for (i, r) in resp.into_inner().records.into_iter().enumerate() {
                if r.error_code.is_empty() {
                    acks.push(Ack {
                        id: (p, first + i as u64),
                        shard: r.shard_id,
                        seq: r.sequence_number,
                    });
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
    acks
}

fn parse_id(data: &[u8]) -> (u32, u64) {
    let s = std::str::from_utf8(data).expect("utf-8 record");
    let mut it = s.splitn(3, ':');
    let p = it.next().unwrap().parse().unwrap();
    let c = it.next().unwrap().parse().unwrap();
    (p, c)
}

async fn wait_progress(acked: &AtomicU64, beyond: u64, members: &[Member]) -> Duration {
    let start = Instant::now();
    while acked.load(Ordering::SeqCst) <= beyond {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no acknowledged write for 60 s; logs:\n{}",
            members
                .iter()
                .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Waits until a (re)started node serves client calls (it answers Unavailable until it has
/// caught up with the catalog).
async fn wait_ready(endpoint: &str) {
    for _ in 0..600 {
        if let Ok(mut a) = support::admin_client(endpoint).await {
            let req = pb::DescribeStreamRequest {
                stream_name: STREAM.into(),
            };
            if a.describe_stream(req).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{endpoint} did not become ready");
}

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
    let tmp = tempfile::tempdir().unwrap();
    let mut members: Vec<Member> = (1..=NODES as u64)
        .map(|id| Member {
            id,
            grpc: free_port(),
            metrics: free_port(),
            kinesis: free_port(),
            dir: tmp.path().join(format!("node-{id}")),
            log: tmp.path().join(format!("node-{id}.log")),
            child: None,
        })
        .collect();
    let peers = members
        .iter()
        .map(|m| format!("{}=127.0.0.1:{}", m.id, m.grpc))
        .collect::<Vec<_>>()
        .join(",");
    for m in &mut members {
        m.spawn(&peers);
    }
    let endpoints: Vec<String> = members.iter().map(Member::endpoint).collect();

    // Create through any node once the cluster answers.
    let mut admin = loop {
        if let Ok(mut a) = support::admin_client(&endpoints[1]).await {
            let req = pb::CreateStreamRequest {
                stream_name: STREAM.into(),
                shard_count: Some(3),
                ..Default::default()
            };
            if a.create_stream(req).await.is_ok() {
                break a;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let shards = support::wait_active(&mut admin, STREAM).await;
    assert_eq!(shards.len(), 3);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(produce(p, endpoints.clone(), stop.clone(), acked.clone())))
        .collect();
    wait_progress(&acked, 0, &members).await;

    for fault in 0..faults {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..1500))).await;
        // Kill the node leading the most shards (a leader crash), or sometimes a random one.
        let mut victim = rng.random_range(0..NODES);
        if rng.random_bool(0.75) {
            let mut best = 0;
            for (i, m) in members.iter().enumerate() {
                let leads = m.leads().await;
                if leads > best {
                    best = leads;
                    victim = i;
                }
            }
        }
        let before = acked.load(Ordering::SeqCst);
        members[victim].kill9();
        let resumed = wait_progress(&acked, before, &members).await;
        println!(
            "fault {fault}: killed node {}, writes resumed after {resumed:?}",
            members[victim].id
        );
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2000))).await;
        members[victim].spawn(&peers);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for p in producers {
        acks.extend(p.await.unwrap());
    }
    assert!(members.iter().all(Member::running));
    assert!(!acks.is_empty());

    // Read every shard through every node; all must agree and hold every acknowledged record.
    let mut reference: Option<BTreeMap<String, Vec<pb::Record>>> = None;
    for endpoint in &endpoints {
        wait_ready(endpoint).await;
        let mut client = support::streams_client(endpoint).await.unwrap();
        let mut per_shard = BTreeMap::new();
        for shard in &shards {
            per_shard.insert(
                shard.clone(),
                support::read_shard(&mut client, STREAM, shard).await,
            );
        }
        match &reference {
            None => reference = Some(per_shard),
            Some(r) => {
                for (shard, records) in r {
                    let seqs: Vec<&str> = records.iter().map(|x| x.sequence_number.as_str()).collect();
                    let other: Vec<&str> = per_shard[shard]
                        .iter()
                        .map(|x| x.sequence_number.as_str())
                        .collect();
                    assert_eq!(seqs, other, "{shard} reads differently through {endpoint}");
                }
            }
        }
    }
    let stored = reference.unwrap();
    let mut where_stored: HashMap<(u32, u64), (String, String)> = HashMap::new();
    for (shard, records) in &stored {
        for w in records.windows(2) {
            assert_eq!(
                seq_cmp(&w[0].sequence_number, &w[1].sequence_number),
                std::cmp::Ordering::Less,
                "{shard} out of order"
            );
        }
        for r in records {
            let id = parse_id(&r.data);
            assert_eq!(
                r.data.as_ref(),
                data(id.0, id.1).as_slice(),
                "record {id:?} is corrupt"
            );
            let prev = where_stored.insert(id, (shard.clone(), r.sequence_number.clone()));
            assert!(prev.is_none(), "record {id:?} stored twice");
        }
    }
    for a in &acks {
        let Some((shard, seq)) = where_stored.get(&a.id) else {
            panic!("acknowledged record {:?} was lost", a.id)
        };
        assert_eq!((shard, seq), (&a.shard, &a.seq), "record {:?} moved", a.id);
    }
    // Leaders report how far each follower is behind (refreshed every 5 s).
    let mut reported = false;
    for _ in 0..100 {
        for m in &members {
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
