//! RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers,
//! DeregisterStreamConsumer.

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::protocol::timestamp;
use super::tags::tag_map;
use crate::service::ConsumerDescription;
use crate::service::document::Doc;

/// `Consumer` (RegisterStreamConsumer, ListStreamConsumers); `ConsumerDescription` adds the
/// stream's ARN.
fn consumer_doc(c: &ConsumerDescription, with_stream: bool) -> Doc {
    let out = Out::new()
        .put("ConsumerName", c.name.as_str())
        .put("ConsumerARN", c.arn.as_str())
        .put("ConsumerStatus", c.status.aws_name())
        .put("ConsumerCreationTimestamp", timestamp(c.created_ms));
    if with_stream {
        out.put("StreamARN", c.stream_arn.as_str()).doc()
    } else {
        out.doc()
    }
}

pub(super) async fn register_stream_consumer(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let tags = tag_map(&doc);
    let c = api
        .service()
        .register_consumer(
            doc.str("StreamARN").unwrap_or_default(),
            doc.str("ConsumerName").unwrap_or_default(),
            tags,
        )
        .await?;
    Ok(Out::new().put("Consumer", consumer_doc(&c, false)).doc())
}

pub(super) fn describe_stream_consumer(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let c = api.service().describe_consumer(
        doc.str("StreamARN"),
        doc.str("ConsumerName"),
        doc.str("ConsumerARN"),
    )?;
    Ok(Out::new()
        .put("ConsumerDescription", consumer_doc(&c, true))
        .doc())
}

pub(super) fn list_stream_consumers(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let out = api.service().list_consumers(
        doc.str("StreamARN").unwrap_or_default(),
        doc.str("NextToken"),
        doc.int("MaxResults")
            .map(|m| u32::try_from(m.max(0)).unwrap_or(u32::MAX)),
        doc.timestamp_ms("StreamCreationTimestamp"),
    )?;
    Ok(Out::new()
        .put(
            "Consumers",
            out.consumers
                .iter()
                .map(|c| consumer_doc(c, false))
                .collect::<Vec<_>>(),
        )
        .opt("NextToken", out.next_token)
        .doc())
}

pub(super) async fn deregister_stream_consumer(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    api.service()
        .deregister_consumer(
            doc.str("StreamARN"),
            doc.str("ConsumerName"),
            doc.str("ConsumerARN"),
        )
        .await?;
    Ok(Out::new().doc())
}
