//! Enhanced fan-out through the official Rust SDK (`aws-sdk-kinesis`) against a real
//! `runnel-node standalone`: consumer registration, description, listing and deregistration
//! with AWS's errors; SubscribeToShard event streams receiving records written concurrently,
//! ChildShards at the end of a split shard, the one-subscription-per-consumer-and-shard rule
//! (refused within 5 s, taken over after), and the end of a subscription's lifetime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ConsumerStatus;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::types::StartingPosition;
use aws_sdk_kinesis::types::SubscribeToShardEvent;
use aws_sdk_kinesis::types::SubscribeToShardEventStream;
use runnel_node::kinesis::event_stream::Message;
use runnel_node::kinesis::event_stream::decode;
use support::Node;
use support::sdk::client;
use support::sdk::code;
use support::sdk::create_active;

const ARN_PREFIX: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/";

fn stream_arn(name: &str) -> String {
    format!("{ARN_PREFIX}{name}")
}

fn position(kind: ShardIteratorType, seq: Option<&str>) -> StartingPosition {
    let mut b = StartingPosition::builder().r#type(kind);
    if let Some(s) = seq {
        b = b.sequence_number(s);
    }
    b.build().unwrap()
}

/// Registers a consumer and waits until it is ACTIVE; returns its ARN.
async fn register_active(c: &Client, stream: &str, name: &str) -> String {
    let out = c
        .register_stream_consumer()
        .stream_arn(stream_arn(stream))
        .consumer_name(name)
        .send()
        .await
        .unwrap();
    let arn = out.consumer().unwrap().consumer_arn().to_string();
    support::sdk::wait_consumer_active(c, &arn).await;
    arn
}

/// The next event of a subscription, waiting generously; `None` when the stream ended.
async fn next_event(
    out: &mut aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput,
) -> Option<SubscribeToShardEvent> {
    let got = tokio::time::timeout(Duration::from_secs(60), out.event_stream.recv())
        .await
        .expect("an event within 60 s")
        .expect("a well-formed event");
    match got {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) => Some(e),
        Some(other) => panic!("unexpected event {other:?}"),
        None => None,
    }
}

/// Subscribes once the consumer's slot on the shard is free: a subscription just dropped is
/// released when the node notices the closed connection (or after 5 s, when a new one takes
/// over).
async fn subscribe_when_free(
    c: &Client,
    consumer_arn: &str,
    shard: &str,
    start: StartingPosition,
) -> aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput {
    for _ in 0..300 {
        match c
            .subscribe_to_shard()
            .consumer_arn(consumer_arn)
            .shard_id(shard)
            .starting_position(start.clone())
            .send()
            .await
        {
            Ok(out) => return out,
            Err(e) => {
                assert_eq!(e.code(), Some("ResourceInUseException"), "{e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("the subscription slot never became free");
}

/// The error of a RegisterStreamConsumer.
async fn register(c: &Client, stream: &str, name: &str) -> (String, String) {
    code(
        c.register_stream_consumer()
            .stream_arn(stream_arn(stream))
            .consumer_name(name)
            .send()
            .await,
    )
}

/// The error of a DescribeStreamConsumer with these members.
async fn describe(
    c: &Client,
    stream_arn: Option<String>,
    name: Option<&str>,
    consumer_arn: Option<String>,
) -> (String, String) {
    code(
        c.describe_stream_consumer()
            .set_stream_arn(stream_arn)
            .set_consumer_name(name.map(str::to_string))
            .set_consumer_arn(consumer_arn)
            .send()
            .await,
    )
}

async fn put(c: &Client, stream: &str, key: &str, data: &str) -> String {
    c.put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(data.as_bytes().to_vec()))
        .send()
        .await
        .unwrap()
        .sequence_number()
        .to_string()
}

#[tokio::test]
async fn consumers_register_describe_list_deregister() {
    let node = Node::start_with(&["--throttling", "off", "--consumers-per-stream-limit", "2"]).await;
    let c = client(&node);
    create_active(&c, "efo", 1).await;
    let reg = c
        .register_stream_consumer()
        .stream_arn(stream_arn("efo"))
        .consumer_name("app-1")
        .send()
        .await
        .unwrap();
    let consumer = reg.consumer().unwrap();
    assert_eq!(consumer.consumer_name(), "app-1");
    assert_eq!(consumer.consumer_status(), &ConsumerStatus::Creating);
    let arn = consumer.consumer_arn().to_string();
    let secs = consumer.consumer_creation_timestamp().secs();
    assert_eq!(arn, format!("{ARN_PREFIX}efo/consumer/app-1:{secs}"));
    register_active(&c, "efo", "app-2").await;
    let arn1 = c
        .describe_stream_consumer()
        .stream_arn(stream_arn("efo"))
        .consumer_name("app-1")
        .send()
        .await
        .unwrap()
        .consumer_description()
        .unwrap()
        .consumer_arn()
        .to_string();
    assert_eq!(arn1, arn);
    let d = c
        .describe_stream_consumer()
        .consumer_arn(&arn1)
        .send()
        .await
        .unwrap();
    let d = d.consumer_description().unwrap();
    assert_eq!(
        (d.consumer_name(), d.stream_arn()),
        ("app-1", stream_arn("efo").as_str())
    );

    let list = c
        .list_stream_consumers()
        .stream_arn(stream_arn("efo"))
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = list.consumers().iter().map(|c| c.consumer_name()).collect();
    assert_eq!(names, vec!["app-1", "app-2"]);
    // Paging: one per page.
    let page = c
        .list_stream_consumers()
        .stream_arn(stream_arn("efo"))
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.consumers().len(), 1);
    let next = page.next_token().expect("a NextToken").to_string();
    let page = c
        .list_stream_consumers()
        .stream_arn(stream_arn("efo"))
        .next_token(next)
        .send()
        .await
        .unwrap();
    assert_eq!(page.consumers()[0].consumer_name(), "app-2");
    assert!(page.next_token().is_none());

    let summary = c
        .describe_stream_summary()
        .stream_name("efo")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary.stream_description_summary().unwrap().consumer_count(),
        Some(2)
    );

    // Tags on a consumer ARN.
    c.tag_resource()
        .resource_arn(&arn1)
        .tags("team", "data")
        .send()
        .await
        .unwrap();
    let tags = c
        .list_tags_for_resource()
        .resource_arn(&arn1)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, Option<&str>)> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags, vec![("team", Some("data"))]);

    // Errors, as AWS reports them.
    let other_account = format!("arn:aws:kinesis:us-east-1:111111111111:stream/efo/consumer/app-1:{secs}");
    let stale = format!("{ARN_PREFIX}efo/consumer/app-1:{}", secs - 1);
    let cases: Vec<(&str, (String, String), &str)> = vec![
        (
            "duplicate name",
            register(&c, "efo", "app-1").await,
            "ResourceInUseException",
        ),
        (
            "over the per-stream limit",
            register(&c, "efo", "app-3").await,
            "LimitExceededException",
        ),
        (
            "register on a missing stream",
            register(&c, "nope", "x").await,
            "ResourceNotFoundException",
        ),
        (
            "bad consumer name",
            register(&c, "efo", "a b").await,
            "ValidationException",
        ),
        (
            "describe without a consumer",
            describe(&c, Some(stream_arn("efo")), None, None).await,
            "InvalidArgumentException",
        ),
        (
            "describe an unknown name",
            describe(&c, Some(stream_arn("efo")), Some("zz"), None).await,
            "ResourceNotFoundException",
        ),
        (
            "describe an ARN of an older namesake",
            describe(&c, None, None, Some(stale.clone())).await,
            "ResourceNotFoundException",
        ),
        (
            "describe another account's consumer",
            describe(&c, None, None, Some(other_account.clone())).await,
            "ResourceNotFoundException",
        ),
        (
            "describe with an ARN that is no consumer ARN",
            describe(&c, None, None, Some(stream_arn("efo"))).await,
            "ValidationException",
        ),
        (
            "describe with an ARN and another consumer's name",
            describe(&c, Some(stream_arn("efo")), Some("app-2"), Some(arn.clone())).await,
            "InvalidArgumentException",
        ),
        (
            "list a missing stream",
            code(
                c.list_stream_consumers()
                    .stream_arn(stream_arn("nope"))
                    .send()
                    .await,
            ),
            "ResourceNotFoundException",
        ),
        (
            "list with a bogus token",
            code(
                c.list_stream_consumers()
                    .stream_arn(stream_arn("efo"))
                    .next_token("bogus")
                    .send()
                    .await,
            ),
            "InvalidArgumentException",
        ),
        (
            "deregister without a consumer",
            code(c.deregister_stream_consumer().consumer_name("app-1").send().await),
            "InvalidArgumentException",
        ),
        (
            "delete a stream with consumers",
            code(c.delete_stream().stream_name("efo").send().await),
            "ResourceInUseException",
        ),
    ];
    for (what, (got, message), want) in cases {
        assert_eq!(got, want, "{what}: {message}");
    }

    // Deregistration: DELETING, then gone; the name can be registered again with a new ARN.
    c.deregister_stream_consumer()
        .consumer_arn(&arn1)
        .send()
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..600 {
        let r = c.describe_stream_consumer().consumer_arn(&arn1).send().await;
        match r {
            Ok(d) => assert_eq!(
                d.consumer_description().unwrap().consumer_status(),
                &ConsumerStatus::Deleting
            ),
            Err(e) => {
                assert_eq!(e.code(), Some("ResourceNotFoundException"));
                gone = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the consumer was never removed");
    c.deregister_stream_consumer()
        .stream_arn(stream_arn("efo"))
        .consumer_name("app-2")
        .send()
        .await
        .unwrap();

    // EnforceConsumerDeletion deletes the stream with its consumers.
    create_active(&c, "efo-2", 1).await;
    register_active(&c, "efo-2", "x").await;
    c.delete_stream()
        .stream_name("efo-2")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn subscribe_to_shard_delivers_records_put_concurrently() {
    let node = Node::start().await;
    let c = client(&node);
    create_active(&c, "sub", 1).await;
    let arn = register_active(&c, "sub", "reader").await;
    let shard = "shardId-000000000000";
    let mut out = c
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id(shard)
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();

    // A second subscription of the same consumer and shard right away is refused.
    let dup = c
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id(shard)
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await;
    match dup {
        Err(SdkError::ServiceError(e)) => assert_eq!(e.err().code(), Some("ResourceInUseException")),
        other => panic!("expected ResourceInUseException, got {other:?}"),
    }
    // Another consumer is independent.
    let other = register_active(&c, "sub", "other").await;
    let mut out2 = c
        .subscribe_to_shard()
        .consumer_arn(&other)
        .shard_id(shard)
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();

    let producer = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..40 {
                seqs.push(put(&c, "sub", "k", &format!("r{i}")).await);
            }
            seqs
        })
    };
    let mut got = Vec::new();
    let mut continuation = String::new();
    while got.len() < 40 {
        let e = next_event(&mut out).await.expect("the subscription ended early");
        continuation = e.continuation_sequence_number().to_string();
        assert!(!continuation.is_empty());
        for r in e.records() {
            got.push((
                String::from_utf8(r.data().as_ref().to_vec()).unwrap(),
                r.sequence_number().to_string(),
            ));
        }
    }
    let seqs = producer.await.unwrap();
    let want: Vec<(String, String)> = (0..40).map(|i| format!("r{i}")).zip(seqs).collect();
    assert_eq!(got, want);
    // The continuation sequence number is the last record's: resuming after it starts with
    // the next record.
    assert_eq!(continuation, want[39].1);
    let mut n2 = 0;
    while n2 < 40 {
        n2 += next_event(&mut out2)
            .await
            .expect("second consumer")
            .records()
            .len();
    }
    assert_eq!(n2, 40);
    drop(out);
    put(&c, "sub", "k", "r40").await;
    // The first subscription is gone once its connection closes; until then (or for 5 s) a
    // new one is refused.
    let mut resumed = subscribe_when_free(
        &c,
        &arn,
        shard,
        position(ShardIteratorType::AfterSequenceNumber, Some(&continuation)),
    )
    .await;
    let e = loop {
        let e = next_event(&mut resumed).await.unwrap();
        if !e.records().is_empty() {
            break e;
        }
    };
    assert_eq!(e.records()[0].data().as_ref(), b"r40");

    // Validation and lookup errors.
    let cases = vec![
        (
            "unknown shard",
            code(
                c.subscribe_to_shard()
                    .consumer_arn(&other)
                    .shard_id("shardId-000000000009")
                    .starting_position(position(ShardIteratorType::Latest, None))
                    .send()
                    .await,
            ),
            "ResourceNotFoundException",
        ),
        (
            "unknown consumer",
            code(
                c.subscribe_to_shard()
                    .consumer_arn(format!("{ARN_PREFIX}sub/consumer/nobody:1"))
                    .shard_id(shard)
                    .starting_position(position(ShardIteratorType::Latest, None))
                    .send()
                    .await,
            ),
            "ResourceNotFoundException",
        ),
        (
            "AT_SEQUENCE_NUMBER without a sequence number",
            code(
                c.subscribe_to_shard()
                    .consumer_arn(&other)
                    .shard_id(shard)
                    .starting_position(position(ShardIteratorType::AtSequenceNumber, None))
                    .send()
                    .await,
            ),
            "InvalidArgumentException",
        ),
    ];
    for (what, (got, message), want) in cases {
        assert_eq!(got, want, "{what}: {message}");
    }
}

#[tokio::test]
async fn a_newer_subscription_takes_over_after_five_seconds() {
    let node = Node::start().await;
    let c = client(&node);
    create_active(&c, "take", 1).await;
    let arn = register_active(&c, "take", "reader").await;
    let subscribe = || {
        c.subscribe_to_shard()
            .consumer_arn(&arn)
            .shard_id("shardId-000000000000")
            .starting_position(position(ShardIteratorType::Latest, None))
            .send()
    };
    let mut first = subscribe().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let _second = subscribe().await.unwrap();
    // The first subscription ends with a ResourceInUseException event.
    support::sdk::ends_with_resource_in_use(&mut first).await;
}

#[tokio::test]
async fn subscriptions_end_after_their_lifetime() {
    let node = Node::start_with(&["--throttling", "off", "--subscription-lifetime-ms", "1500"]).await;
    let c = client(&node);
    create_active(&c, "life", 1).await;
    let arn = register_active(&c, "life", "reader").await;
    let mut out = c
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap();
    while next_event(&mut out).await.is_some() {}
    // The slot is free again once a subscription ended.
    c.subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest, None))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_split_shard_ends_with_its_child_shards() {
    let node = Node::start().await;
    let c = client(&node);
    create_active(&c, "split", 1).await;
    let arn = register_active(&c, "split", "reader").await;
    for i in 0..5 {
        put(&c, "split", &format!("k{i}"), &format!("before-{i}")).await;
    }
    let mid = u128::MAX / 2;
    c.split_shard()
        .stream_name("split")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(mid.to_string())
        .send()
        .await
        .unwrap();
    c.wait_until_stream_exists()
        .stream_name("split")
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
    let mut out = c
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();
    let mut records = 0;
    let children = loop {
        let e = next_event(&mut out).await.expect("ended without ChildShards");
        records += e.records().len();
        if !e.child_shards().is_empty() {
            break e.child_shards().to_vec();
        }
    };
    assert_eq!(records, 5);
    let ids: Vec<&str> = children.iter().map(|c| c.shard_id()).collect();
    assert_eq!(ids, vec!["shardId-000000000001", "shardId-000000000002"]);
    for child in &children {
        assert_eq!(child.parent_shards(), ["shardId-000000000000"]);
    }
    // Nothing follows the end of a closed shard.
    assert!(next_event(&mut out).await.is_none());
}

/// One SubscribeToShard over cleartext HTTP/2 (prior knowledge), in `content_type`; returns
/// the decoded event-stream messages of the response (the subscription ends after its
/// lifetime).
async fn raw_subscribe_h2(
    node: &Node,
    content_type: &str,
    body: Vec<u8>,
) -> (hyper::Response<()>, Vec<Message>) {
    use http_body_util::BodyExt;
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioExecutor;
    use hyper_util::rt::TokioIo;

    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", node.kinesis_port))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("http://127.0.0.1:{}/", node.kinesis_port))
        .header("content-type", content_type)
        .header("x-amz-target", "Kinesis_20131202.SubscribeToShard")
        .header("x-amz-date", "20240101T000000Z")
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let (parts, body) = resp.into_parts();
    let bytes = tokio::time::timeout(Duration::from_secs(60), body.collect())
        .await
        .expect("the subscription ends within 60 s")
        .unwrap()
        .to_bytes();
    let mut messages = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (m, used) = decode(rest).expect("a well-formed event-stream message");
        messages.push(m);
        rest = &rest[used..];
    }
    (hyper::Response::from_parts(parts, ()), messages)
}

fn header<'a>(m: &'a Message, name: &str) -> &'a str {
    m.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

/// The event stream on the wire, over h2c, in both AWS formats: prelude and message CRCs,
/// the `initial-response` first, then `SubscribeToShardEvent`s whose payload is encoded as the
/// request was (JSON or CBOR).
#[tokio::test]
async fn event_stream_frames_over_http2_in_json_and_cbor() {
    let node = Node::start_with(&["--throttling", "off", "--subscription-lifetime-ms", "1500"]).await;
    let c = client(&node);
    create_active(&c, "wire", 1).await;
    let arn = register_active(&c, "wire", "reader").await;
    let seq = put(&c, "wire", "k", "hello").await;
    let request = serde_json::json!({
        "ConsumerARN": arn,
        "ShardId": "shardId-000000000000",
        "StartingPosition": {"Type": "TRIM_HORIZON"},
    });

    let (resp, messages) = raw_subscribe_h2(
        &node,
        "application/x-amz-json-1.1",
        serde_json::to_vec(&request).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    assert_eq!(header(&messages[0], ":event-type"), "initial-response");
    assert_eq!(header(&messages[0], ":message-type"), "event");
    let first = &messages[1];
    assert_eq!(header(first, ":event-type"), "SubscribeToShardEvent");
    assert_eq!(header(first, ":content-type"), "application/x-amz-json-1.1");
    let v: serde_json::Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(v["Records"][0]["Data"], "aGVsbG8=");
    assert_eq!(v["Records"][0]["SequenceNumber"], seq.as_str());
    assert_eq!(v["ContinuationSequenceNumber"], seq.as_str());
    assert!(v["MillisBehindLatest"].is_i64());

    // The previous subscription ended (its lifetime); CBOR this time.
    let mut body = Vec::new();
    let cbor = ciborium::Value::Map(vec![
        (
            ciborium::Value::Text("ConsumerARN".into()),
            ciborium::Value::Text(arn.clone()),
        ),
        (
            ciborium::Value::Text("ShardId".into()),
            ciborium::Value::Text("shardId-000000000000".into()),
        ),
        (
            ciborium::Value::Text("StartingPosition".into()),
            ciborium::Value::Map(vec![(
                ciborium::Value::Text("Type".into()),
                ciborium::Value::Text("TRIM_HORIZON".into()),
            )]),
        ),
    ]);
    ciborium::ser::into_writer(&cbor, &mut body).unwrap();
    let mut messages = Vec::new();
    for _ in 0..300 {
        let (resp, m) = raw_subscribe_h2(&node, "application/x-amz-cbor-1.1", body.clone()).await;
        if resp.status() == 200 {
            messages = m;
            break;
        }
        // The JSON subscription may not have been released yet.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(header(&messages[0], ":event-type"), "initial-response");
    let first = &messages[1];
    assert_eq!(header(first, ":content-type"), "application/x-amz-cbor-1.1");
    let v: ciborium::Value = ciborium::de::from_reader(&first.payload[..]).unwrap();
    let map = v.into_map().unwrap();
    let records = map
        .iter()
        .find(|(k, _)| k.as_text() == Some("Records"))
        .map(|(_, v)| v.clone())
        .unwrap()
        .into_array()
        .unwrap();
    let record = records[0].clone().into_map().unwrap();
    let data = record
        .iter()
        .find(|(k, _)| k.as_text() == Some("Data"))
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(data, ciborium::Value::Bytes(b"hello".to_vec()));
}

/// The native gRPC Subscribe of a registered consumer (by name or ARN) follows SubscribeToShard's
/// rules: one subscription per consumer and shard, and an end after the lifetime.
#[tokio::test]
async fn native_subscribe_as_a_consumer() {
    use runnel_proto::v1 as pb;

    let node = Node::start_with(&["--throttling", "off", "--subscription-lifetime-ms", "3000"]).await;
    let c = client(&node);
    create_active(&c, "native", 1).await;
    let arn = register_active(&c, "native", "reader").await;
    let mut grpc = node.streams().await;
    let request = |consumer: &str| pb::SubscribeRequest {
        stream_name: "native".into(),
        shard_id: "shardId-000000000000".into(),
        position: Some(support::trim_horizon()),
        consumer: Some(consumer.into()),
    };
    let mut events = grpc.subscribe(request("reader")).await.unwrap().into_inner();
    put(&c, "native", "k", "one").await;
    // The same consumer by ARN is the same subscription slot: refused.
    let dup = grpc.subscribe(request(&arn)).await.unwrap_err();
    assert_eq!(support::error_type(&dup), "ResourceInUseException", "{dup:?}");
    let unknown = grpc.subscribe(request("nobody")).await.unwrap_err();
    assert_eq!(
        support::error_type(&unknown),
        "ResourceNotFoundException",
        "{unknown:?}"
    );
    // An anonymous subscription is not limited by the consumer's.
    grpc.subscribe(pb::SubscribeRequest {
        consumer: None,
        ..request("")
    })
    .await
    .unwrap();

    let mut data = Vec::new();
    let ended = loop {
        let next = tokio::time::timeout(Duration::from_secs(60), events.message())
            .await
            .expect("an event or the end within 60 s")
            .unwrap();
        match next {
            Some(e) => data.extend(e.records.into_iter().map(|r| r.data)),
            None => break true,
        }
    };
    assert!(ended);
    assert_eq!(data, vec![b"one".to_vec()]);
}

/// A consumer's reads are not charged to the shard's shared GetRecords budget, nor limited by
/// it: with that budget deep in debt (1 byte/s, so one read blocks GetRecords for an hour),
/// GetRecords is throttled and subscriptions still deliver.
#[tokio::test]
async fn subscriptions_do_not_share_the_get_records_budget() {
    let node = Node::start_with(&["--throttling", "all", "--shard-read-bytes-per-sec", "1"]).await;
    let c = support::sdk::client_without_retries(&node);
    create_active(&c, "budget", 1).await;
    let arn = register_active(&c, "budget", "reader").await;
    // 5 KiB read at 1 byte/s: GetRecords stays blocked for well over an hour.
    for i in 0..5 {
        put(&c, "budget", "k", &format!("{i}{}", "x".repeat(1023))).await;
    }
    let it = c
        .get_shard_iterator()
        .stream_name("budget")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string();
    let first = c.get_records().shard_iterator(&it).send().await.unwrap();
    assert_eq!(first.records().len(), 5);
    let (throttled, _) = code(c.get_records().shard_iterator(&it).send().await);
    assert_eq!(throttled, "ProvisionedThroughputExceededException");

    let mut out = c
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();
    let mut n = 0;
    while n < 5 {
        n += next_event(&mut out).await.expect("events").records().len();
    }
    assert_eq!(n, 5);
    // Still throttled: the subscription took nothing from (and gave nothing to) that budget.
    let (throttled, _) = code(c.get_records().shard_iterator(&it).send().await);
    assert_eq!(throttled, "ProvisionedThroughputExceededException");
}

/// In a 3-node cluster, consumers are in the replicated catalog: registered through one node,
/// ACTIVE and listed on every node, and any node serves SubscribeToShard for them.
#[tokio::test]
async fn consumers_are_replicated_in_a_cluster() {
    let cluster = support::cluster::Cluster::start(3);
    cluster.create_stream(0, "repl", 1).await;
    for endpoint in cluster.endpoints() {
        support::cluster::wait_ready(&endpoint, "repl").await;
    }
    let clients: Vec<Client> = cluster
        .members
        .iter()
        .map(|m| support::sdk::client_for_port(m.kinesis))
        .collect();
    clients[0]
        .wait_until_stream_exists()
        .stream_name("repl")
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
    let arn = register_active(&clients[1], "repl", "reader").await;
    for c in &clients {
        // Every node applies the catalog; a follower may lag for a moment.
        assert!(
            support::sdk::sees_consumer_active(c, &arn).await,
            "a node never saw the consumer ACTIVE; logs:\n{}",
            cluster.logs()
        );
    }
    let mut out = clients[2]
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon, None))
        .send()
        .await
        .unwrap();
    let seq = put(&clients[0], "repl", "k", "through node 1").await;
    let e = loop {
        let e = next_event(&mut out).await.expect("events");
        if !e.records().is_empty() {
            break e;
        }
    };
    assert_eq!(e.records()[0].sequence_number(), seq);
    assert_eq!(e.records()[0].data().as_ref(), b"through node 1");
}

/// Every StartingPosition type: where the first delivered record is.
#[tokio::test]
async fn every_starting_position() {
    let node = Node::start().await;
    let c = client(&node);
    create_active(&c, "pos", 1).await;
    let arn = register_active(&c, "pos", "reader").await;
    let mut seqs = Vec::new();
    for i in 0..4 {
        seqs.push(put(&c, "pos", "k", &format!("r{i}")).await);
    }
    let long_ago = aws_sdk_kinesis::primitives::DateTime::from_secs(1);
    let cases: Vec<(&str, StartingPosition, Option<&str>)> = vec![
        (
            "TRIM_HORIZON",
            position(ShardIteratorType::TrimHorizon, None),
            Some("r0"),
        ),
        (
            "AT_SEQUENCE_NUMBER",
            position(ShardIteratorType::AtSequenceNumber, Some(&seqs[2])),
            Some("r2"),
        ),
        (
            "AFTER_SEQUENCE_NUMBER",
            position(ShardIteratorType::AfterSequenceNumber, Some(&seqs[2])),
            Some("r3"),
        ),
        (
            "AT_TIMESTAMP before the first record",
            StartingPosition::builder()
                .r#type(ShardIteratorType::AtTimestamp)
                .timestamp(long_ago)
                .build()
                .unwrap(),
            Some("r0"),
        ),
        // LATEST: only what is written after the subscription started.
        ("LATEST", position(ShardIteratorType::Latest, None), None),
    ];
    for (what, start, first) in cases {
        // Each case waits for the previous subscription's slot to be free.
        let mut out = subscribe_when_free(&c, &arn, "shardId-000000000000", start).await;
        let want = match first {
            Some(w) => w.to_string(),
            None => {
                put(&c, "pos", "k", "after-latest").await;
                "after-latest".to_string()
            }
        };
        let got = loop {
            let e = next_event(&mut out).await.expect("events");
            if let Some(r) = e.records().first() {
                break String::from_utf8(r.data().as_ref().to_vec()).unwrap();
            }
        };
        assert_eq!(got, want, "{what}");
    }
}
