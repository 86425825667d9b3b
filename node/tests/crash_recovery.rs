//! Invariants 1 and 2 across `kill -9`: concurrent producers write to a 4-shard stream while
//! the node is SIGKILLed at random moments and restarted on the same data directory, three
//! times. Afterwards every acknowledged record is present exactly once with its acknowledged
//! shard and sequence number, every shard is in strictly increasing sequence-number order, and
//! every record present was really sent (unacknowledged records of a kill window may be present,
//! but intact and only once).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use runnel_proto::v1 as pb;
use support::Node;
use support::seq_cmp;

const STREAM: &str = "crash-test";
const PRODUCERS: u32 = 4;
const KILLS: u32 = 3;

/// A record's identity: (producer, counter). Counters are never reused, so a record that
/// shows up twice was duplicated by the server.
type Id = (u32, u64);

fn mix(p: u32, c: u64) -> u64 {
    // splitmix64 of the id: deterministic per record.
    let mut z = (u64::from(p) << 48 ^ c).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn partition_key(p: u32, c: u64) -> String {
    format!("pk-{p}-{c}")
}

fn payload(p: u32, c: u64) -> Vec<u8> {
    let m = mix(p, c);
    let mut data = format!("{p}:{c}:").into_bytes();
    let len = (m % 300) as usize;
    data.extend((0..len).map(|i| (m >> (i % 8 * 8)) as u8 ^ i as u8));
    data
}

fn parse_id(data: &[u8]) -> Option<Id> {
    // The header is ASCII; the filler after it may not be UTF-8, so split on bytes.
    let mut parts = data.splitn(3, |b| *b == b':');
    let p = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let c = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    parts.next()?;
    Some((p, c))
}

#[derive(Clone, Debug)]
struct Ack {
    id: Id,
    shard: String,
    seq: String,
}

struct ProducerOutcome {
    producer: u32,
    /// Counters `0..sent` were used (sent or attempted).
    sent: u64,
    acks: Vec<Ack>,
    failed_calls: u64,
    failed_entries: u64,
}

async fn producer(
    p: u32,
    endpoint: tokio::sync::watch::Receiver<String>,
    stop: Arc<AtomicBool>,
    acked_total: Arc<AtomicU64>,
) -> ProducerOutcome {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(p) * 7919 + 1);
    let mut out = ProducerOutcome {
        producer: p,
        sent: 0,
        acks: Vec::new(),
        failed_calls: 0,
        failed_entries: 0,
    };
    let mut client = None;
    while !stop.load(AtomicOrdering::SeqCst) {
        if client.is_none() {
            let ep = endpoint.borrow().clone();
            match support::streams_client(&ep).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        let n: u64 = rng.random_range(1..=500);
        let first = out.sent;
        out.sent += n;
        let records = (first..first + n)
            .map(|c| support::entry(&partition_key(p, c), payload(p, c)))
            .collect();
        let put = c.put_records(pb::PutRecordsRequest {
            stream_name: STREAM.to_string(),
            records,
        });
        match tokio::time::timeout(Duration::from_secs(20), put).await {
            Ok(Ok(resp)) => {
                let resp = resp.into_inner();
                assert_eq!(resp.records.len() as u64, n, "one result per entry");
                let mut failed = 0;
                for (i, r) in resp.records.into_iter().enumerate() {
                    if r.error_code.is_empty() {
                        assert!(!r.sequence_number.is_empty() && !r.shard_id.is_empty(), "{r:?}");
                        out.acks.push(Ack {
                            id: (p, first + i as u64),
                            shard: r.shard_id,
                            seq: r.sequence_number,
                        });
                    } else {
                        failed += 1;
                    }
                }
                assert_eq!(u64::from(resp.failed_record_count), failed);
                out.failed_entries += failed;
                acked_total.fetch_add(n - failed, AtomicOrdering::SeqCst);
            }
            Ok(Err(_)) | Err(_) => {
                // Unacknowledged: these records may or may not be stored.
                out.failed_calls += 1;
                client = None;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
    out
}

async fn wait_for_progress(acked: &AtomicU64, at_least: u64, node: &Node) {
    for _ in 0..600 {
        if acked.load(AtomicOrdering::SeqCst) >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "producers made no progress after a restart (acked {}, wanted {at_least}):\n{}",
        acked.load(AtomicOrdering::SeqCst),
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_records_survive_kill_9() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash_recovery seed {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut node = Node::start().await;
    let shards = support::create_active_stream(&mut node.admin().await, STREAM, 4).await;
    assert_eq!(shards.len(), 4);

    let (endpoint_tx, endpoint_rx) = tokio::sync::watch::channel(node.endpoint());
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| tokio::spawn(producer(p, endpoint_rx.clone(), stop.clone(), acked.clone())))
        .collect();

    for kill in 0..KILLS {
        // Producing must be under way (again) before the next kill.
        let before = acked.load(AtomicOrdering::SeqCst);
        wait_for_progress(&acked, before + 1, &node).await;
        let wait = rng.random_range(500..=2000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        node.kill9();
        eprintln!(
            "kill {} after {wait} ms, {} records acknowledged so far",
            kill + 1,
            acked.load(AtomicOrdering::SeqCst)
        );
        node.restart().await;
        endpoint_tx.send_replace(node.endpoint());
    }
    // Keep producing on the restarted node for a while.
    let before = acked.load(AtomicOrdering::SeqCst);
    wait_for_progress(&acked, before + 1, &node).await;
    tokio::time::sleep(Duration::from_millis(rng.random_range(300..=1000))).await;
    stop.store(true, AtomicOrdering::SeqCst);
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("producer task"));
    }

    let records = read_all(&node).await;
    let summary = verify(&outcomes, &records);
    eprintln!("{summary}");

    // Reading is stable across one more kill -9 with no writes in flight.
    node.kill9();
    node.restart().await;
    let again = read_all(&node).await;
    assert_eq!(records.len(), again.len(), "shard count changed across a restart");
    for ((shard, a), (shard2, b)) in records.iter().zip(&again) {
        assert_eq!(shard, shard2);
        let a: Vec<_> = a.iter().map(|r| (&r.sequence_number, &r.data)).collect();
        let b: Vec<_> = b.iter().map(|r| (&r.sequence_number, &r.data)).collect();
        assert!(a == b, "{shard} changed across an idle restart");
    }
}

async fn read_all(node: &Node) -> Vec<(String, Vec<pb::Record>)> {
    let mut admin = node.admin().await;
    support::wait_active(&mut admin, STREAM).await;
    let mut client = node.streams().await;
    support::read_stream(&mut client, &mut admin, STREAM).await
}

fn verify(outcomes: &[ProducerOutcome], shards: &[(String, Vec<pb::Record>)]) -> String {
    let sent: HashMap<u32, u64> = outcomes.iter().map(|o| (o.producer, o.sent)).collect();
    // Where each record was found: id -> (shard, sequence number).
    let mut found: HashMap<Id, (String, String)> = HashMap::new();
    let mut total = 0usize;
    for (shard, records) in shards {
        // Invariant 2: strictly increasing sequence numbers within the shard.
        for w in records.windows(2) {
            assert_eq!(
                seq_cmp(&w[0].sequence_number, &w[1].sequence_number),
                std::cmp::Ordering::Less,
                "{shard}: sequence numbers not strictly increasing: {} then {}",
                w[0].sequence_number,
                w[1].sequence_number
            );
        }
        for r in records {
            total += 1;
            let id = parse_id(&r.data).unwrap_or_else(|| {
                panic!(
                    "{shard}: record {} holds data that was never sent: {:?}",
                    r.sequence_number,
                    String::from_utf8_lossy(&r.data[..r.data.len().min(64)])
                )
            });
            let (p, c) = id;
            assert!(
                sent.get(&p).is_some_and(|s| c < *s),
                "{shard}: record {id:?} was never sent"
            );
            assert!(
                r.data == payload(p, c),
                "{shard}: record {id:?} at {} is corrupted",
                r.sequence_number
            );
            assert_eq!(r.partition_key, partition_key(p, c), "{shard}: {id:?}");
            if let Some((s0, q0)) = found.insert(id, (shard.clone(), r.sequence_number.clone())) {
                panic!(
                    "record {id:?} stored twice: {s0}/{q0} and {shard}/{}",
                    r.sequence_number
                );
            }
        }
    }
    // Invariant 1: every acknowledged record is there, where it was acknowledged.
    let mut acked = 0usize;
    for o in outcomes {
        // Per producer and shard, later acknowledged records have later sequence numbers.
        let mut last: BTreeMap<&str, &str> = BTreeMap::new();
        for a in &o.acks {
            acked += 1;
            let Some((shard, seq)) = found.get(&a.id) else {
                panic!("acknowledged record {:?} ({}/{}) is lost", a.id, a.shard, a.seq);
            };
            assert_eq!(
                (shard, seq),
                (&a.shard, &a.seq),
                "acknowledged record {:?} moved",
                a.id
            );
            if let Some(prev) = last.insert(&a.shard, &a.seq) {
                assert_eq!(
                    seq_cmp(prev, &a.seq),
                    std::cmp::Ordering::Less,
                    "producer {} on {}: acknowledged records out of order",
                    o.producer,
                    a.shard
                );
            }
        }
    }
    assert!(acked > 0, "nothing was acknowledged");
    let failed_calls: u64 = outcomes.iter().map(|o| o.failed_calls).sum();
    let failed_entries: u64 = outcomes.iter().map(|o| o.failed_entries).sum();
    let sent_total: u64 = sent.values().sum();
    format!(
        "sent {sent_total}, acknowledged {acked}, stored {total} ({} unacknowledged but stored), \
         failed calls {failed_calls}, failed entries {failed_entries}",
        total - acked
    )
}
