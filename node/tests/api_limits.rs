//! Per-second limits of API calls (GetShardIterator, SubscribeToShard, RegisterStreamConsumer,
//! DescribeStream, ListShards, ...) through the official Rust SDK (`aws-sdk-kinesis`, without
//! retries) against a real `runnel-node standalone`.
//!
//! Refusals do not depend on the machine's speed: the limits are counted per hour
//! (`--api-rate-window-ms 3600000`), so the call after the allowance is refused however long
//! the calls take. Recovery is shown on a node with a short window: the test only waits for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::types::StartingPosition;
use aws_sdk_kinesis::types::StreamStatus;
use support::Node;
use support::sdk::client_without_retries as client;
use support::sdk::code;

const ACCOUNT: &str = "000000000000";
const LIMIT_EXCEEDED: &str = "LimitExceededException";
const THROTTLED: &str = "ProvisionedThroughputExceededException";

/// Small allowances per hour; the calls the helpers poll with are unlimited.
const PER_HOUR: &[&str] = &[
    "--api-rate-window-ms",
    "3600000",
    "--api-rate-limit",
    "GetShardIterator=2,DescribeStream=1,ListShards=1,RegisterStreamConsumer=2,SubscribeToShard=1",
    "--api-rate-limit",
    "DescribeStreamSummary=0,DescribeStreamConsumer=0,ListStreams=0",
];

/// Creates a stream and waits for ACTIVE with DescribeStreamSummary (DescribeStream, which the
/// SDK's waiter uses, is rationed here).
async fn create(c: &Client, name: &str, shards: i32) {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    for _ in 0..600 {
        let d = c
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if d.stream_description_summary().unwrap().stream_status() == &StreamStatus::Active {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/{name}")
}

async fn shard_iterator(c: &Client, stream: &str, shard: &str) -> Result<String, (String, String, u16)> {
    c.get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .map(|o| o.shard_iterator().unwrap().to_string())
        .map_err(|e| {
            (
                e.code().unwrap_or_default().to_string(),
                e.message().unwrap_or_default().to_string(),
                e.raw_response().map_or(0, |r| r.status().as_u16()),
            )
        })
}

/// The value of `name{operation="..."}` in a Prometheus text page (0 when absent).
fn throttled_calls(page: &str, operation: &str) -> f64 {
    let prefix = format!("runnel_api_calls_throttled_total{{operation=\"{operation}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn get_shard_iterator_is_limited_per_shard() {
    let node = Node::start_with(PER_HOUR).await;
    let c = client(&node);
    create(&c, "gsi", 2).await;
    for _ in 0..2 {
        shard_iterator(&c, "gsi", "shardId-000000000000").await.unwrap();
    }
    let err = shard_iterator(&c, "gsi", "shardId-000000000000")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        (
            THROTTLED.to_string(),
            format!("Rate exceeded for shard shardId-000000000000 in stream gsi under account {ACCOUNT}."),
            400
        )
    );
    // The other shard has its own allowance.
    shard_iterator(&c, "gsi", "shardId-000000000001").await.unwrap();
    assert_eq!(throttled_calls(&node.metrics().await, "GetShardIterator"), 1.0);
}

#[tokio::test]
async fn describe_stream_and_list_shards_answer_limit_exceeded() {
    let node = Node::start_with(PER_HOUR).await;
    let c = client(&node);
    create(&c, "a", 1).await;
    create(&c, "b", 1).await;

    // DescribeStream: one per hour for the whole account.
    c.describe_stream().stream_name("a").send().await.unwrap();
    let err = c.describe_stream().stream_name("b").send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(err.code(), Some(LIMIT_EXCEEDED));
    assert_eq!(
        err.message(),
        Some(format!("Rate exceeded for stream b under account {ACCOUNT}.").as_str())
    );

    // ListShards: one per hour per stream.
    c.list_shards().stream_name("a").send().await.unwrap();
    let (t, m) = code(c.list_shards().stream_name("a").send().await);
    assert_eq!(
        (t.as_str(), m),
        (
            LIMIT_EXCEEDED,
            format!("Rate exceeded for stream a under account {ACCOUNT}.")
        )
    );
    c.list_shards().stream_name("b").send().await.unwrap();

    // Limits set to 0 are off.
    for _ in 0..30 {
        c.list_streams().send().await.unwrap();
        c.describe_stream_summary().stream_name("a").send().await.unwrap();
    }
    let page = node.metrics().await;
    assert_eq!(throttled_calls(&page, "DescribeStream"), 1.0);
    assert_eq!(throttled_calls(&page, "ListShards"), 1.0);
    assert_eq!(throttled_calls(&page, "ListStreams"), 0.0);
}

#[tokio::test]
async fn consumers_are_limited_in_registrations_and_subscriptions() {
    let node = Node::start_with(PER_HOUR).await;
    let c = client(&node);
    create(&c, "efo", 2).await;
    let register = |name: &'static str| {
        c.register_stream_consumer()
            .stream_arn(stream_arn("efo"))
            .consumer_name(name)
            .send()
    };
    let arn = register("one")
        .await
        .unwrap()
        .consumer()
        .unwrap()
        .consumer_arn()
        .to_string();
    register("two").await.unwrap();
    let (t, m) = code(register("three").await);
    assert_eq!(
        (t.as_str(), m),
        (
            LIMIT_EXCEEDED,
            format!("Rate exceeded for stream efo under account {ACCOUNT}.")
        )
    );

    support::sdk::wait_consumer_active(&c, &arn).await;
    let subscribe = |shard: &'static str| {
        c.subscribe_to_shard()
            .consumer_arn(&arn)
            .shard_id(shard)
            .starting_position(
                StartingPosition::builder()
                    .r#type(ShardIteratorType::TrimHorizon)
                    .build()
                    .unwrap(),
            )
            .send()
    };
    let first = subscribe("shardId-000000000000").await.unwrap();
    drop(first);
    // The second call is refused by the rate, before the subscription slot is even looked at.
    let (t, m) = code(subscribe("shardId-000000000000").await);
    assert_eq!(
        (t.as_str(), m),
        (
            LIMIT_EXCEEDED,
            format!(
                "Rate exceeded for consumer {arn} and shard shardId-000000000000 under account {ACCOUNT}."
            )
        )
    );
    // Another shard of the same consumer has its own allowance.
    subscribe("shardId-000000000001").await.unwrap();
    let page = node.metrics().await;
    assert_eq!(throttled_calls(&page, "RegisterStreamConsumer"), 1.0);
    assert_eq!(throttled_calls(&page, "SubscribeToShard"), 1.0);
}

#[tokio::test]
async fn a_refused_call_succeeds_again_once_the_window_refills() {
    // One GetShardIterator per shard per 3 s.
    let node = Node::start_with(&[
        "--api-rate-window-ms",
        "3000",
        "--api-rate-limit",
        "GetShardIterator=1",
    ])
    .await;
    let c = client(&node);
    create(&c, "r", 1).await;
    let shard = "shardId-000000000000";
    let mut refused = false;
    for _ in 0..20 {
        if let Err((t, _, _)) = shard_iterator(&c, "r", shard).await {
            assert_eq!(t, THROTTLED);
            refused = true;
            break;
        }
    }
    assert!(refused, "20 calls in a row never exceeded one per 3 s");
    let mut recovered = false;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if shard_iterator(&c, "r", shard).await.is_ok() {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "GetShardIterator stayed refused");
}

#[tokio::test]
async fn no_api_limit_applies_with_throttling_off() {
    let mut args = vec!["--throttling", "off"];
    args.extend_from_slice(PER_HOUR);
    let node = Node::start_with(&args).await;
    let c = client(&node);
    create(&c, "free", 1).await;
    for _ in 0..10 {
        shard_iterator(&c, "free", "shardId-000000000000").await.unwrap();
        c.describe_stream().stream_name("free").send().await.unwrap();
        c.list_shards().stream_name("free").send().await.unwrap();
    }
}
