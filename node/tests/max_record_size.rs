//! MaxRecordSizeInKiB through the official Rust SDK against a real node: CreateStream with a
//! larger maximum, DescribeStreamSummary reporting it, records over 1 MiB accepted and read
//! back intact, records over the stream's maximum refused, UpdateMaxRecordSize raising it on a
//! running stream, and the model's range enforced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::primitives::Blob;
use support::Node;
use support::sdk::client;
use support::sdk::code;
use support::sdk::create_active;
use support::sdk::trim_horizon;

const KIB: usize = 1024;

fn record(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn max_kib(c: &Client, stream: &str) -> Option<i32> {
    c.describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .and_then(|s| s.max_record_size_in_kib())
}

async fn put(c: &Client, stream: &str, data: Vec<u8>) -> Result<String, (String, String)> {
    c.put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(data))
        .send()
        .await
        .map(|r| r.sequence_number().to_string())
        .map_err(|e| code::<_, ()>(Err(e)))
}

async fn read_all(c: &Client, stream: &str) -> Vec<Vec<u8>> {
    let iterator = trim_horizon(c, stream, "shardId-000000000000").await;
    let mut out = Vec::new();
    let mut next = Some(iterator);
    while let Some(it) = next.take() {
        let r = c.get_records().shard_iterator(it).send().await.unwrap();
        if r.records().is_empty() {
            break;
        }
        out.extend(r.records().iter().map(|r| r.data().as_ref().to_vec()));
        next = r.next_shard_iterator().map(str::to_string);
    }
    out
}

#[tokio::test]
async fn large_records_follow_the_streams_max_record_size() {
    let node = Node::start().await;
    let c = client(&node);

    // The default stream: 1 MiB, reported, and 1 MiB + 1 refused as before.
    create_active(&c, "plain", 1).await;
    assert_eq!(max_kib(&c, "plain").await, Some(1024));
    let (ty, _) = put(&c, "plain", record(1024 * KIB + 1, 0)).await.unwrap_err();
    assert_eq!(ty, "ValidationException");

    // A stream created for 2 MiB records.
    c.create_stream()
        .stream_name("large")
        .shard_count(1)
        .max_record_size_in_kib(2048)
        .send()
        .await
        .unwrap();
    c.wait_until_stream_exists()
        .stream_name("large")
        .wait(std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(max_kib(&c, "large").await, Some(2048));
    let big = record(1536 * KIB, 1);
    put(&c, "large", big.clone()).await.unwrap();
    let (ty, message) = put(&c, "large", record(2048 * KIB + 1, 2)).await.unwrap_err();
    assert_eq!(ty, "ValidationException", "{message}");
    assert!(message.contains("2097152"), "{message}");

    // Raised on the running stream: a 6 MiB record (over PutRecords' 5 MiB) goes in.
    let arn = c
        .describe_stream_summary()
        .stream_name("large")
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .unwrap()
        .stream_arn()
        .to_string();
    c.update_max_record_size()
        .stream_arn(&arn)
        .max_record_size_in_kib(10240)
        .send()
        .await
        .unwrap();
    assert_eq!(max_kib(&c, "large").await, Some(10240));
    let huge = record(6 * 1024 * KIB, 3);
    put(&c, "large", huge.clone()).await.unwrap();

    // Read back intact, in order.
    assert_eq!(read_all(&c, "large").await, vec![big, huge]);

    // Outside 1024..=10240: the model's ValidationException; the stream is unchanged.
    for kib in [512, 10241] {
        let (ty, _) = code(
            c.update_max_record_size()
                .stream_arn(&arn)
                .max_record_size_in_kib(kib)
                .send()
                .await,
        );
        assert_eq!(ty, "ValidationException");
    }
    assert_eq!(max_kib(&c, "large").await, Some(10240));
    // An unknown stream.
    let missing = arn.replace("stream/large", "stream/missing");
    let (ty, _) = code(
        c.update_max_record_size()
            .stream_arn(missing)
            .max_record_size_in_kib(2048)
            .send()
            .await,
    );
    assert_eq!(ty, "ResourceNotFoundException");
}
