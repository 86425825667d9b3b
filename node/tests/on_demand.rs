//! ON_DEMAND capacity against a real `runnel-node`: a shard that stays hot is split by the node
//! itself (up to the configured maximum of open shards), a PROVISIONED stream under the same
//! load is left alone, and every acknowledged record is still read back once; idle shards are
//! merged down to the configured minimum while a stream with traffic in every shard is not.
//! The thresholds are lowered by flags so that a test-sized load counts as hot (and only a
//! window without writes as cold); nothing asserts durations. The last test does both on a
//! 3-node cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::types::Shard;
use aws_sdk_kinesis::types::ShardIteratorType;
use support::Node;
use support::cluster::Cluster;
use support::sdk::client;
use support::sdk::client_for_port;
use support::sdk::create_active;
use support::sdk::create_on_demand;

/// Hot: 20 records/s for 6 s; no cooldown; splits up to 6 open shards.
const HOT: &[&str] = &[
    "--hot-shard-records-per-sec",
    "20",
    "--hot-shard-sustained-secs",
    "6",
    "--hot-shard-cooldown-secs",
    "0",
    "--on-demand-max-shards",
    "6",
];
/// Cold: no write at all in a window (thresholds 0), for 10 s; no cooldown; merges down to 2
/// open shards.
const COLD: &[&str] = &[
    "--cold-shard-bytes-per-sec",
    "0",
    "--cold-shard-records-per-sec",
    "0",
    "--cold-shard-sustained-secs",
    "10",
    "--cold-shard-cooldown-secs",
    "0",
    "--on-demand-min-shards",
    "2",
];

/// Puts the batches `batch(n)` to `stream`, one every `pause`, until `stop`; counts the
/// acknowledged records in `acked`.
async fn keep_writing(
    c: Client,
    stream: &'static str,
    batch: fn(u64) -> Vec<PutRecordsRequestEntry>,
    pause: Duration,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let out = c
            .put_records()
            .stream_name(stream)
            .set_records(Some(batch(n)))
            .send()
            .await
            .unwrap();
        acked.fetch_add(
            out.records()
                .iter()
                .filter(|r| r.sequence_number().is_some())
                .count(),
            Ordering::Relaxed,
        );
        n += 1;
        tokio::time::sleep(pause).await;
    }
}

/// 50 records with one partition key, every 20 ms, until `stop`.
async fn hot_key(c: Client, stream: &'static str, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) {
    let batch = |n| {
        (0..50)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key("the-hot-key")
                    .data(Blob::new(format!("{n}-{i}")))
                    .build()
                    .unwrap()
            })
            .collect()
    };
    keep_writing(c, stream, batch, Duration::from_millis(20), stop, acked).await;
}

async fn shards(c: &Client, stream: &str) -> Vec<Shard> {
    c.list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards()
        .to_vec()
}

fn open(shards: &[Shard]) -> usize {
    shards
        .iter()
        .filter(|s| {
            s.sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .is_none()
        })
        .count()
}

async fn count_records(c: &Client, stream: &str) -> usize {
    let mut total = 0;
    for s in shards(c, stream).await {
        let it = c
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let mut iterator = it.shard_iterator().map(str::to_string);
        while let Some(i) = iterator {
            let out = c.get_records().shard_iterator(&i).send().await.unwrap();
            total += out.records().len();
            iterator = match out.next_shard_iterator() {
                Some(_) if out.records().is_empty() && out.millis_behind_latest() == Some(0) => None,
                next => next.map(str::to_string),
            };
        }
    }
    total
}

#[tokio::test]
async fn a_hot_on_demand_shard_is_split_by_the_node() {
    let node = Node::start_with(&[&["--throttling", "off"], HOT].concat()).await;
    let c = client(&node);
    create_on_demand(&c, "od").await;
    create_active(&c, "prov", 1).await;
    assert_eq!(open(&shards(&c, "od").await), 4);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writers = [
        tokio::spawn(hot_key(c.clone(), "od", stop.clone(), acked.clone())),
        tokio::spawn(hot_key(
            c.clone(),
            "prov",
            stop.clone(),
            Arc::new(AtomicUsize::new(0)),
        )),
    ];
    // The shard holding the hot key splits, then its hot child, up to 6 open shards.
    let mut split = false;
    for _ in 0..1200 {
        let s = shards(&c, "od").await;
        if open(&s) == 6 {
            split = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(split, "no split; log:\n{}", node.log());
    support::sdk::wait_active(&c, "od").await;
    let s = shards(&c, "od").await;
    assert_eq!(open(&s), 6, "the maximum holds");
    assert_eq!(s.len(), 8, "two splits: {s:?}");
    // The second split was of a child of the first.
    assert_eq!(s[4].parent_shard_id(), s[5].parent_shard_id());
    assert_eq!(s[6].parent_shard_id(), s[7].parent_shard_id());
    let second = s[6].parent_shard_id().unwrap();
    assert!(second == s[4].shard_id() || second == s[5].shard_id(), "{s:?}");
    assert_eq!(
        shards(&c, "prov").await.len(),
        1,
        "PROVISIONED streams are never split"
    );
    let metrics = node.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "runnel_on_demand_splits_total{stream=\"od\"} 2"),
        "{metrics}"
    );
    // The open-shard gauge (refreshed every 5 s) follows the catalog: closed parents are not
    // counted, the children are.
    let gauge = "runnel_stream_open_shards{stream=\"od\"} 6";
    let mut seen = false;
    for _ in 0..300 {
        if node.metrics().await.lines().any(|l| l == gauge) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "{gauge} never exported");
    assert_eq!(count_records(&c, "od").await, acked.load(Ordering::Relaxed));
}

/// The hash key of the middle of shard `i` of a stream created with 4 shards.
fn key_of_shard(i: u128) -> String {
    (i * (1u128 << 126) + (1u128 << 125)).to_string()
}

/// One record to each of the 4 initial shards of `stream`, every 200 ms, until `stop`.
async fn every_shard(c: Client, stream: &'static str, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) {
    let batch = |n| {
        (0..4)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .explicit_hash_key(key_of_shard(i))
                    .data(Blob::new(format!("{n}-{i}")))
                    .build()
                    .unwrap()
            })
            .collect()
    };
    keep_writing(c, stream, batch, Duration::from_millis(200), stop, acked).await;
}

#[tokio::test]
async fn idle_on_demand_shards_are_merged_down_to_the_minimum() {
    let node = Node::start_with(&[&["--throttling", "off"], COLD].concat()).await;
    let c = client(&node);
    create_on_demand(&c, "idle").await;
    create_on_demand(&c, "busy").await;
    // Records in every shard of the idle stream before it goes idle.
    let before = 40;
    for n in 0..before / 4 {
        for i in 0..4 {
            c.put_record()
                .stream_name("idle")
                .partition_key("k")
                .explicit_hash_key(key_of_shard(i))
                .data(Blob::new(format!("before-{n}-{i}")))
                .send()
                .await
                .unwrap();
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(every_shard(c.clone(), "busy", stop.clone(), acked.clone()));

    // Two merges (one per 5 s window at most) take the idle stream from 4 to 2 open shards.
    let mut merged = false;
    for _ in 0..1200 {
        let s = shards(&c, "idle").await;
        if open(&s) == 2 && s.len() == 6 {
            merged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(merged, "not merged; log:\n{}", node.log());
    support::sdk::wait_active(&c, "idle").await;
    // Counted once MergeShards returned, which may be just after the children opened.
    let counted = "runnel_on_demand_merges_total{stream=\"idle\"} 2";
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = node.metrics().await;
        if metrics.lines().any(|l| l == counted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.lines().any(|l| l == counted), "{metrics}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // The stream with traffic in every shard had the same windows and was not merged.
    let busy = shards(&c, "busy").await;
    assert_eq!((busy.len(), open(&busy)), (4, 4), "{busy:?}");
    assert!(
        !metrics.contains("runnel_on_demand_merges_total{stream=\"busy\"}"),
        "{metrics}"
    );
    assert_eq!(count_records(&c, "busy").await, acked.load(Ordering::Relaxed));

    // Lineage: each child names its two parents, adjacent, covering the parents' hash keys.
    let s = shards(&c, "idle").await;
    for child in &s[4..] {
        let parent = child.parent_shard_id().unwrap();
        let adjacent = child.adjacent_parent_shard_id().unwrap();
        let p = s.iter().find(|x| x.shard_id() == parent).unwrap();
        let a = s.iter().find(|x| x.shard_id() == adjacent).unwrap();
        let range = |x: &Shard| {
            let r = x.hash_key_range().unwrap();
            (
                r.starting_hash_key().parse::<u128>().unwrap(),
                r.ending_hash_key().parse::<u128>().unwrap(),
            )
        };
        let (lo, hi) = if range(p).0 < range(a).0 { (p, a) } else { (a, p) };
        assert_eq!(range(lo).1 + 1, range(hi).0, "parents are adjacent");
        assert_eq!(range(child), (range(lo).0, range(hi).1));
    }
    // Every record written before the merges is still read back, through the closed parents;
    // records written now land in the children.
    assert_eq!(count_records(&c, "idle").await, before as usize);
    for i in 0..4 {
        c.put_record()
            .stream_name("idle")
            .partition_key("k")
            .explicit_hash_key(key_of_shard(i))
            .data(Blob::new(format!("after-{i}")))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(count_records(&c, "idle").await, before as usize + 4);
}

/// `runnel_on_demand_<what>_total` for `stream`, summed over the cluster's nodes (each reshard is
/// counted by the node that decided it).
async fn reshards_counted(cluster: &Cluster, what: &str, stream: &str) -> u64 {
    let name = format!("runnel_on_demand_{what}_total");
    cluster.metric_sum(&name, &format!("stream=\"{stream}\"")).await as u64
}

/// Waits (generously) until `stream` has `open` open shards and `total` shards in all.
async fn wait_for_shards(
    c: &Client,
    stream: &str,
    open_shards: usize,
    total: usize,
    logs: impl Fn() -> String,
) {
    for _ in 0..1800 {
        let s = shards(c, stream).await;
        if open(&s) == open_shards && s.len() == total {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{stream} never had {open_shards} open of {total} shards: {:?}; logs:\n{}",
        shards(c, stream).await,
        logs()
    );
}

/// The same on a 3-node cluster (replication factor 3): a hot key written through node 2 gets
/// its shard split twice, up to the maximum of 6 open shards, while light writes through node 3
/// keep the other shards warm; once writes stop, the shards are merged down to the minimum of 2.
/// Each reshard is decided by the node leading the shard (of a pair, the lower one), whichever
/// node took the writes; the lineage is seen alike through every node, and every acknowledged
/// record is read back once, through the closed parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_demand_shards_split_and_merge_on_a_three_node_cluster() {
    let cluster = Cluster::start_with(3, &[&["--throttling", "off"], HOT, COLD].concat());
    // A PROVISIONED stream (never resharded), created once the cluster answers.
    cluster.create_stream(0, "prov", 1).await;
    let clients: Vec<Client> = cluster
        .members
        .iter()
        .map(|m| client_for_port(m.kinesis))
        .collect();
    create_on_demand(&clients[0], "od").await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let writers = [
        tokio::spawn(hot_key(clients[1].clone(), "od", stop.clone(), acked.clone())),
        tokio::spawn(every_shard(clients[2].clone(), "od", stop.clone(), acked.clone())),
        tokio::spawn(hot_key(
            clients[0].clone(),
            "prov",
            stop.clone(),
            Arc::new(AtomicUsize::new(0)),
        )),
    ];
    wait_for_shards(&clients[0], "od", 6, 8, || cluster.logs()).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    support::sdk::wait_active(&clients[0], "od").await;
    assert_eq!(reshards_counted(&cluster, "splits", "od").await, 2);

    // No writes: four merges take the 6 open shards down to 2 (8 + 4 shards in all).
    wait_for_shards(&clients[2], "od", 2, 12, || cluster.logs()).await;
    support::sdk::wait_active(&clients[2], "od").await;
    let mut merges = 0;
    for _ in 0..300 {
        merges = reshards_counted(&cluster, "merges", "od").await;
        if merges == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(merges, 4, "merges counted over the nodes");
    assert_eq!(
        shards(&clients[0], "prov").await.len(),
        1,
        "PROVISIONED streams are never resharded"
    );

    // Every node describes the same lineage; every acknowledged record is read back once.
    let lineage = |s: Vec<Shard>| -> Vec<(String, Option<String>, Option<String>)> {
        s.iter()
            .map(|x| {
                (
                    x.shard_id().to_string(),
                    x.parent_shard_id().map(str::to_string),
                    x.adjacent_parent_shard_id().map(str::to_string),
                )
            })
            .collect()
    };
    let first = lineage(shards(&clients[0], "od").await);
    for c in &clients[1..] {
        assert_eq!(lineage(shards(c, "od").await), first);
    }
    assert_eq!(
        first[8..].iter().filter(|s| s.2.is_some()).count(),
        4,
        "{first:?}"
    );
    assert_eq!(
        count_records(&clients[1], "od").await,
        acked.load(Ordering::Relaxed)
    );
}
