//! The native gRPC API against a real node: stream lifecycle, every read position, subscribe,
//! the PutRecordsStream call, restarts and the `/metrics` endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::streams_client::StreamsClient;
use support::Node;
use support::entry;
use support::error_type;
use support::seq_cmp;
use tonic::Code;
use tonic::transport::Channel;

async fn describe(
    admin: &mut AdminClient<Channel>,
    name: &str,
) -> Result<pb::StreamDescription, tonic::Status> {
    admin
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: name.into(),
        })
        .await
        .map(|r| r.into_inner().stream.expect("stream description"))
}

async fn list_all(admin: &mut AdminClient<Channel>, page: u32) -> Vec<String> {
    let mut names = Vec::new();
    let mut start = String::new();
    loop {
        let r = admin
            .list_streams(pb::ListStreamsRequest {
                exclusive_start_stream_name: start.clone(),
                limit: page,
            })
            .await
            .expect("list streams")
            .into_inner();
        assert!(r.stream_names.len() <= page as usize, "{r:?}");
        names.extend(r.stream_names.iter().cloned());
        if !r.has_more_streams {
            return names;
        }
        start = r.stream_names.last().expect("a full page").clone();
    }
}

async fn get(
    client: &mut StreamsClient<Channel>,
    stream: &str,
    shard: &str,
    position: pb::Position,
    limit: u32,
) -> pb::GetRecordsResponse {
    client
        .get_records(pb::GetRecordsRequest {
            stream_name: stream.into(),
            shard_id: shard.into(),
            position: Some(position),
            limit,
        })
        .await
        .unwrap_or_else(|e| panic!("GetRecords {stream}/{shard}: {e:?}"))
        .into_inner()
}

fn data_of(records: &[pb::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle() {
    let node = Node::start().await;
    let mut admin = node.admin().await;
    let mut client = node.streams().await;

    let names = ["api-e", "api-a", "api-c", "api-b", "api-d"];
    for (i, name) in names.iter().enumerate() {
        let r = admin
            .create_stream(pb::CreateStreamRequest {
                stream_name: name.to_string(),
                shard_count: Some(i as u32 + 1),
                mode: pb::StreamMode::Provisioned as i32,
                tags: [("team".to_string(), "tests".to_string())].into(),
                ..Default::default()
            })
            .await
            .expect("create")
            .into_inner()
            .stream
            .expect("description");
        assert_eq!(r.stream_name, *name);
        assert!(
            [pb::StreamStatus::Creating as i32, pb::StreamStatus::Active as i32].contains(&r.status),
            "{r:?}"
        );
    }
    for (i, name) in names.iter().enumerate() {
        support::wait_active(&mut admin, name).await;
        let d = describe(&mut admin, name).await.expect("describe");
        assert_eq!(d.status, pb::StreamStatus::Active as i32);
        assert!(
            d.stream_arn.ends_with(&format!(":stream/{name}")),
            "{}",
            d.stream_arn
        );
        assert_eq!(d.retention_period_hours, 24);
        assert_eq!(d.tags.get("team").map(String::as_str), Some("tests"));
        assert_eq!(d.shards.len(), i + 1);
        assert_eq!(d.open_shard_count as usize, i + 1);
        // Shard ids in order, hash key ranges tiling 0..=2^128-1.
        let mut next = 0u128;
        for (j, s) in d.shards.iter().enumerate() {
            assert_eq!(s.shard_id, format!("shardId-{j:012}"));
            let range = s.hash_key_range.as_ref().expect("hash key range");
            let start: u128 = range.starting_hash_key.parse().expect("start");
            let end: u128 = range.ending_hash_key.parse().expect("end");
            assert_eq!(start, next, "{name} shard {j} range {range:?}");
            assert!(end >= start);
            next = end.wrapping_add(1);
            assert!(s.ending_sequence_number.is_empty(), "open shard");
        }
        assert_eq!(next, 0, "{name}: ranges end at 2^128-1");
    }

    // Creating an existing stream fails.
    let r = admin
        .create_stream(pb::CreateStreamRequest {
            stream_name: "api-a".into(),
            shard_count: Some(1),
            mode: pb::StreamMode::Provisioned as i32,
            ..Default::default()
        })
        .await;
    let s = r.expect_err("duplicate create");
    assert_eq!(error_type(&s), "ResourceInUseException", "{s:?}");

    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    for page in [1, 2, 3, 5, 100] {
        assert_eq!(list_all(&mut admin, page).await, sorted, "page size {page}");
    }
    let r = admin
        .list_streams(pb::ListStreamsRequest {
            exclusive_start_stream_name: "api-b".into(),
            limit: 2,
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(r.stream_names, ["api-c", "api-d"]);
    assert!(r.has_more_streams);
    let r = admin
        .list_streams(pb::ListStreamsRequest {
            exclusive_start_stream_name: "api-e".into(),
            limit: 2,
        })
        .await
        .expect("list")
        .into_inner();
    assert!(r.stream_names.is_empty() && !r.has_more_streams, "{r:?}");

    // Delete a stream that holds data; it disappears after the transition.
    support::put_ok(
        &mut client,
        "api-c",
        (0..10)
            .map(|i| entry(&format!("k{i}"), format!("old-{i}")))
            .collect(),
    )
    .await;
    admin
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "api-c".into(),
        })
        .await
        .expect("delete");
    let mut gone = false;
    for _ in 0..300 {
        match describe(&mut admin, "api-c").await {
            Ok(d) => assert_eq!(d.status, pb::StreamStatus::Deleting as i32, "{d:?}"),
            Err(s) => {
                assert_eq!(s.code(), Code::NotFound, "{s:?}");
                assert_eq!(error_type(&s), "ResourceNotFoundException");
                gone = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "api-c still exists 15 s after DeleteStream");
    sorted.retain(|s| s != "api-c");
    assert_eq!(list_all(&mut admin, 2).await, sorted);
    let r = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "api-c".into(),
            records: vec![entry("k", "x")],
        })
        .await;
    assert_eq!(
        error_type(&r.expect_err("put to a deleted stream")),
        "ResourceNotFoundException"
    );
    let r = admin
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "api-c".into(),
        })
        .await;
    assert_eq!(
        error_type(&r.expect_err("delete a deleted stream")),
        "ResourceNotFoundException"
    );

    // Recreating the name works and starts empty.
    support::create_active_stream(&mut admin, "api-c", 2).await;
    let shards = support::read_stream(&mut client, &mut admin, "api-c").await;
    assert_eq!(shards.len(), 2);
    for (shard, records) in &shards {
        assert!(records.is_empty(), "recreated stream holds old data in {shard}");
    }
    support::put_ok(&mut client, "api-c", vec![entry("k", "new")]).await;
    let shards = support::read_stream(&mut client, &mut admin, "api-c").await;
    let all: Vec<_> = shards.iter().flat_map(|(_, r)| data_of(r)).collect();
    assert_eq!(all, ["new"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_get_from_every_position() {
    let node = Node::start().await;
    let mut admin = node.admin().await;
    let mut client = node.streams().await;
    let stream = "positions";
    let shard = support::create_active_stream(&mut admin, stream, 1).await[0].clone();

    // An empty shard: every position reads nothing.
    for p in [
        support::trim_horizon(),
        support::latest(),
        support::at_timestamp(0),
    ] {
        let r = get(&mut client, stream, &shard, p, 0).await;
        assert!(r.records.is_empty());
        assert!(r.next_position.is_some());
    }

    let first: Vec<_> = (0..10)
        .map(|i| pb::PutRecordsEntry {
            partition_key: format!("key-{i}"),
            data: format!("r{i}").into_bytes().into(),
            explicit_hash_key: (i == 3).then(|| "12345".to_string()),
        })
        .collect();
    let mut acks = support::put_ok(&mut client, stream, first).await;
    for i in 10..15 {
        acks.extend(
            support::put_ok(
                &mut client,
                stream,
                vec![entry(&format!("key-{i}"), format!("r{i}"))],
            )
            .await,
        );
    }
    for w in acks.windows(2) {
        assert_eq!(seq_cmp(&w[0].1, &w[1].1), Ordering::Less, "acks in order");
    }
    assert!(acks.iter().all(|(s, _)| *s == shard));

    // Trim horizon: everything, in order, intact.
    let all = get(&mut client, stream, &shard, support::trim_horizon(), 0).await;
    assert_eq!(all.records.len(), 15);
    for (i, r) in all.records.iter().enumerate() {
        assert_eq!(r.sequence_number, acks[i].1);
        assert_eq!(r.partition_key, format!("key-{i}"));
        assert_eq!(r.data, format!("r{i}").as_bytes());
        assert_eq!(r.explicit_hash_key.as_deref(), (i == 3).then_some("12345"));
        assert!(r.approximate_arrival_timestamp_ms > 0);
    }
    let tail = get(
        &mut client,
        stream,
        &shard,
        all.next_position.clone().expect("next"),
        0,
    )
    .await;
    assert!(tail.records.is_empty(), "read past the end");

    // Paging with a limit follows next_position without gaps or repeats.
    let mut paged = Vec::new();
    let mut position = support::trim_horizon();
    loop {
        let r = get(&mut client, stream, &shard, position, 4).await;
        assert!(r.records.len() <= 4);
        if r.records.is_empty() {
            break;
        }
        paged.extend(r.records);
        position = r.next_position.expect("next");
    }
    assert_eq!(data_of(&paged), data_of(&all.records));

    // At and after a sequence number.
    let r = get(&mut client, stream, &shard, support::at_seq(&acks[5].1), 0).await;
    assert_eq!(data_of(&r.records), data_of(&all.records[5..]));
    let r = get(&mut client, stream, &shard, support::after_seq(&acks[5].1), 0).await;
    assert_eq!(data_of(&r.records), data_of(&all.records[6..]));
    let r = get(&mut client, stream, &shard, support::after_seq(&acks[14].1), 0).await;
    assert!(r.records.is_empty());
    let r = get(&mut client, stream, &shard, support::at_seq(&acks[0].1), 3).await;
    assert_eq!(data_of(&r.records), ["r0", "r1", "r2"]);

    // Latest, then put, then read from the returned position: exactly the new records.
    let r = get(&mut client, stream, &shard, support::latest(), 0).await;
    assert!(r.records.is_empty());
    let after_latest = r.next_position.expect("next");
    let new = support::put_ok(
        &mut client,
        stream,
        (15..18)
            .map(|i| entry(&format!("key-{i}"), format!("r{i}")))
            .collect(),
    )
    .await;
    let r = get(&mut client, stream, &shard, after_latest, 0).await;
    assert_eq!(data_of(&r.records), ["r15", "r16", "r17"]);
    assert_eq!(r.records[0].sequence_number, new[0].1);

    // At a timestamp: records arriving at or after it. Sleep so arrival times differ.
    tokio::time::sleep(Duration::from_millis(30)).await;
    support::put_ok(
        &mut client,
        stream,
        (18..20)
            .map(|i| entry(&format!("key-{i}"), format!("r{i}")))
            .collect(),
    )
    .await;
    let all = get(&mut client, stream, &shard, support::trim_horizon(), 0).await;
    assert_eq!(all.records.len(), 20);
    let ts = all.records[18].approximate_arrival_timestamp_ms;
    assert!(
        ts > all.records[17].approximate_arrival_timestamp_ms,
        "30 ms apart"
    );
    let r = get(&mut client, stream, &shard, support::at_timestamp(ts), 0).await;
    assert_eq!(data_of(&r.records), ["r18", "r19"]);
    let r = get(&mut client, stream, &shard, support::at_timestamp(0), 0).await;
    assert_eq!(r.records.len(), 20);
    let r = get(
        &mut client,
        stream,
        &shard,
        support::at_timestamp(ts + 3_600_000),
        0,
    )
    .await;
    assert!(r.records.is_empty());
    // Arrival timestamps never go backwards within the shard.
    for w in all.records.windows(2) {
        assert!(w[0].approximate_arrival_timestamp_ms <= w[1].approximate_arrival_timestamp_ms);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_put_records_stream() {
    let node = Node::start().await;
    let mut admin = node.admin().await;
    let mut client = node.streams().await;
    let stream = "subscribed";
    let shard = support::create_active_stream(&mut admin, stream, 1).await[0].clone();
    support::put_ok(&mut client, stream, vec![entry("k", "before")]).await;

    let mut from_latest = client
        .subscribe(pb::SubscribeRequest {
            stream_name: stream.into(),
            shard_id: shard.clone(),
            position: Some(support::latest()),
            consumer: None,
        })
        .await
        .expect("subscribe")
        .into_inner();
    let mut from_start = client
        .subscribe(pb::SubscribeRequest {
            stream_name: stream.into(),
            shard_id: shard.clone(),
            position: Some(support::trim_horizon()),
            consumer: None,
        })
        .await
        .expect("subscribe")
        .into_inner();

    // Produce through the bidirectional call: one response per request, in order.
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut responses = client
        .put_records_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("PutRecordsStream")
        .into_inner();
    let mut acks = Vec::new();
    for batch in 0..5 {
        let records = (0..=batch)
            .map(|i| entry(&format!("k{batch}-{i}"), format!("b{batch}-{i}")))
            .collect();
        tx.send(pb::PutRecordsRequest {
            stream_name: stream.into(),
            records,
        })
        .await
        .expect("send");
        let r = tokio::time::timeout(Duration::from_secs(10), responses.message())
            .await
            .expect("response within 10 s")
            .expect("response")
            .expect("one response per request");
        assert_eq!(r.failed_record_count, 0);
        assert_eq!(r.records.len(), batch + 1);
        acks.extend(r.records.into_iter().map(|r| r.sequence_number));
    }
    // Pipelined: several requests in flight, responses still in request order.
    for batch in 5..8 {
        tx.send(pb::PutRecordsRequest {
            stream_name: stream.into(),
            records: vec![entry("k", format!("b{batch}-0"))],
        })
        .await
        .expect("send");
    }
    drop(tx);
    while let Some(r) = responses.message().await.expect("response") {
        assert_eq!(r.records.len(), 1);
        acks.push(r.records[0].sequence_number.clone());
    }
    assert_eq!(acks.len(), 15 + 3);
    for w in acks.windows(2) {
        assert_eq!(seq_cmp(&w[0], &w[1]), Ordering::Less);
    }
    let mut expected: Vec<String> = (0..5)
        .flat_map(|b| (0..=b).map(move |i| format!("b{b}-{i}")))
        .collect();
    expected.extend((5..8).map(|b| format!("b{b}-0")));

    async fn collect(events: &mut tonic::Streaming<pb::SubscribeEvent>, n: usize) -> Vec<pb::Record> {
        let mut out = Vec::new();
        while out.len() < n {
            let e = tokio::time::timeout(Duration::from_secs(10), events.message())
                .await
                .expect("subscribe event within 10 s")
                .expect("event")
                .expect("subscription open");
            if !e.records.is_empty() {
                assert!(!e.continuation_sequence_number.is_empty());
            }
            out.extend(e.records);
        }
        out
    }
    let got = collect(&mut from_latest, expected.len()).await;
    assert_eq!(data_of(&got), expected, "subscription from latest");
    let got_seqs: Vec<_> = got.iter().map(|r| r.sequence_number.clone()).collect();
    assert_eq!(got_seqs, acks);
    let got = collect(&mut from_start, expected.len() + 1).await;
    let mut with_before = vec!["before".to_string()];
    with_before.extend(expected.iter().cloned());
    assert_eq!(data_of(&got), with_before, "subscription from trim horizon");

    // Records put later keep arriving on the same subscription.
    support::put_ok(&mut client, stream, vec![entry("k", "late")]).await;
    let got = collect(&mut from_latest, 1).await;
    assert_eq!(data_of(&got), ["late"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_keep_data_and_streams() {
    let mut node = Node::start().await;
    let mut expected: BTreeMap<String, Vec<(String, Vec<pb::Record>)>> = BTreeMap::new();
    {
        let mut admin = node.admin().await;
        let mut client = node.streams().await;
        for (name, shards) in [("keep-a", 1), ("keep-b", 3)] {
            support::create_active_stream(&mut admin, name, shards).await;
            for batch in 0..3 {
                support::put_ok(
                    &mut client,
                    name,
                    (0..50)
                        .map(|i| entry(&format!("k{batch}-{i}"), format!("{name}-{batch}-{i}")))
                        .collect(),
                )
                .await;
            }
            expected.insert(
                name.to_string(),
                support::read_stream(&mut client, &mut admin, name).await,
            );
        }
    }
    let total: usize = expected
        .values()
        .flat_map(|s| s.iter().map(|(_, r)| r.len()))
        .sum();
    assert_eq!(total, 300);

    for how in ["SIGTERM", "SIGKILL"] {
        if how == "SIGTERM" {
            assert!(
                node.terminate().await,
                "graceful shutdown failed:\n{}",
                node.log()
            );
        } else {
            node.kill9();
        }
        node.restart().await;
        let mut admin = node.admin().await;
        let mut client = node.streams().await;
        assert_eq!(
            list_all(&mut admin, 100).await,
            ["keep-a", "keep-b"],
            "stream list after {how}"
        );
        for (name, shards) in &expected {
            support::wait_active(&mut admin, name).await;
            let now = support::read_stream(&mut client, &mut admin, name).await;
            assert_eq!(now.len(), shards.len());
            for ((id, before), (id2, after)) in shards.iter().zip(&now) {
                assert_eq!(id, id2);
                assert_eq!(
                    before.len(),
                    after.len(),
                    "{name}/{id} after {how} restart:\n{}",
                    node.log()
                );
                assert!(before == after, "{name}/{id} changed across a {how} restart");
            }
            // Writing continues after the restart, after the old records.
            let r = support::put_ok(&mut client, name, vec![entry("k0-0", "after")]).await;
            let (shard, seq) = &r[0];
            let old = &shards.iter().find(|(id, _)| id == shard).expect("shard").1;
            if let Some(last) = old.last() {
                assert_eq!(seq_cmp(&last.sequence_number, seq), Ordering::Less);
            }
        }
        // Keep the expectations in step with the extra records.
        let mut admin = node.admin().await;
        let mut client = node.streams().await;
        for (name, shards) in expected.iter_mut() {
            *shards = support::read_stream(&mut client, &mut admin, name).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_incoming_records() {
    let node = Node::start().await;
    let mut admin = node.admin().await;
    let mut client = node.streams().await;
    support::create_active_stream(&mut admin, "metered", 2).await;
    support::create_active_stream(&mut admin, "other", 1).await;
    let mut n = 0;
    for batch in [1usize, 7, 100, 500] {
        support::put_ok(
            &mut client,
            "metered",
            (0..batch).map(|i| entry(&format!("k{i}"), "payload")).collect(),
        )
        .await;
        n += batch;
    }
    support::put_ok(&mut client, "other", vec![entry("k", "x"), entry("k", "y")]).await;
    // A rejected put counts nothing.
    let _ = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "metered".into(),
            records: vec![entry("", "bad")],
        })
        .await
        .expect_err("empty key");

    let text = node.metrics().await;
    let value = |name: &str, stream: &str| -> Option<f64> {
        let prefix = format!("{name}{{stream=\"{stream}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
    };
    assert_eq!(
        value("runnel_incoming_records_total", "metered"),
        Some(n as f64),
        "metrics:\n{text}"
    );
    assert_eq!(value("runnel_incoming_records_total", "other"), Some(2.0));
    let bytes = value("runnel_incoming_bytes_total", "metered").expect("incoming bytes");
    assert!(bytes >= (n * "payload".len()) as f64, "{bytes}");
    assert!(text.contains("# TYPE runnel_incoming_records_total counter"));
}
