//! The Kinesis HTTP API driven by the official Rust SDK (`aws-sdk-kinesis`) against a real
//! `runnel-node standalone` process, plus raw HTTP requests for the protocol-level errors an SDK
//! never sends (unknown operations, missing signatures, malformed bodies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::types::ShardFilter;
use aws_sdk_kinesis::types::ShardFilterType;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::types::StreamMode;
use aws_sdk_kinesis::types::StreamModeDetails;
use aws_sdk_kinesis::types::StreamStatus;
use support::Node;
use support::sdk::client;
use support::sdk::code;
use support::sdk::create_active;
use support::sdk::create_on_demand;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn stream_lifecycle_paging_and_retention() {
    let node = Node::start().await;
    let c = client(&node);
    c.create_stream()
        .stream_name("life")
        .shard_count(3)
        .send()
        .await
        .unwrap();
    // Right after CreateStream the stream is CREATING; the waiter polls until ACTIVE.
    let d = c.describe_stream().stream_name("life").send().await.unwrap();
    let status = d.stream_description().unwrap().stream_status().clone();
    assert!(matches!(status, StreamStatus::Creating | StreamStatus::Active));
    c.wait_until_stream_exists()
        .stream_name("life")
        .wait(Duration::from_secs(120))
        .await
        .unwrap();

    // DescribeStream paging.
    let d = c
        .describe_stream()
        .stream_name("life")
        .limit(2)
        .send()
        .await
        .unwrap();
    let sd = d.stream_description().unwrap();
    assert_eq!(sd.stream_status(), &StreamStatus::Active);
    assert_eq!(sd.shards().len(), 2);
    assert!(sd.has_more_shards());
    assert_eq!(sd.retention_period_hours(), 24);
    let arn = sd.stream_arn().to_string();
    assert_eq!(arn, "arn:aws:kinesis:us-east-1:000000000000:stream/life");
    let d = c
        .describe_stream()
        .stream_arn(&arn)
        .exclusive_start_shard_id("shardId-000000000001")
        .send()
        .await
        .unwrap();
    let sd = d.stream_description().unwrap();
    assert_eq!(sd.shards().len(), 1);
    assert_eq!(sd.shards()[0].shard_id(), "shardId-000000000002");
    assert!(!sd.has_more_shards());
    assert_eq!(
        sd.shards()[0].hash_key_range().unwrap().ending_hash_key(),
        u128::MAX.to_string()
    );

    let s = c
        .describe_stream_summary()
        .stream_name("life")
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    assert_eq!(s.open_shard_count(), 3);
    assert_eq!(
        s.stream_mode_details().unwrap().stream_mode(),
        &StreamMode::Provisioned
    );

    // ListStreams paging with NextToken and summaries.
    create_active(&c, "life2", 1).await;
    let l = c.list_streams().limit(1).send().await.unwrap();
    assert_eq!(l.stream_names(), ["life"]);
    assert!(l.has_more_streams());
    assert_eq!(l.stream_summaries()[0].stream_name(), "life");
    let l = c
        .list_streams()
        .next_token(l.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(l.stream_names(), ["life2"]);
    assert!(!l.has_more_streams());

    // Retention: the direction is checked.
    c.increase_stream_retention_period()
        .stream_name("life")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    let (t, m) = code(
        c.decrease_stream_retention_period()
            .stream_name("life")
            .retention_period_hours(72)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    assert_eq!(
        m,
        "Requested retention period (72 hours) for stream life can not be longer than existing retention period (48 hours). Use IncreaseRetentionPeriod API."
    );
    let (t, _) = code(
        c.increase_stream_retention_period()
            .stream_name("life")
            .retention_period_hours(24)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    let (t, m) = code(
        c.increase_stream_retention_period()
            .stream_name("life")
            .retention_period_hours(9000)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    assert!(
        m.starts_with("Maximum allowed retention period is 8760 hours."),
        "{m}"
    );
    c.decrease_stream_retention_period()
        .stream_arn(&arn)
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();

    // Errors.
    let (t, m) = code(c.create_stream().stream_name("life").shard_count(1).send().await);
    assert_eq!(t, "ResourceInUseException");
    assert_eq!(m, "Stream life under account 000000000000 already exists.");
    let (t, m) = code(c.describe_stream().stream_name("nope").send().await);
    assert_eq!(t, "ResourceNotFoundException");
    assert_eq!(m, "Stream nope under account 000000000000 not found.");
    let (t, m) = code(
        c.create_stream()
            .stream_name("bad name")
            .shard_count(0)
            .send()
            .await,
    );
    assert_eq!(t, "ValidationException");
    assert_eq!(
        m,
        "2 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; Value 'bad name' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
    );
    let (t, _) = code(c.create_stream().stream_name("noshards").send().await);
    assert_eq!(t, "InvalidArgumentException");

    // DeleteStream: DELETING, then gone.
    c.delete_stream().stream_name("life2").send().await.unwrap();
    let mut gone = false;
    for _ in 0..200 {
        match c.describe_stream().stream_name("life2").send().await {
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                gone = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(gone, "stream was not removed");
}

#[tokio::test]
async fn on_demand_streams() {
    let node = Node::start().await;
    let c = client(&node);
    create_on_demand(&c, "od").await;
    let s = c
        .describe_stream_summary()
        .stream_name("od")
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    assert_eq!(
        s.stream_mode_details().unwrap().stream_mode(),
        &StreamMode::OnDemand
    );
    assert_eq!(s.open_shard_count(), 4);
}

#[tokio::test]
async fn put_and_get_records_with_every_iterator_type() {
    let node = Node::start().await;
    let c = client(&node);
    create_active(&c, "rec", 2).await;

    let r = c
        .put_record()
        .stream_name("rec")
        .partition_key("pk")
        .data(Blob::new("first"))
        .send()
        .await
        .unwrap();
    let shard = r.shard_id().to_string();
    let first_seq = r.sequence_number().to_string();
    let r2 = c
        .put_record()
        .stream_name("rec")
        .partition_key("pk")
        .data(Blob::new("second"))
        .sequence_number_for_ordering(&first_seq)
        .send()
        .await
        .unwrap();
    assert_eq!(r2.shard_id(), shard);
    assert!(r2.sequence_number().len() >= first_seq.len());

    // PutRecords: explicit hash keys route to each shard.
    let entries = vec![
        PutRecordsRequestEntry::builder()
            .partition_key("x")
            .explicit_hash_key("0")
            .data(Blob::new("to-0"))
            .build()
            .unwrap(),
        PutRecordsRequestEntry::builder()
            .partition_key("x")
            .explicit_hash_key(u128::MAX.to_string())
            .data(Blob::new("to-1"))
            .build()
            .unwrap(),
    ];
    let pr = c
        .put_records()
        .stream_name("rec")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(pr.failed_record_count(), Some(0));
    assert_eq!(pr.records()[0].shard_id(), Some("shardId-000000000000"));
    assert_eq!(pr.records()[1].shard_id(), Some("shardId-000000000001"));

    // TRIM_HORIZON reads everything of the shard, in order, and the next iterator continues.
    let it = c
        .get_shard_iterator()
        .stream_name("rec")
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let got = c
        .get_records()
        .shard_iterator(it.shard_iterator().unwrap())
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(got.records().len(), 1);
    assert_eq!(got.records()[0].data().as_ref(), b"first");
    assert_eq!(got.records()[0].sequence_number(), first_seq);
    assert!(got.millis_behind_latest().is_some());
    let got = c
        .get_records()
        .shard_iterator(got.next_shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    let data: Vec<&[u8]> = got.records().iter().map(|r| r.data().as_ref()).collect();
    assert!(data.contains(&b"second".as_slice()));
    assert_eq!(got.millis_behind_latest(), Some(0));

    // AT / AFTER_SEQUENCE_NUMBER.
    for (kind, expect) in [
        (ShardIteratorType::AtSequenceNumber, b"first".as_slice()),
        (ShardIteratorType::AfterSequenceNumber, b"second".as_slice()),
    ] {
        let it = c
            .get_shard_iterator()
            .stream_name("rec")
            .shard_id(&shard)
            .shard_iterator_type(kind)
            .starting_sequence_number(&first_seq)
            .send()
            .await
            .unwrap();
        let got = c
            .get_records()
            .shard_iterator(it.shard_iterator().unwrap())
            .limit(1)
            .send()
            .await
            .unwrap();
        assert_eq!(got.records()[0].data().as_ref(), expect);
    }

    // LATEST sees only what comes after it.
    let it = c
        .get_shard_iterator()
        .stream_name("rec")
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap();
    let got = c
        .get_records()
        .shard_iterator(it.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert!(got.records().is_empty());
    c.put_record()
        .stream_name("rec")
        .partition_key("pk")
        .data(Blob::new("third"))
        .send()
        .await
        .unwrap();
    let got = c
        .get_records()
        .shard_iterator(got.next_shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.records().len(), 1);
    assert_eq!(got.records()[0].data().as_ref(), b"third");

    // AT_TIMESTAMP at the epoch starts from the oldest record.
    let it = c
        .get_shard_iterator()
        .stream_name("rec")
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_secs(0))
        .send()
        .await
        .unwrap();
    let got = c
        .get_records()
        .shard_iterator(it.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.records()[0].data().as_ref(), b"first");

    // Errors: a sequence number of another shard, a missing sequence number, a forged iterator,
    // an unknown shard.
    let other = if shard == "shardId-000000000000" {
        "shardId-000000000001"
    } else {
        "shardId-000000000000"
    };
    let (t, _) = code(
        c.get_shard_iterator()
            .stream_name("rec")
            .shard_id(other)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(&first_seq)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    let (t, m) = code(
        c.get_shard_iterator()
            .stream_name("rec")
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    assert!(
        m.ends_with("Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber."),
        "{m}"
    );
    let (t, m) = code(
        c.get_records()
            .shard_iterator("AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .send()
            .await,
    );
    assert_eq!(
        (t.as_str(), m.as_str()),
        ("InvalidArgumentException", "Invalid ShardIterator.")
    );
    let (t, m) = code(
        c.get_shard_iterator()
            .stream_name("rec")
            .shard_id("shardId-000000000009")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await,
    );
    assert_eq!(t, "ResourceNotFoundException");
    assert_eq!(
        m,
        "Shard shardId-000000000009 in stream rec under account 000000000000 does not exist"
    );
    let (t, m) = code(
        c.put_record()
            .stream_name("rec")
            .partition_key("")
            .data(Blob::new("x"))
            .send()
            .await,
    );
    assert_eq!(t, "ValidationException");
    assert!(m.contains("at 'partitionKey'"), "{m}");
    let (t, _) = code(
        c.put_record()
            .stream_name("missing")
            .partition_key("k")
            .data(Blob::new("x"))
            .send()
            .await,
    );
    assert_eq!(t, "ResourceNotFoundException");
}

#[tokio::test]
async fn list_shards_paging_and_filters() {
    let node = Node::start().await;
    let c = client(&node);
    create_active(&c, "ls", 5).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/ls";
    let page = c
        .list_shards()
        .stream_arn(arn)
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.shards().len(), 2);
    let mut ids: Vec<String> = page.shards().iter().map(|s| s.shard_id().to_string()).collect();
    let mut token = page.next_token().map(str::to_string);
    while let Some(t) = token {
        let p = c.list_shards().next_token(t).max_results(2).send().await.unwrap();
        ids.extend(p.shards().iter().map(|s| s.shard_id().to_string()));
        token = p.next_token().map(str::to_string);
    }
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[4], "shardId-000000000004");

    let p = c
        .list_shards()
        .stream_name("ls")
        .exclusive_start_shard_id("shardId-000000000002")
        .send()
        .await
        .unwrap();
    assert_eq!(p.shards().len(), 2);
    let p = c
        .list_shards()
        .stream_name("ls")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000003")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(p.shards().len(), 1);
    for kind in [
        ShardFilterType::AtLatest,
        ShardFilterType::AtTrimHorizon,
        ShardFilterType::FromTrimHorizon,
    ] {
        let p = c
            .list_shards()
            .stream_name("ls")
            .shard_filter(ShardFilter::builder().r#type(kind.clone()).build().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(p.shards().len(), 5, "{kind:?}");
    }
    let p = c
        .list_shards()
        .stream_name("ls")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(DateTime::from_secs(0))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(p.shards().len(), 5);
    let (t, _) = code(c.list_shards().stream_name("ls").next_token("abc").send().await);
    assert_eq!(t, "InvalidArgumentException");
    let (t, _) = code(c.list_shards().stream_name("zz").send().await);
    assert_eq!(t, "ResourceNotFoundException");
}

/// Sends one raw HTTP/1.1 request; returns the status line and the body.
async fn raw(
    node: &Node,
    target: Option<&str>,
    content_type: &str,
    auth: bool,
    body: &str,
) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", node.kinesis_port))
        .await
        .unwrap();
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = target {
        req.push_str(&format!("X-Amz-Target: {t}\r\n"));
    }
    if auth {
        req.push_str("Authorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00\r\nX-Amz-Date: 20240101T000000Z\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    assert!(
        out.to_ascii_lowercase().contains("x-amzn-requestid:"),
        "no request id: {out}"
    );
    (status, body)
}

#[tokio::test]
async fn protocol_errors() {
    let node = Node::start().await;
    let json = "application/x-amz-json-1.1";
    let (st, body) = raw(
        &node,
        Some("Kinesis_20131202.PutResourcePolicy"),
        json,
        true,
        "{}",
    )
    .await;
    assert!(st.contains(" 400 "), "{st}");
    assert_eq!(body, r#"{"__type":"UnknownOperationException"}"#);
    let (_, body) = raw(&node, Some("Kinesis_20131202.MergeShards"), json, true, "{}").await;
    assert!(body.contains("2 validation errors detected"), "{body}");
    let (_, body) = raw(&node, Some("Kinesis_20131202.Nope"), json, true, "{}").await;
    assert_eq!(body, r#"{"__type":"UnknownOperationException"}"#);
    let (_, body) = raw(&node, Some("Kinesis_20131202.ListStreams"), json, false, "{}").await;
    assert_eq!(
        body,
        r#"{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}"#
    );
    let (_, body) = raw(
        &node,
        Some("Kinesis_20131202.ListStreams"),
        json,
        true,
        "{not json",
    )
    .await;
    assert_eq!(body, r#"{"__type":"SerializationException"}"#);
    let (_, body) = raw(
        &node,
        Some("Kinesis_20131202.CreateStream"),
        json,
        true,
        r#"{"StreamName": true}"#,
    )
    .await;
    assert!(
        body.contains(r#""__type":"SerializationException""#)
            && body.contains("class java.lang.Boolean can not be converted to an String"),
        "{body}"
    );
    let (_, body) = raw(&node, Some("Kinesis_20131202.GetRecords"), json, true, "{}").await;
    assert!(
        body.contains("Value null at 'shardIterator' failed to satisfy constraint: Member must not be null"),
        "{body}"
    );
    let (st, _) = raw(&node, None, "text/plain", true, "x").await;
    assert!(st.contains(" 403 "), "{st}");
    let (st, body) = raw(
        &node,
        Some("Kinesis_20131202.ListStreams"),
        json,
        true,
        r#"{"Limit": 1}"#,
    )
    .await;
    assert!(st.contains(" 200 "), "{st}");
    assert!(body.contains("\"StreamNames\":[]"), "{body}");
}

#[tokio::test]
async fn tags_limits_and_stream_mode() {
    use aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentOutputStatus;

    let node = Node::start().await;
    let c = client(&node);
    c.create_stream()
        .stream_name("tg")
        .shard_count(2)
        .tags("team", "data")
        .send()
        .await
        .unwrap();
    c.wait_until_stream_exists()
        .stream_name("tg")
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/tg";
    c.add_tags_to_stream()
        .stream_name("tg")
        .tags("a", "1")
        .tags("b", "2")
        .send()
        .await
        .unwrap();
    let t = c
        .list_tags_for_stream()
        .stream_name("tg")
        .limit(2)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = t.tags().iter().map(|t| t.key()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert!(t.has_more_tags());
    let t = c
        .list_tags_for_stream()
        .stream_arn(arn)
        .exclusive_start_tag_key("b")
        .send()
        .await
        .unwrap();
    assert_eq!(t.tags()[0].key(), "team");
    assert_eq!(t.tags()[0].value(), Some("data"));
    assert!(!t.has_more_tags());
    c.remove_tags_from_stream()
        .stream_name("tg")
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    c.tag_resource()
        .resource_arn(arn)
        .tags("c", "3")
        .send()
        .await
        .unwrap();
    c.untag_resource()
        .resource_arn(arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let t = c.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
    let pairs: Vec<(&str, Option<&str>)> = t.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(pairs, [("b", Some("2")), ("c", Some("3"))]);
    let (t, _) = code(
        c.list_tags_for_resource()
            .resource_arn("arn:aws:kinesis:us-east-1:000000000000:stream/none")
            .send()
            .await,
    );
    assert_eq!(t, "ResourceNotFoundException");
    let mut too_many = c.add_tags_to_stream().stream_name("tg");
    for i in 0..49 {
        too_many = too_many.tags(format!("k{i}"), "v");
    }
    let (t, _) = code(too_many.send().await);
    assert_eq!(t, "InvalidArgumentException");

    let l = c.describe_limits().send().await.unwrap();
    assert_eq!(l.shard_limit(), 20_000);
    assert_eq!(l.open_shard_count(), 2);
    assert_eq!(l.on_demand_stream_count(), 0);
    assert_eq!(l.on_demand_stream_count_limit(), 50);
    let s = c.describe_account_settings().send().await.unwrap();
    assert_eq!(
        s.minimum_throughput_billing_commitment().unwrap().status(),
        &MinimumThroughputBillingCommitmentOutputStatus::Disabled
    );

    c.update_stream_mode()
        .stream_arn(arn)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    c.wait_until_stream_exists()
        .stream_name("tg")
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
    let s = c
        .describe_stream_summary()
        .stream_name("tg")
        .send()
        .await
        .unwrap();
    let s = s.stream_description_summary().unwrap();
    assert_eq!(
        s.stream_mode_details().unwrap().stream_mode(),
        &StreamMode::OnDemand
    );
    assert_eq!(
        c.describe_limits().send().await.unwrap().on_demand_stream_count(),
        1
    );
}

/// Sends a CBOR 1.1 request; returns the status code and the decoded body.
async fn cbor(node: &Node, op: &str, body: ciborium::Value) -> (u16, ciborium::Value) {
    let mut bytes = Vec::new();
    ciborium::ser::into_writer(&body, &mut bytes).unwrap();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", node.kinesis_port))
        .await
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-amz-cbor-1.1\r\nX-Amz-Target: Kinesis_20131202.{op}\r\nContent-Length: {}\r\nConnection: close\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00\r\nX-Amz-Date: 20240101T000000Z\r\n\r\n",
        bytes.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    assert!(head.contains("application/x-amz-cbor-1.1"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let value = ciborium::de::from_reader(&out[split + 4..]).unwrap();
    (status, value)
}

fn cmap(entries: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
    ciborium::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (ciborium::Value::Text(k.into()), v))
            .collect(),
    )
}

fn cget<'a>(v: &'a ciborium::Value, key: &str) -> &'a ciborium::Value {
    v.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_text() == Some(key)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {v:?}"))
}

#[tokio::test]
async fn cbor_protocol() {
    use ciborium::Value;

    let minute_ago_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    let node = Node::start().await;
    let c = client(&node);
    let (st, _) = cbor(
        &node,
        "CreateStream",
        cmap(vec![
            ("StreamName", Value::Text("cb".into())),
            ("ShardCount", Value::Integer(1.into())),
        ]),
    )
    .await;
    assert_eq!(st, 200);
    c.wait_until_stream_exists()
        .stream_name("cb")
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
    // Blobs are CBOR byte strings, not base64.
    let (st, put) = cbor(
        &node,
        "PutRecord",
        cmap(vec![
            ("StreamName", Value::Text("cb".into())),
            ("PartitionKey", Value::Text("k".into())),
            ("Data", Value::Bytes(vec![0, 1, 2, 255])),
        ]),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(cget(&put, "ShardId").as_text(), Some("shardId-000000000000"));
    let (_, it) = cbor(
        &node,
        "GetShardIterator",
        cmap(vec![
            ("StreamName", Value::Text("cb".into())),
            ("ShardId", Value::Text("shardId-000000000000".into())),
            ("ShardIteratorType", Value::Text("AT_TIMESTAMP".into())),
            // As the Java SDK sends it: tag 1 + epoch milliseconds (read as seconds, this
            // would be far in the future and refused).
            (
                "Timestamp",
                Value::Tag(1, Box::new(Value::Integer(minute_ago_ms.into()))),
            ),
        ]),
    )
    .await;
    assert!(cget(&it, "ShardIterator").as_text().is_some(), "{it:?}");
    let (st, got) = cbor(
        &node,
        "GetRecords",
        cmap(vec![("ShardIterator", cget(&it, "ShardIterator").clone())]),
    )
    .await;
    assert_eq!(st, 200);
    let rec = &cget(&got, "Records").as_array().unwrap()[0];
    assert_eq!(cget(rec, "Data").as_bytes().unwrap(), &vec![0u8, 1, 2, 255]);
    // Arrival times come back as the Java SDK reads them: tag 1 + integer epoch milliseconds.
    match cget(rec, "ApproximateArrivalTimestamp") {
        Value::Tag(1, v) => {
            let ms = i128::from(v.as_integer().expect("integer milliseconds"));
            assert!(ms >= i128::from(minute_ago_ms), "{ms}");
        }
        other => panic!("{other:?}"),
    }
    // Errors are CBOR too.
    let (st, err) = cbor(
        &node,
        "DescribeStream",
        cmap(vec![("StreamName", Value::Text("nope".into()))]),
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(cget(&err, "__type").as_text(), Some("ResourceNotFoundException"));
    let (_, err) = cbor(
        &node,
        "CreateStream",
        cmap(vec![("StreamName", Value::Bool(true))]),
    )
    .await;
    assert_eq!(cget(&err, "__type").as_text(), Some("SerializationException"));
    let (_, err) = cbor(&node, "PutResourcePolicy", cmap(vec![])).await;
    assert_eq!(cget(&err, "__type").as_text(), Some("UnknownOperationException"));
    let (_, err) = cbor(&node, "MergeShards", cmap(vec![])).await;
    assert_eq!(cget(&err, "__type").as_text(), Some("ValidationException"));
}
