//! The official Rust SDK (`aws-sdk-kinesis`) pointed at a test node's Kinesis port.

use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::config::Credentials;
use aws_sdk_kinesis::config::Region;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::operation::subscribe_to_shard::SubscribeToShardOutput;
use aws_sdk_kinesis::types::ConsumerStatus;
use aws_sdk_kinesis::types::StreamMode;
use aws_sdk_kinesis::types::StreamModeDetails;
use aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError;

use super::Node;

/// A client with the SDK's default retries, for the node's Kinesis port.
pub fn client(node: &Node) -> Client {
    Client::from_conf(config(node).build())
}

/// A client that never retries, so that every throttled call is seen.
pub fn client_without_retries(node: &Node) -> Client {
    Client::from_conf(config(node).retry_config(RetryConfig::disabled()).build())
}

/// A client with the SDK's default retries for a Kinesis port (e.g. of a cluster member).
pub fn client_for_port(port: u16) -> Client {
    Client::from_conf(config_for_port(port).build())
}

/// A client that never retries, for a Kinesis port (e.g. of a cluster member).
pub fn client_for_port_without_retries(port: u16) -> Client {
    Client::from_conf(
        config_for_port(port)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

fn config(node: &Node) -> aws_sdk_kinesis::config::Builder {
    config_for_port(node.kinesis_port)
}

fn config_for_port(port: u16) -> aws_sdk_kinesis::config::Builder {
    let http = aws_smithy_http_client::Builder::new().build_http();
    aws_sdk_kinesis::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .http_client(http)
}

/// A TRIM_HORIZON iterator of one shard.
pub async fn trim_horizon(c: &Client, stream: &str, shard: &str) -> String {
    c.get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .unwrap()
        .to_string()
}

/// The `(__type, message)` of a failed SDK call.
pub fn code<E: ProvideErrorMetadata, R>(r: Result<R, E>) -> (String, String) {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

pub async fn create_active(c: &Client, name: &str, shards: i32) {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    wait_active(c, name).await;
}

/// Waits until the stream is ACTIVE (after a create, a mode change or a reshard).
pub async fn wait_active(c: &Client, stream: &str) {
    c.wait_until_stream_exists()
        .stream_name(stream)
        .wait(Duration::from_secs(120))
        .await
        .unwrap();
}

/// Creates an ON_DEMAND stream and waits until it is ACTIVE.
pub async fn create_on_demand(c: &Client, name: &str) {
    c.create_stream()
        .stream_name(name)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    wait_active(c, name).await;
}

/// Whether the consumer is seen ACTIVE through `c` within 60 s (a cluster member that lags
/// behind the catalog may not know it yet).
pub async fn sees_consumer_active(c: &Client, consumer_arn: &str) -> bool {
    for _ in 0..600 {
        if let Ok(d) = c
            .describe_stream_consumer()
            .consumer_arn(consumer_arn)
            .send()
            .await
            && d.consumer_description().unwrap().consumer_status() == &ConsumerStatus::Active
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits until a SubscribeToShard ends with a ResourceInUseException event (taken over, or its
/// consumer deregistered); events before it (heartbeats) are skipped.
pub async fn ends_with_resource_in_use(out: &mut SubscribeToShardOutput) {
    let err = loop {
        let got = tokio::time::timeout(Duration::from_secs(60), out.event_stream.recv())
            .await
            .expect("an event within 60 s");
        match got {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the subscription ended without an exception"),
            Err(e) => break e,
        }
    };
    match err {
        SdkError::ServiceError(e) => assert!(
            matches!(
                e.err(),
                SubscribeToShardEventStreamError::ResourceInUseException(_)
            ),
            "{:?}",
            e.err()
        ),
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits until the consumer is ACTIVE (after RegisterStreamConsumer).
pub async fn wait_consumer_active(c: &Client, consumer_arn: &str) {
    for _ in 0..600 {
        let d = c
            .describe_stream_consumer()
            .consumer_arn(consumer_arn)
            .send()
            .await
            .unwrap();
        if d.consumer_description().unwrap().consumer_status() == &ConsumerStatus::Active {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("consumer {consumer_arn} never became ACTIVE");
}
