//! Per-shard throttling and usage accounting through the official Rust SDK (`aws-sdk-kinesis`)
//! against a real `runnel-node standalone` started with small limits.
//!
//! No outcome depends on how fast the machine is: every throttling case exceeds its limit by a
//! wide margin in one burst — a single PutRecords admits at one instant, and a record or read
//! far larger than a second of budget leaves the shard in debt for many seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::types::StreamMode;
use aws_sdk_kinesis::types::StreamModeDetails;
use support::Node;
use support::sdk::client_without_retries as client;
use support::sdk::trim_horizon;

/// 10 records/s and 10 KiB/s of writes, 2 calls/s and 10 KiB/s of reads per shard.
const SMALL_LIMITS: &[&str] = &[
    "--shard-write-records-per-sec",
    "10",
    "--shard-write-bytes-per-sec",
    "10240",
    "--shard-read-calls-per-sec",
    "2",
    "--shard-read-bytes-per-sec",
    "10240",
];
const THROTTLED: &str = "ProvisionedThroughputExceededException";

async fn create(c: &Client, name: &str, shards: Option<i32>) {
    let req = c.create_stream().stream_name(name);
    let req = match shards {
        Some(n) => req.shard_count(n),
        None => req.stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        ),
    };
    req.send().await.unwrap();
    use aws_sdk_kinesis::client::Waiters;
    c.wait_until_stream_exists()
        .stream_name(name)
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
}

fn entry(key: &str, len: usize) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(vec![b'x'; len]))
        .build()
        .unwrap()
}

fn entry_to(hash_key: &str, len: usize) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key("k")
        .explicit_hash_key(hash_key)
        .data(Blob::new(vec![b'x'; len]))
        .build()
        .unwrap()
}

/// The value of `name{stream="..."}` in a Prometheus text page (0 when absent).
fn metric(page: &str, name: &str, stream: &str) -> f64 {
    let prefix = format!("{name}{{stream=\"{stream}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn put_records_fails_only_the_entries_over_each_shards_budget() {
    let node = Node::start_with(SMALL_LIMITS).await;
    let c = client(&node);
    create(&c, "w", Some(1)).await;
    // 100 records in one call to an idle shard allowed 10 records/s: the first 10 are taken.
    let entries: Vec<_> = (0..100).map(|i| entry(&format!("k{i}"), 10)).collect();
    let r = c
        .put_records()
        .stream_name("w")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(r.failed_record_count(), Some(90));
    assert_eq!(r.records().len(), 100);
    for (i, e) in r.records().iter().enumerate() {
        if i < 10 {
            assert_eq!(e.shard_id(), Some("shardId-000000000000"), "entry {i}: {e:?}");
            assert!(e.sequence_number().is_some() && e.error_code().is_none());
        } else {
            assert_eq!(e.error_code(), Some(THROTTLED), "entry {i}: {e:?}");
            assert_eq!(
                e.error_message(),
                Some("Rate exceeded for shard shardId-000000000000 in stream w under account 000000000000."),
            );
            assert!(e.sequence_number().is_none() && e.shard_id().is_none());
        }
    }

    // Shards have separate budgets: 30 records to each of two shards, 10 + 10 taken.
    create(&c, "w2", Some(2)).await;
    let upper = (1u128 << 127).to_string();
    let entries: Vec<_> = (0..60)
        .map(|i| entry_to(if i % 2 == 0 { "0" } else { &upper }, 10))
        .collect();
    let r = c
        .put_records()
        .stream_name("w2")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(r.failed_record_count(), Some(40));
    let ok: Vec<&str> = r.records().iter().filter_map(|e| e.shard_id()).collect();
    assert_eq!(ok.iter().filter(|s| **s == "shardId-000000000000").count(), 10);
    assert_eq!(ok.iter().filter(|s| **s == "shardId-000000000001").count(), 10);
    for e in r.records().iter().filter(|e| e.error_code().is_some()) {
        let msg = e.error_message().unwrap();
        assert!(
            msg == "Rate exceeded for shard shardId-000000000000 in stream w2 under account 000000000000."
                || msg
                    == "Rate exceeded for shard shardId-000000000001 in stream w2 under account 000000000000.",
            "{msg}"
        );
    }

    let page = node.metrics().await;
    let exceeded = "runnel_write_provisioned_throughput_exceeded_total";
    assert_eq!(metric(&page, exceeded, "w"), 90.0, "{page}");
    assert_eq!(metric(&page, exceeded, "w2"), 40.0);
    assert_eq!(metric(&page, "runnel_incoming_records_total", "w"), 10.0);
    // Throttled entries are not internal failures.
    assert_eq!(metric(&page, "runnel_put_records_failed_records_total", "w"), 0.0);
}

#[tokio::test]
async fn put_record_answers_the_exception_while_the_shard_is_over_budget() {
    let node = Node::start_with(SMALL_LIMITS).await;
    let c = client(&node);
    create(&c, "p", Some(1)).await;
    // A 100 KiB record passes on an idle shard allowed 10 KiB/s and leaves ~9 s of debt.
    c.put_record()
        .stream_name("p")
        .partition_key("a")
        .data(Blob::new(vec![1u8; 100 << 10]))
        .send()
        .await
        .unwrap();
    let err = c
        .put_record()
        .stream_name("p")
        .partition_key("a")
        .data(Blob::new(vec![1u8; 10]))
        .send()
        .await
        .unwrap_err();
    let status = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(400));
    assert_eq!(err.code(), Some(THROTTLED));
    assert_eq!(
        err.message(),
        Some("Rate exceeded for shard shardId-000000000000 in stream p under account 000000000000.")
    );
    let page = node.metrics().await;
    assert_eq!(
        metric(&page, "runnel_write_provisioned_throughput_exceeded_total", "p"),
        1.0
    );
}

#[tokio::test]
async fn get_records_is_throttled_by_calls_and_by_bytes() {
    let node = Node::start_with(SMALL_LIMITS).await;
    let c = client(&node);
    create(&c, "r", Some(1)).await;
    c.put_record()
        .stream_name("r")
        .partition_key("a")
        .data(Blob::new(vec![1u8; 100 << 10]))
        .send()
        .await
        .unwrap();
    // Reading the 100 KiB record puts the shard ~9 s into read debt (10 KiB/s).
    let it = trim_horizon(&c, "r", "shardId-000000000000").await;
    let got = c.get_records().shard_iterator(&it).send().await.unwrap();
    assert_eq!(got.records().len(), 1);
    let next = got.next_shard_iterator().unwrap();
    let err = c.get_records().shard_iterator(next).send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(err.code(), Some(THROTTLED));
    assert_eq!(
        err.message(),
        Some("Rate exceeded for Shard - 000000000000/r/shardId-000000000000")
    );

    // Calls: 30 GetRecords on an empty shard allowed 2 calls/s (a burst of 2).
    create(&c, "r2", Some(1)).await;
    let it = trim_horizon(&c, "r2", "shardId-000000000000").await;
    let started = Instant::now();
    let (mut ok, mut throttled) = (0u32, 0u32);
    for _ in 0..30 {
        match c.get_records().shard_iterator(&it).send().await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Some(THROTTLED));
                throttled += 1;
            }
        }
    }
    // However long the calls took, no more than the burst plus the refill passed.
    let allowed = 2 + 2 * started.elapsed().as_secs_f64().ceil() as u32;
    assert!(
        ok >= 2 && ok <= allowed,
        "{ok} calls passed, at most {allowed} allowed"
    );
    let page = node.metrics().await;
    let exceeded = "runnel_read_provisioned_throughput_exceeded_total";
    assert_eq!(metric(&page, exceeded, "r"), 1.0);
    assert_eq!(metric(&page, exceeded, "r2"), f64::from(throttled));
    assert!(throttled >= 1);
}

#[tokio::test]
async fn on_demand_streams_are_not_throttled() {
    let node = Node::start_with(SMALL_LIMITS).await;
    let c = client(&node);
    create(&c, "od", None).await;
    let entries: Vec<_> = (0..500).map(|i| entry(&format!("k{i}"), 100)).collect();
    let r = c
        .put_records()
        .stream_name("od")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(r.failed_record_count(), Some(0));
    for _ in 0..3 {
        c.put_record()
            .stream_name("od")
            .partition_key("a")
            .data(Blob::new(vec![1u8; 100 << 10]))
            .send()
            .await
            .unwrap();
    }
    let shard = c.list_shards().stream_name("od").send().await.unwrap().shards()[0]
        .shard_id()
        .to_string();
    let it = trim_horizon(&c, "od", &shard).await;
    for _ in 0..20 {
        c.get_records().shard_iterator(&it).send().await.unwrap();
    }
    let page = node.metrics().await;
    assert_eq!(
        metric(&page, "runnel_write_provisioned_throughput_exceeded_total", "od"),
        0.0
    );
    assert_eq!(
        metric(&page, "runnel_read_provisioned_throughput_exceeded_total", "od"),
        0.0
    );
}

#[tokio::test]
async fn usage_metrics_count_bytes_payload_units_and_shard_hours() {
    let node = Node::start().await;
    let c = client(&node);
    let created = Instant::now();
    create(&c, "u", Some(2)).await;
    // Sizes (data + partition key "k"): 100, 25,600 (1 unit), 25,601 (2), 1 MiB (41).
    let sizes = [100usize, 25_600, 25_601, 1 << 20];
    for size in sizes {
        c.put_record()
            .stream_name("u")
            .partition_key("k")
            .explicit_hash_key("0")
            .data(Blob::new(vec![7u8; size - 1]))
            .send()
            .await
            .unwrap();
    }
    let total: usize = sizes.iter().sum();
    let it = trim_horizon(&c, "u", "shardId-000000000000").await;
    let mut read = 0;
    let mut it = Some(it);
    while let Some(i) = it.take() {
        let got = c.get_records().shard_iterator(i).send().await.unwrap();
        if got.records().is_empty() {
            break;
        }
        read += got.records().len();
        it = got.next_shard_iterator().map(str::to_string);
    }
    assert_eq!(read, 4);
    let page = node.metrics().await;
    assert_eq!(metric(&page, "runnel_usage_bytes_in_total", "u"), total as f64);
    assert_eq!(metric(&page, "runnel_incoming_bytes_total", "u"), total as f64);
    assert_eq!(metric(&page, "runnel_usage_put_payload_units_total", "u"), 45.0);
    assert_eq!(metric(&page, "runnel_usage_bytes_out_total", "u"), total as f64);
    // Per shard (what the operator's autoscaler reads): all went to and came from shard 0.
    let shard = |name: &str, shard: &str| {
        let prefix = format!("{name}{{shard=\"{shard}\",stream=\"u\"}} ");
        page.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.trim().parse::<f64>().unwrap())
    };
    let s0 = "shardId-000000000000";
    assert_eq!(shard("runnel_shard_incoming_bytes_total", s0), total as f64);
    assert_eq!(shard("runnel_shard_incoming_records_total", s0), 4.0);
    assert_eq!(shard("runnel_shard_outgoing_bytes_total", s0), total as f64);
    assert_eq!(
        shard("runnel_shard_outgoing_bytes_total", "shardId-000000000001"),
        0.0
    );

    // Shard-hours accrue every stats interval (5 s): wait until they show, then check that
    // they never exceed 2 shards × the time since the stream was created.
    let mut hours = 0.0;
    for _ in 0..300 {
        let page = node.metrics().await;
        hours = metric(&page, "runnel_usage_shard_hours_total", "u");
        if hours > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // (+10 ms: the node counts in whole wall-clock milliseconds.)
    let bound = 2.0 * (created.elapsed().as_secs_f64() + 0.01) / 3600.0;
    assert!(
        hours > 0.0 && hours <= bound,
        "{hours} shard-hours, at most {bound}"
    );
}

#[tokio::test]
async fn the_hottest_hash_key_of_a_shard_is_reported_per_window() {
    let node = Node::start_with(&["--throttling", "off", "--stats-refresh-ms", "200"]).await;
    let c = client(&node);
    create(&c, "hot", Some(1)).await;
    let hot = runnel_node::model::hash_key::partition_key_hash("customer-42");
    let series = format!(
        "runnel_shard_hot_key_bytes{{hash_key=\"{hot}\",shard=\"shardId-000000000000\",stream=\"hot\"}} "
    );
    // Keep writing (3 of 4 records to one key) until a window that ended shows it: each window
    // reports only the writes made in it.
    let mut seen = None;
    for round in 0..300 {
        let entries: Vec<_> = (0..8)
            .map(|i| {
                let key = if i % 4 == 3 {
                    format!("other-{round}-{i}")
                } else {
                    "customer-42".to_string()
                };
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(vec![1u8; 100]))
                    .build()
                    .unwrap()
            })
            .collect();
        c.put_records()
            .stream_name("hot")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        let page = node.metrics().await;
        let value = |prefix: &str| {
            page.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(|v| v.trim().parse::<f64>().unwrap())
        };
        let window = "runnel_shard_window_bytes{shard=\"shardId-000000000000\",stream=\"hot\"} ";
        if let (Some(key_bytes), Some(total)) = (value(&series), value(window)) {
            seen = Some((key_bytes, total));
            break;
        }
    }
    let (key_bytes, total) = seen.expect("the hot key never showed");
    // At least half of the window's bytes (3/4 in truth, counted as a lower bound).
    assert!(
        key_bytes * 2.0 >= total && key_bytes <= total,
        "{key_bytes} of {total}"
    );
}
