//! Enhanced fan-out subscriptions follow AWS's rules in the whole cluster, not per node: three
//! real `runnel-node cluster` processes, a one-shard stream, a registered consumer and
//! SubscribeToShard (`aws-sdk-kinesis`, no retries) through different nodes. The shard's
//! leader keeps the subscriptions' leases: a second subscription through another node within
//! 5 s is refused with ResourceInUseException, one 5 s later takes over and the first one (on
//! another node) ends with a ResourceInUseException event, a node killed while serving a
//! subscription does not keep its lease, SubscribeToShard's calls per second per consumer
//! and shard are counted once for the cluster, and deregistering a consumer through one node
//! ends its subscription on another.
//!
//! Nothing depends on how fast the machine is: the 5-second refusal is asserted only when both
//! calls were answered within 4.5 s of the first one's start (otherwise the pair is tried
//! again), and every other condition is polled for with generous timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::types::StartingPosition;
use support::cluster::Cluster;
use support::sdk::client_for_port_without_retries;

const SHARD: &str = "shardId-000000000000";
const IN_USE: &str = "ResourceInUseException";

fn latest() -> StartingPosition {
    StartingPosition::builder()
        .r#type(ShardIteratorType::Latest)
        .build()
        .unwrap()
}

async fn subscribe(c: &Client, arn: &str) -> Result<SubscribeToShardOutput, (String, String)> {
    c.subscribe_to_shard()
        .consumer_arn(arn)
        .shard_id(SHARD)
        .starting_position(latest())
        .send()
        .await
        .map_err(|e| {
            (
                e.code().unwrap_or_default().to_string(),
                e.message().unwrap_or_default().to_string(),
            )
        })
}

/// Starts the cluster with `args`, creates a one-shard stream and registers a consumer; waits
/// until every node has both. Returns a client per node and the consumer's ARN.
async fn start(args: &[&str], stream: &str) -> (Cluster, Vec<Client>, String) {
    let cluster = Cluster::start_with(3, args);
    cluster.create_stream(0, stream, 1).await;
    for endpoint in cluster.endpoints() {
        support::cluster::wait_ready(&endpoint, stream).await;
    }
    let clients: Vec<Client> = cluster
        .members
        .iter()
        .map(|m| client_for_port_without_retries(m.kinesis))
        .collect();
    for c in &clients {
        support::sdk::wait_active(c, stream).await;
    }
    let stream_arn = format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}");
    let out = clients[0]
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name("reader")
        .send()
        .await
        .unwrap();
    let arn = out.consumer().unwrap().consumer_arn().to_string();
    for c in &clients {
        // Every node applies the catalog; a follower may lag for a moment.
        assert!(
            support::sdk::sees_consumer_active(c, &arn).await,
            "a node never saw the consumer ACTIVE; logs:\n{}",
            cluster.logs()
        );
    }
    (cluster, clients, arn)
}

/// Subscribes through `c` once the subscription is admitted (refusals while waiting: the
/// consumer's lease is still held, or the shard has no leader yet).
async fn subscribe_when_admitted(cluster: &Cluster, c: &Client, arn: &str) -> SubscribeToShardOutput {
    let mut last = None;
    for _ in 0..600 {
        match subscribe(c, arn).await {
            Ok(out) => return out,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "never subscribed (last error {last:?}); logs:\n{}",
        cluster.logs()
    );
}

#[tokio::test]
async fn one_subscription_per_consumer_and_shard_in_the_cluster() {
    let (mut cluster, clients, arn) = start(support::UNTHROTTLED, "subs").await;

    // Through node 1, then within 5 s through node 2: refused, although node 2 serves no
    // subscription of the consumer.
    let (mut first, first_admitted) = {
        let mut judged = None;
        for _ in 0..5 {
            let asked = Instant::now();
            let first = subscribe_when_admitted(&cluster, &clients[0], &arn).await;
            let admitted = Instant::now();
            let second = subscribe(&clients[1], &arn).await;
            if asked.elapsed() >= Duration::from_millis(4_500) {
                // Too slow to tell: the second call may have come 5 s after the first.
                drop(second);
                drop(first);
                continue;
            }
            let Err((code, message)) = second else {
                panic!("a second subscription within 5 s was admitted");
            };
            assert_eq!(code, IN_USE, "{message}");
            assert!(message.contains("Another subscription"), "{message}");
            judged = Some((first, admitted));
            break;
        }
        judged.expect("no two SubscribeToShard calls were answered within 4.5 s in five tries")
    };

    // 5 s after the first one through node 3: it takes over, and the first subscription, on
    // node 1, ends with a ResourceInUseException event (node 1 hears it from the leader).
    tokio::time::sleep_until((first_admitted + Duration::from_millis(5_500)).into()).await;
    let mut third = subscribe(&clients[2], &arn)
        .await
        .unwrap_or_else(|e| panic!("the takeover was refused: {e:?}; logs:\n{}", cluster.logs()));
    support::sdk::ends_with_resource_in_use(&mut first).await;
    // The third one keeps running.
    let e = tokio::time::timeout(Duration::from_secs(60), third.event_stream.recv())
        .await
        .expect("a heartbeat within 60 s");
    assert!(matches!(e, Ok(Some(_))), "{e:?}");

    // Node 3, serving the subscription, is killed: its lease does not outlive it (the
    // subscription's 5-minute lifetime is far from over). Node 1 subscribes again, well within
    // the 5 minutes.
    let killed = Instant::now();
    cluster.members[2].kill9();
    drop(third);
    let _again = subscribe_when_admitted(&cluster, &clients[0], &arn).await;
    assert!(
        killed.elapsed() < Duration::from_secs(240),
        "the lease of a killed node's subscription was kept for {:?}",
        killed.elapsed()
    );
}

#[tokio::test]
async fn the_call_rate_and_deregistration_hold_across_nodes() {
    // One SubscribeToShard per consumer and shard per hour, everything else unlimited.
    let args = [
        "--api-rate-window-ms",
        "3600000",
        "--api-rate-limit",
        "SubscribeToShard=1,GetShardIterator=0,RegisterStreamConsumer=0,DeregisterStreamConsumer=0,\
         DescribeStreamConsumer=0,ListStreamConsumers=0,DescribeStream=0,DescribeStreamSummary=0,\
         ListShards=0,ListStreams=0",
    ];
    let (cluster, clients, arn) = start(&args, "rate").await;
    let mut first = subscribe_when_admitted(&cluster, &clients[0], &arn).await;
    // Through the two other nodes: over the limit (checked before the lease).
    for c in &clients[1..] {
        let Err((code, message)) = subscribe(c, &arn).await else {
            panic!("a second call in the hour was admitted");
        };
        assert_eq!(code, "LimitExceededException", "{message}");
        assert!(message.starts_with("Rate exceeded for consumer"), "{message}");
    }

    // The consumer is deregistered through node 2: the subscription node 1 serves ends with a
    // ResourceInUseException event (node 1 sees the consumer go at its next lease renewal).
    clients[1]
        .deregister_stream_consumer()
        .consumer_arn(&arn)
        .send()
        .await
        .unwrap();
    support::sdk::ends_with_resource_in_use(&mut first).await;
}
