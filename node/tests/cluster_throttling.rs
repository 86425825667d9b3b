//! Per-shard limits hold for the whole cluster, not per node: three real `runnel-node cluster`
//! processes, a PROVISIONED one-shard stream, and clients talking to all three nodes' Kinesis
//! endpoints at once (`aws-sdk-kinesis`, no retries). The shard's leader admits every write
//! and read of the shard, so what the three get together stays within one shard's budget.
//!
//! Bounds never depend on how fast the machine is: the concurrent checks bound what passed by
//! `rate × elapsed + burst` (with 1.5× slack; per-node buckets would let about 3× pass), and
//! the others put the shard into debt for seconds with one large record or read, after which
//! every node must refuse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::types::ShardIteratorType;
use support::cluster::Cluster;
use support::sdk::client_for_port_without_retries;

const WRITE_RECORDS_PER_SEC: f64 = 100.0;
const WRITE_BYTES_PER_SEC: usize = 20 << 10;
const READ_CALLS_PER_SEC: f64 = 2.0;
const READ_BYTES_PER_SEC: usize = 20 << 10;
/// GetShardIterator calls per shard and window; the window is an hour, so within the test
/// exactly this many pass per shard.
const ITERATORS_PER_SHARD: usize = 4;
/// How long the concurrent writers and readers run.
const WRITING: Duration = Duration::from_secs(6);
const READING: Duration = Duration::from_secs(5);
const SLACK: f64 = 1.5;
const THROTTLED: &str = "ProvisionedThroughputExceededException";
const SHARD: &str = "shardId-000000000000";
const ACCOUNT: &str = "000000000000";

fn node_args() -> Vec<String> {
    let limits = [
        ("--shard-write-records-per-sec", WRITE_RECORDS_PER_SEC.to_string()),
        ("--shard-write-bytes-per-sec", WRITE_BYTES_PER_SEC.to_string()),
        ("--shard-read-calls-per-sec", READ_CALLS_PER_SEC.to_string()),
        ("--shard-read-bytes-per-sec", READ_BYTES_PER_SEC.to_string()),
        ("--shard-burst-ms", "1000".to_string()),
        ("--api-rate-window-ms", "3600000".to_string()),
        (
            "--api-rate-limit",
            format!(
                "GetShardIterator={ITERATORS_PER_SHARD},DescribeStream=0,DescribeStreamSummary=0,ListShards=0,ListStreams=0"
            ),
        ),
    ];
    limits
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_string(), value])
        .collect()
}

async fn start() -> (Cluster, Vec<Client>) {
    let args = node_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with(3, &args);
    let clients = cluster
        .members
        .iter()
        .map(|m| client_for_port_without_retries(m.kinesis))
        .collect();
    (cluster, clients)
}

/// Creates PROVISIONED one-shard streams (each with buckets of its own) and waits until every
/// node serves them.
async fn create(cluster: &Cluster, clients: &[Client], streams: &[&str]) {
    for stream in streams {
        cluster.create_stream(0, stream, 1).await;
    }
    for stream in streams {
        for endpoint in cluster.endpoints() {
            support::cluster::wait_ready(&endpoint, stream).await;
        }
        for c in clients {
            support::sdk::wait_active(c, stream).await;
        }
    }
}

/// The pause between a client's calls: the offered load stays far above the limits (hundreds
/// of records and calls per second) without taking the machine's every cycle.
const PAUSE: Duration = Duration::from_millis(10);

/// GetRecords refused on `stream`, counted over the cluster (ReadProvisionedThroughputExceeded).
async fn read_refusals(cluster: &Cluster, stream: &str) -> f64 {
    let name = "runnel_read_provisioned_throughput_exceeded_total";
    cluster.metric_sum(name, &format!("stream=\"{stream}\"")).await
}

fn entries(n: usize, len: usize) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .data(Blob::new(vec![b'x'; len]))
                .build()
                .unwrap()
        })
        .collect()
}

async fn put(c: &Client, stream: &str, len: usize) -> Result<(), (String, String)> {
    c.put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(vec![b'y'; len]))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            (
                e.code().unwrap_or_default().into(),
                e.message().unwrap_or_default().into(),
            )
        })
}

async fn iterator(c: &Client, stream: &str) -> Result<String, (String, String)> {
    c.get_shard_iterator()
        .stream_name(stream)
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map(|r| r.shard_iterator().unwrap().to_string())
        .map_err(|e| {
            (
                e.code().unwrap_or_default().into(),
                e.message().unwrap_or_default().into(),
            )
        })
}

fn write_message(stream: &str) -> String {
    format!("Rate exceeded for shard {SHARD} in stream {stream} under account {ACCOUNT}.")
}

/// What one writer saw: entries accepted and throttled, and when it started and stopped.
struct Writes {
    accepted: u64,
    throttled: u64,
    started: Instant,
    ended: Instant,
}

/// Sends PutRecords of 200 small records through `c` for [`WRITING`], back to back.
async fn write_for(c: Client, stream: &'static str) -> Writes {
    let started = Instant::now();
    let (mut accepted, mut throttled) = (0, 0);
    while started.elapsed() < WRITING {
        let r = c
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries(200, 10)))
            .send()
            .await
            .unwrap();
        for e in r.records() {
            match e.error_code() {
                None => accepted += 1,
                Some(code) => {
                    assert_eq!(code, THROTTLED, "{e:?}");
                    assert_eq!(e.error_message(), Some(write_message(stream).as_str()));
                    throttled += 1;
                }
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
    Writes {
        accepted,
        throttled,
        started,
        ended: Instant::now(),
    }
}

/// GetRecords calls through `c` for [`READING`]: (admitted, throttled, started, ended).
async fn read_for(c: Client, stream: &'static str, it: String) -> (u64, u64, Instant, Instant) {
    let started = Instant::now();
    let (mut ok, mut throttled) = (0, 0);
    while started.elapsed() < READING {
        match c.get_records().shard_iterator(&it).send().await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code(), Some(THROTTLED), "{e:?}");
                assert_eq!(
                    e.message(),
                    Some(format!("Rate exceeded for Shard - {ACCOUNT}/{stream}/{SHARD}").as_str())
                );
                throttled += 1;
            }
        }
        tokio::time::sleep(PAUSE).await;
    }
    (ok, throttled, started, Instant::now())
}

#[tokio::test]
async fn per_shard_limits_are_enforced_by_the_shard_leader_for_every_node() {
    let (cluster, clients) = start().await;
    create(&cluster, &clients, &["w", "debt", "gsi", "r", "rc"]).await;

    // Writes through all three nodes at once share the shard's 100 records/s.
    let writers: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(write_for(c.clone(), "w")))
        .collect();
    let mut writes = Vec::new();
    for w in writers {
        writes.push(w.await.unwrap());
    }
    let accepted: u64 = writes.iter().map(|w| w.accepted).sum();
    let throttled: u64 = writes.iter().map(|w| w.throttled).sum();
    let first = writes.iter().map(|w| w.started).min().unwrap();
    let last = writes.iter().map(|w| w.ended).max().unwrap();
    let elapsed = last.duration_since(first).as_secs_f64();
    let budget = WRITE_RECORDS_PER_SEC * elapsed + WRITE_RECORDS_PER_SEC;
    println!(
        "writes: {accepted} accepted, {throttled} throttled in {elapsed:.1} s (budget {budget:.0}); per node {:?}",
        writes.iter().map(|w| w.accepted).collect::<Vec<_>>()
    );
    assert!(
        accepted as f64 <= budget * SLACK,
        "{accepted} records accepted in {elapsed:.1} s, over one shard's budget of {budget:.0} (×{SLACK})"
    );
    // The first second's burst passes whatever the machine's speed.
    assert!(accepted as f64 >= WRITE_RECORDS_PER_SEC, "{accepted} accepted");
    assert!(throttled > 0);
    // Each refusal and each accepted record is counted once, by the node that answered it.
    let stream = "stream=\"w\"";
    assert_eq!(
        cluster
            .metric_sum("runnel_write_provisioned_throughput_exceeded_total", stream)
            .await,
        throttled as f64
    );
    assert_eq!(
        cluster.metric_sum("runnel_incoming_records_total", stream).await,
        accepted as f64
    );

    // A record far over a second of bytes passes on an idle shard through node 1 and leaves
    // the shard in debt for ~9 s: nodes 2 and 3 refuse writes too.
    put(&clients[0], "debt", 200 << 10).await.unwrap();
    for c in &clients[1..] {
        assert_eq!(
            put(c, "debt", 10).await,
            Err((THROTTLED.to_string(), write_message("debt")))
        );
    }

    // GetShardIterator: 4 per shard (per hour here) for the whole cluster.
    let mut passed = 0;
    for i in 0..9 {
        match iterator(&clients[i % 3], "gsi").await {
            Ok(_) => passed += 1,
            Err(e) => assert_eq!(
                e,
                (THROTTLED.to_string(), write_message("gsi")),
                "GetShardIterator through node {}",
                i % 3 + 1
            ),
        }
    }
    assert_eq!(passed, ITERATORS_PER_SHARD);
    let gsi = "operation=\"GetShardIterator\"";
    assert_eq!(
        cluster.metric_sum("runnel_api_calls_throttled_total", gsi).await,
        (9 - ITERATORS_PER_SHARD) as f64
    );

    // A 200 KiB read through node 1 puts the shard's reads ~9 s into debt: GetRecords through
    // nodes 2 and 3 are refused.
    put(&clients[0], "r", 200 << 10).await.unwrap();
    let its = [
        iterator(&clients[0], "r").await.unwrap(),
        iterator(&clients[1], "r").await.unwrap(),
        iterator(&clients[2], "r").await.unwrap(),
    ];
    let got = clients[0]
        .get_records()
        .shard_iterator(&its[0])
        .send()
        .await
        .unwrap();
    assert_eq!(got.records().len(), 1);
    for (c, it) in clients[1..].iter().zip(&its[1..]) {
        let err = c.get_records().shard_iterator(it).send().await.unwrap_err();
        assert_eq!(err.code(), Some(THROTTLED));
        assert_eq!(
            err.message(),
            Some(format!("Rate exceeded for Shard - {ACCOUNT}/r/{SHARD}").as_str())
        );
    }
    assert_eq!(read_refusals(&cluster, "r").await, 2.0);

    // GetRecords through all three nodes at once share the shard's 2 calls/s.
    put(&clients[0], "rc", 10).await.unwrap();
    let mut readers = Vec::new();
    for c in &clients {
        let it = iterator(c, "rc").await.unwrap();
        readers.push(tokio::spawn(read_for(c.clone(), "rc", it)));
    }
    let mut reads = Vec::new();
    for r in readers {
        reads.push(r.await.unwrap());
    }
    let ok: u64 = reads.iter().map(|r| r.0).sum();
    let refused: u64 = reads.iter().map(|r| r.1).sum();
    let first = reads.iter().map(|r| r.2).min().unwrap();
    let last = reads.iter().map(|r| r.3).max().unwrap();
    let elapsed = last.duration_since(first).as_secs_f64();
    let budget = READ_CALLS_PER_SEC * elapsed + READ_CALLS_PER_SEC;
    println!("reads: {ok} admitted, {refused} throttled in {elapsed:.1} s (budget {budget:.0})");
    assert!(
        ok as f64 <= budget * SLACK,
        "{ok} GetRecords admitted in {elapsed:.1} s, over one shard's budget of {budget:.0} (×{SLACK})"
    );
    assert!(
        ok as f64 >= READ_CALLS_PER_SEC && refused > 0,
        "{ok} admitted, {refused} refused"
    );
    assert_eq!(read_refusals(&cluster, "rc").await, refused as f64);
}
