//! ON_DEMAND capacity against a real `runnel-node`: a shard that stays hot is split by the node
//! itself (up to the configured maximum of open shards), a PROVISIONED stream under the same
//! load is left alone, and every acknowledged record is still read back once. The thresholds
//! are lowered by flags so that a test-sized load counts as hot; nothing asserts durations.

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
use support::sdk::client;
use support::sdk::create_active;
use support::sdk::create_on_demand;

/// Puts batches of 50 records with one partition key to `stream` until `stop`.
async fn hot_key(c: Client, stream: &'static str, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let entries = (0..50)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key("the-hot-key")
                    .data(Blob::new(format!("{n}-{i}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = c
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let node = Node::start_with(&[
        "--throttling",
        "off",
        "--hot-shard-records-per-sec",
        "20",
        "--hot-shard-sustained-secs",
        "6",
        "--hot-shard-cooldown-secs",
        "0",
        "--on-demand-max-shards",
        "6",
    ])
    .await;
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
