//! A producer workload for cluster tests and its exactly-once check.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use rand::Rng;
use rand::SeedableRng;
use runnel_proto::v1 as pb;

use super::cluster::Cluster;
use super::cluster::wait_ready;
use super::read_probe::LatestAcks;
use super::seq_cmp;

/// While set, producers and read probes send nothing (so idle groups can quiesce).
pub static PAUSED: AtomicBool = AtomicBool::new(false);

/// One acknowledged record: (producer, counter), and where the acknowledgement put it.
///
/// `sent_after` and `done` order requests in real time without a clock: they are values of the
/// shared count of acknowledged records, read just before the request was sent and reached by
/// this acknowledgement. A request whose `done` is at most another's `sent_after` was
/// acknowledged before the other was sent.
pub struct Ack {
    pub id: (u32, u64),
    pub shard: String,
    pub seq: String,
    pub sent_after: u64,
    pub done: u64,
}

/// The payload of record `c` of producer `p` (its id, then padding of varying length).
pub fn data(p: u32, c: u64) -> Vec<u8> {
    format!("{p}:{c}:{}", "x".repeat((c % 200) as usize)).into_bytes()
}

/// Writes PutRecords batches of 1..=100 records (16 keys per producer) through random
/// endpoints until `stop`; every attempt uses fresh ids, so a stored duplicate can only come
/// from the server. Returns the acknowledged records.
pub async fn produce(
    stream: &str,
    p: u32,
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
) -> Vec<Ack> {
    produce_published(stream, p, endpoints, stop, acked, None).await
}

/// [`produce`], also publishing every acknowledged record to `latest` (for read probes).
pub async fn produce_published(
    stream: &str,
    p: u32,
    endpoints: Vec<String>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    latest: Option<Arc<LatestAcks>>,
) -> Vec<Ack> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(p) * 7919);
    let mut acks = Vec::new();
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if PAUSED.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let endpoint = &endpoints[rng.random_range(0..endpoints.len())];
        let Ok(mut client) = super::streams_client(endpoint).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let n: u64 = rng.random_range(1..=100);
        // Every attempt uses fresh ids, so a stored duplicate can only come from the server.
        let first = next;
        next += n;
        let records = (first..first + n)
            .map(|c| super::entry(&format!("k{p}-{}", c % 16), data(p, c)))
            .collect();
        let sent_after = acked.load(Ordering::SeqCst);
        let put = client.put_records(pb::PutRecordsRequest {
            stream_name: stream.into(),
            records,
        });
        if let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(15), put).await {
            let from = acks.len();
            let mut done = 0;
            for (i, r) in resp.into_inner().records.into_iter().enumerate() {
                if r.error_code.is_empty() {
                    acks.push(Ack {
                        id: (p, first + i as u64),
                        shard: r.shard_id,
                        seq: r.sequence_number,
                        sent_after,
                        done: 0,
                    });
                    done = acked.fetch_add(1, Ordering::SeqCst) + 1;
                }
            }
            for a in &mut acks[from..] {
                a.done = done;
                if let Some(latest) = &latest {
                    latest.publish(&a.shard, &a.seq, a.id);
                }
            }
        }
    }
    acks
}

pub fn parse_id(data: &[u8]) -> (u32, u64) {
    let s = std::str::from_utf8(data).expect("utf-8 record");
    let mut it = s.splitn(3, ':');
    let p = it.next().unwrap().parse().unwrap();
    let c = it.next().unwrap().parse().unwrap();
    (p, c)
}

pub async fn wait_progress(acked: &AtomicU64, beyond: u64, cluster: &Cluster) -> Duration {
    let start = Instant::now();
    while acked.load(Ordering::SeqCst) <= beyond {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no acknowledged write for 60 s; logs:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Every stored record (by shard, in read order) is intact, stored once, in increasing
/// sequence order within its shard, and every acknowledged record is stored where its
/// acknowledgement said. Returns where each record is stored: id -> (shard, sequence number).
pub fn check_exactly_once(
    stored: &BTreeMap<String, Vec<pb::Record>>,
    acks: &[Ack],
) -> HashMap<(u32, u64), (String, String)> {
    let mut where_stored: HashMap<(u32, u64), (String, String)> = HashMap::new();
    for (shard, records) in stored {
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
    if let Some(violation) = ack_order_violation(acks) {
        panic!("{violation}");
    }
    for a in acks {
        let Some((shard, seq)) = where_stored.get(&a.id) else {
            panic!("acknowledged record {:?} was lost", a.id)
        };
        assert_eq!((shard, seq), (&a.shard, &a.seq), "record {:?} moved", a.id);
    }
    where_stored
}

/// Acknowledgements alone, before looking at the stored data: no two records were acknowledged
/// at the same sequence number of a shard (two leaders handing out the same position), and
/// sequence numbers never went backwards in real time: a request sent after another was
/// acknowledged got higher sequence numbers in every shard both wrote to (a deposed leader
/// acknowledging an append the new leader's log does not order after the acknowledged ones
/// breaks this). Returns the first violation found.
pub fn ack_order_violation(acks: &[Ack]) -> Option<String> {
    // Per shard, per request: (sent_after, done, lowest and highest sequence number).
    type Span<'a> = (u64, u64, &'a str, &'a str);
    let mut by_shard: BTreeMap<&str, BTreeMap<u64, Span>> = BTreeMap::new();
    let mut positions: HashMap<(&str, &str), (u32, u64)> = HashMap::new();
    for a in acks {
        if let Some(other) = positions.insert((&a.shard, &a.seq), a.id) {
            return Some(format!(
                "records {other:?} and {:?} were both acknowledged at {} {}",
                a.id, a.shard, a.seq
            ));
        }
        // A request is identified by `done`: the count only its last acknowledgement reached.
        let span = by_shard.entry(&a.shard).or_default().entry(a.done).or_insert((
            a.sent_after,
            a.done,
            &a.seq,
            &a.seq,
        ));
        if seq_cmp(&a.seq, span.2).is_lt() {
            span.2 = &a.seq;
        }
        if seq_cmp(&a.seq, span.3).is_gt() {
            span.3 = &a.seq;
        }
    }
    for (shard, requests) in by_shard {
        let mut spans: Vec<Span> = requests.into_values().collect();
        spans.sort_by_key(|s| s.1);
        // highest[k]: the highest sequence number acknowledged by spans[..=k].
        let mut highest: Vec<&str> = Vec::with_capacity(spans.len());
        for s in &spans {
            let prev = highest.last().copied().unwrap_or(s.3);
            highest.push(if seq_cmp(s.3, prev).is_gt() { s.3 } else { prev });
        }
        for s in &spans {
            let before = spans.partition_point(|o| o.1 <= s.0);
            if before > 0 && !seq_cmp(highest[before - 1], s.2).is_lt() {
                return Some(format!(
                    "{shard}: a request sent after {} was acknowledged got {} (went backwards)",
                    highest[before - 1],
                    s.2
                ));
            }
        }
    }
    None
}

/// Reads every shard from trim horizon through every endpoint (each once it serves the
/// stream); all must read the same sequence numbers. Returns the records by shard.
pub async fn read_agreeing(
    endpoints: &[String],
    stream: &str,
    shards: &[String],
) -> BTreeMap<String, Vec<pb::Record>> {
    let mut reference: Option<BTreeMap<String, Vec<pb::Record>>> = None;
    for endpoint in endpoints {
        wait_ready(endpoint, stream).await;
        let mut client = super::streams_client(endpoint).await.unwrap();
        let mut per_shard = BTreeMap::new();
        for shard in shards {
            per_shard.insert(shard.clone(), super::read_shard(&mut client, stream, shard).await);
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
    reference.unwrap_or_default()
}
