//! Enhanced fan-out subscriptions follow AWS's rules in the whole cluster, not per node: three
//! real `runnel-node cluster` processes, a one-shard stream, a registered consumer and
//! SubscribeToShard (`aws-sdk-kinesis`, no retries) through different nodes. The shard's
//! leader keeps the subscriptions' leases: a second subscription through another node within
//! 5 s is refused with ResourceInUseException, one 5 s later takes over and the first one (on
//! another node) ends with a ResourceInUseException event, a node killed while serving a
//! subscription does not keep its lease, SubscribeToShard's calls per second per consumer
//! and shard are counted once for the cluster, and deregistering a consumer through one node
//! ends its subscription on another. Through a partition of the serving node from the
//! leader, a leader crash and a leadership transfer, two subscriptions never deliver at once.
//!
//! Nothing depends on how fast the machine is: the 5-second refusal is asserted only when both
//! calls were answered within 4.5 s of the first one's start (otherwise the pair is tried
//! again), the one-at-a-time rule on the order in which the client saw grants, events and
//! ends, and every other condition is polled for with generous timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::types::StartingPosition;
use aws_sdk_kinesis::types::SubscribeToShardEventStream;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;
use runnel_proto::v1 as pb;
use support::cluster::Cluster;
use support::partition::Cut;
use support::sdk::client_for_port_without_retries;
use support::wait::eventually;

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
    prepare(Cluster::start_with(3, args), stream).await
}

/// Creates a one-shard stream in `cluster` and registers a consumer; waits until every node
/// has both. Returns a client per node and the consumer's ARN.
async fn prepare(cluster: Cluster, stream: &str) -> (Cluster, Vec<Client>, String) {
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

/// What the client saw of its subscriptions, in the order it saw it.
#[derive(Clone, Debug)]
enum Seen {
    /// SubscribeToShard answered: subscription `.0` started.
    Granted(u32),
    /// An event of subscription `sub` with these records' data.
    Event { sub: u32, records: Vec<String> },
    /// Subscription `sub` ended, with this exception (or none).
    Ended { sub: u32, code: String, message: String },
}

/// The client's record of every subscription of the consumer: each one's events are read as
/// they come (by a task of its own) and appended to one list.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<Seen>>>);

impl Timeline {
    fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }

    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// Subscription `sub` was answered: from now on its events are read and recorded.
    fn granted(&self, sub: u32, mut out: SubscribeToShardOutput) {
        self.push(Seen::Granted(sub));
        let timeline = self.clone();
        tokio::spawn(async move {
            loop {
                match out.event_stream.recv().await {
                    Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(e))) => {
                        let records = e
                            .records()
                            .iter()
                            .map(|r| String::from_utf8_lossy(r.data().as_ref()).into_owned())
                            .collect();
                        timeline.push(Seen::Event { sub, records });
                    }
                    Ok(Some(_)) => timeline.push(Seen::Event {
                        sub,
                        records: Vec::new(),
                    }),
                    Ok(None) => {
                        let (code, message) = (String::new(), String::new());
                        timeline.push(Seen::Ended { sub, code, message });
                        return;
                    }
                    Err(e) => {
                        let (code, message) = match &e {
                            SdkError::ServiceError(e) => (
                                exception_name(e.err()),
                                e.err().message().unwrap_or_default().to_string(),
                            ),
                            other => ("(not an exception)".to_string(), format!("{other:?}")),
                        };
                        timeline.push(Seen::Ended { sub, code, message });
                        return;
                    }
                }
            }
        });
    }

    /// The invariant: two subscriptions of the consumer never deliver at once. Each one's
    /// events and its end come before the next one is granted.
    fn assert_one_at_a_time(&self) {
        let seen = self.seen();
        let mut live = None;
        for s in &seen {
            match s {
                Seen::Granted(sub) => {
                    assert!(
                        live.is_none(),
                        "subscription {sub} was granted while {live:?} had not ended: {seen:#?}"
                    );
                    live = Some(*sub);
                }
                Seen::Event { sub, .. } | Seen::Ended { sub, .. } => {
                    assert_eq!(
                        live,
                        Some(*sub),
                        "subscription {sub} delivered while {live:?} was the live one: {seen:#?}"
                    );
                    if matches!(s, Seen::Ended { .. }) {
                        live = None;
                    }
                }
            }
        }
    }

    /// How subscription `sub` ended, once it has.
    fn end_of(&self, sub: u32) -> Option<(String, String)> {
        self.seen().into_iter().find_map(|s| match s {
            Seen::Ended {
                sub: n,
                code,
                message,
            } if n == sub => Some((code, message)),
            _ => None,
        })
    }

    fn delivered(&self, sub: u32, data: &str) -> bool {
        self.seen()
            .iter()
            .any(|s| matches!(s, Seen::Event { sub: n, records } if *n == sub && records.iter().any(|r| r == data)))
    }
}

/// The exception's name (the SDK tells it by the variant; its metadata has no code).
fn exception_name(e: &SubscribeToShardEventStreamError) -> String {
    match e {
        SubscribeToShardEventStreamError::ResourceInUseException(_) => "ResourceInUseException".into(),
        SubscribeToShardEventStreamError::ResourceNotFoundException(_) => "ResourceNotFoundException".into(),
        SubscribeToShardEventStreamError::InternalFailureException(_) => "InternalFailureException".into(),
        other => format!("{other:?}"),
    }
}

async fn put(c: &Client, stream: &str, data: &str) {
    c.put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(data.as_bytes()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {data}: {e:?}"));
}

/// The stream of the test of partitions and leader changes.
const STREAM: &str = "cut";

/// Puts `data` through `c` and waits until subscription `sub` delivered it.
async fn delivers(cluster: &Cluster, timeline: &Timeline, c: &Client, sub: u32, data: &str) {
    put(c, STREAM, data).await;
    eventually(
        &format!("subscription {sub} to deliver {data}"),
        || cluster.logs(),
        || async { timeline.delivered(sub, data) },
    )
    .await;
}

/// Subscribes through `c` once admitted, as subscription `sub` of `timeline`; the older ones
/// must have ended by then.
async fn subscribe_next(cluster: &Cluster, timeline: &Timeline, c: &Client, arn: &str, sub: u32) {
    let out = subscribe_when_admitted(cluster, c, arn).await;
    timeline.granted(sub, out);
    timeline.assert_one_at_a_time();
}

/// The shard's replica set (member positions; the first is its preferred leader) and the
/// member that leads it now, as that member says (a member answers for itself only).
async fn shard_leader(cluster: &Cluster, stream: &str) -> (Vec<usize>, Option<usize>) {
    let mut replicas = Vec::new();
    for (i, m) in cluster.members.iter().enumerate() {
        if !m.running() {
            continue;
        }
        let Ok(mut admin) = support::admin_client(&m.endpoint()).await else {
            continue;
        };
        let req = pb::DescribeStreamRequest {
            stream_name: stream.into(),
        };
        let Ok(d) = admin.describe_stream(req).await else {
            continue;
        };
        let Some(shard) = d.into_inner().stream.and_then(|s| s.shards.into_iter().next()) else {
            continue;
        };
        replicas = shard.replicas.iter().map(|id| *id as usize - 1).collect();
        if shard.leader == m.id {
            return (replicas, Some(i));
        }
    }
    (replicas, None)
}

/// Waits until member `i` leads the shard.
async fn wait_leader(cluster: &Cluster, stream: &str, i: usize) {
    eventually(
        &format!("member {i} to lead the shard"),
        || cluster.logs(),
        || async { shard_leader(cluster, stream).await.1 == Some(i) },
    )
    .await;
}

/// The holes of leases that only the shard's leader keeps, closed: the node serving a
/// subscription is cut off from the shard's leader (its lease renewals no longer get
/// through), the leader is killed (the new one knows no lease), the killed node comes back and
/// takes its leadership back (a transfer), and a leader serving a subscription itself is cut
/// off from the others (it can no longer confirm its leadership; the others elect a new one). Each time another node subscribes the
/// same consumer to the shard, and the client's own record of what it received shows that no
/// two subscriptions ever delivered at once: the older one ended before the next was granted.
#[tokio::test]
async fn a_subscription_ends_before_another_is_granted_through_partitions_and_leader_changes() {
    let (mut cluster, clients, arn) = prepare(Cluster::start_partitionable(3).await, STREAM).await;
    // The preferred leader leads (leader balancing would move it there later otherwise).
    let (replicas, _) = shard_leader(&cluster, STREAM).await;
    assert_eq!(replicas.len(), 3, "the shard has a replica on every member");
    let leader = replicas[0];
    wait_leader(&cluster, STREAM, leader).await;
    let (serving, other) = (replicas[1], replicas[2]);
    let timeline = Timeline::default();

    // 1. Partition. A subscription through a follower of the shard delivers a record.
    subscribe_next(&cluster, &timeline, &clients[serving], &arn, 1).await;
    delivers(&cluster, &timeline, &clients[other], 1, "before the cut").await;
    // Its node is cut off from the leader (both ways; the third member still reaches both):
    // renewals go unanswered. Another node subscribes: granted only once the first one ended.
    let network = cluster.network.as_ref().unwrap();
    network.cut(serving, leader, Cut::Blackhole);
    network.cut(leader, serving, Cut::Blackhole);
    subscribe_next(&cluster, &timeline, &clients[other], &arn, 2).await;
    // Its lease ran out (its reads, forwarded to the leader, would have failed only after 8 s).
    let (code, message) = timeline.end_of(1).expect("the cut-off subscription ended");
    assert_eq!(code, "InternalFailureException", "{message}");
    assert!(message.contains("lease"), "{message}");
    delivers(&cluster, &timeline, &clients[other], 2, "during the cut").await;
    network.heal();

    // 2. Leader crash. The new leader knows no lease: the subscription the crash left running
    // (or not) still ends before another one is granted.
    cluster.members[leader].kill9();
    subscribe_next(&cluster, &timeline, &clients[serving], &arn, 3).await;
    delivers(&cluster, &timeline, &clients[serving], 3, "after the crash").await;

    // 3. Restart and leadership transfer: the restarted member catches up and is handed its
    // leadership back while subscription 3 lives.
    cluster.restart(leader);
    support::cluster::wait_ready(&cluster.members[leader].endpoint(), STREAM).await;
    wait_leader(&cluster, STREAM, leader).await;
    subscribe_next(&cluster, &timeline, &clients[other], &arn, 4).await;
    delivers(&cluster, &timeline, &clients[other], 4, "after the transfer").await;
    timeline.assert_one_at_a_time();

    // 4. The leader itself serves the subscription and is cut off from both other members: it
    // can no longer confirm its leadership, so its own renewals fail too, and the others elect
    // a leader that knows no lease.
    subscribe_next(&cluster, &timeline, &clients[leader], &arn, 5).await;
    delivers(&cluster, &timeline, &clients[other], 5, "through the leader").await;
    let network = cluster.network.as_ref().unwrap();
    network.isolate(leader, Cut::Blackhole);
    subscribe_next(&cluster, &timeline, &clients[serving], &arn, 6).await;
    // Its lease ran out (its reads, which the isolated leader cannot confirm either, would
    // have failed only after 8 s of retries).
    let (code, message) = timeline
        .end_of(5)
        .expect("the isolated leader's subscription ended");
    assert_eq!(code, "InternalFailureException", "{message}");
    assert!(message.contains("lease"), "{message}");
    delivers(&cluster, &timeline, &clients[serving], 6, "leader isolated").await;
    network.heal();
    timeline.assert_one_at_a_time();
    println!("what the client saw: {:?}", timeline.seen());
}
