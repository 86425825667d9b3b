//! Delivery streams in the catalog through the admin gRPC API against a real node: put,
//! describe, list, replace, delete, the errors, and that they survive restarts, including a
//! restart from a catalog snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use support::Node;
use tonic::Code;
use tonic::transport::Channel;

async fn put(
    admin: &mut AdminClient<Channel>,
    name: &str,
    spec: &str,
) -> Result<pb::DeliveryStreamDescription, tonic::Status> {
    admin
        .put_delivery_stream(pb::PutDeliveryStreamRequest {
            delivery_stream_name: name.into(),
            spec_json: spec.into(),
        })
        .await
        .map(|r| r.into_inner().delivery_stream.expect("description"))
}

async fn describe(
    admin: &mut AdminClient<Channel>,
    name: &str,
) -> Result<pb::DeliveryStreamDescription, tonic::Status> {
    admin
        .describe_delivery_stream(pb::DescribeDeliveryStreamRequest {
            delivery_stream_name: name.into(),
        })
        .await
        .map(|r| r.into_inner().delivery_stream.expect("description"))
}

async fn list_all(admin: &mut AdminClient<Channel>, page: u32) -> Vec<String> {
    let mut names = Vec::new();
    let mut start = String::new();
    loop {
        let r = admin
            .list_delivery_streams(pb::ListDeliveryStreamsRequest {
                exclusive_start_delivery_stream_name: start.clone(),
                limit: page,
            })
            .await
            .expect("list delivery streams")
            .into_inner();
        assert!(
            page == 0 || r.delivery_stream_names.len() <= page as usize,
            "{r:?}"
        );
        names.extend(r.delivery_stream_names.iter().cloned());
        if !r.has_more_delivery_streams {
            return names;
        }
        start = r.delivery_stream_names.last().expect("a full page").clone();
    }
}

async fn delete(admin: &mut AdminClient<Channel>, name: &str) -> Result<(), tonic::Status> {
    admin
        .delete_delivery_stream(pb::DeleteDeliveryStreamRequest {
            delivery_stream_name: name.into(),
        })
        .await
        .map(|_| ())
}

const SPEC_A: &str = r#"{"source":{"streamName":"orders"},"destination":{"s3":{"bucket":"archive"}}}"#;
const SPEC_B: &str = r#"{"source":{"streamName":"orders"},"destination":{"s3":{"bucket":"archive-2"}}}"#;

#[tokio::test]
async fn put_describe_list_replace_delete_and_restart() {
    let mut node = Node::start().await;
    let mut admin = node.admin().await;

    // Create; the same put again is idempotent.
    let created = put(&mut admin, "to-s3", SPEC_A).await.unwrap();
    assert_eq!(created.delivery_stream_name, "to-s3");
    assert_eq!(
        created.delivery_stream_arn,
        "arn:aws:firehose:us-east-1:000000000000:deliverystream/to-s3"
    );
    assert_eq!(created.status, pb::DeliveryStreamStatus::Declared as i32);
    assert_eq!(created.spec_json, SPEC_A);
    assert!(created.creation_timestamp_ms > 0);
    assert_eq!(created.last_update_timestamp_ms, created.creation_timestamp_ms);
    assert_eq!(put(&mut admin, "to-s3", SPEC_A).await.unwrap(), created);
    assert_eq!(describe(&mut admin, "to-s3").await.unwrap(), created);

    // Replace the spec: the creation time stays.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let replaced = put(&mut admin, "to-s3", SPEC_B).await.unwrap();
    assert_eq!(replaced.spec_json, SPEC_B);
    assert_eq!(replaced.creation_timestamp_ms, created.creation_timestamp_ms);
    assert!(replaced.last_update_timestamp_ms > created.last_update_timestamp_ms);
    assert_eq!(describe(&mut admin, "to-s3").await.unwrap(), replaced);

    // List, in pages.
    for name in ["a.1", "b_2", "c-3"] {
        put(&mut admin, name, "{}").await.unwrap();
    }
    let all = vec!["a.1", "b_2", "c-3", "to-s3"];
    assert_eq!(list_all(&mut admin, 1).await, all);
    assert_eq!(list_all(&mut admin, 100).await, all);
    assert_eq!(list_all(&mut admin, 0).await, all, "0 means the default limit");

    // Errors.
    let e = describe(&mut admin, "absent").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = delete(&mut admin, "absent").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    for bad in ["", "has space", &"x".repeat(65)] {
        let e = put(&mut admin, bad, "{}").await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
        let e = describe(&mut admin, bad).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
    }
    for bad in ["", "[1]", "{not json"] {
        let e = put(&mut admin, "bad-spec", bad).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e:?}");
    }
    let e = admin
        .list_delivery_streams(pb::ListDeliveryStreamsRequest {
            exclusive_start_delivery_stream_name: String::new(),
            limit: 10_001,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert_eq!(list_all(&mut admin, 100).await, all, "nothing bad was stored");

    // Delete.
    delete(&mut admin, "b_2").await.unwrap();
    assert_eq!(
        describe(&mut admin, "b_2").await.unwrap_err().code(),
        Code::NotFound
    );
    let all = vec!["a.1", "c-3", "to-s3"];
    assert_eq!(list_all(&mut admin, 100).await, all);

    // Delivery streams and streams do not share names' namespaces.
    let streams = admin
        .list_streams(pb::ListStreamsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(streams.stream_names.is_empty(), "{streams:?}");

    // They survive a restart (from the catalog log).
    node.restart().await;
    let mut admin = node.admin().await;
    assert_eq!(list_all(&mut admin, 100).await, all, "{}", node.log());
    assert_eq!(describe(&mut admin, "to-s3").await.unwrap(), replaced);

    // Enough catalog entries for a snapshot (every 1000 entries; the log it covers is purged),
    // then a restart: the delivery streams come back from the snapshot.
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let mut admin = node.admin().await;
        tasks.spawn(async move {
            for i in 0..130 {
                let spec = format!(r#"{{"worker":{worker},"i":{i}}}"#);
                put(&mut admin, &format!("churn-{worker}"), &spec).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let last = put(&mut admin, "to-s3", SPEC_A).await.unwrap();
    assert_eq!(last.creation_timestamp_ms, replaced.creation_timestamp_ms);
    let snapshot = node.data_dir().join("catalog").join("snapshot.json");
    let text = std::fs::read_to_string(&snapshot)
        .unwrap_or_else(|e| panic!("no catalog snapshot at {}: {e}", snapshot.display()));
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    let data: Vec<u8> = serde_json::from_value(stored["data"].clone()).unwrap();
    let state = String::from_utf8(data).unwrap();
    assert!(
        state.contains("\"churn-7\""),
        "the snapshot holds delivery streams"
    );
    node.restart().await;
    let mut admin = node.admin().await;
    let mut expected: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    expected.extend((0..8).map(|w| format!("churn-{w}")));
    expected.sort();
    assert_eq!(list_all(&mut admin, 3).await, expected, "{}", node.log());
    assert_eq!(describe(&mut admin, "to-s3").await.unwrap(), last);
    assert_eq!(
        describe(&mut admin, "churn-7").await.unwrap().spec_json,
        r#"{"worker":7,"i":129}"#
    );
}
