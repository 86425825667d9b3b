//! SubscribeToShard: the service's consumer subscription as an AWS event stream
//! (`initial-response`, then `SubscribeToShardEvent`s; exceptions as exception messages),
//! encoded in the request's format (JSON or CBOR), over HTTP/2 or chunked HTTP/1.1.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;
use futures::stream;

use super::KinesisApi;
use super::event_stream;
use super::protocol::ApiError;
use super::protocol::Format;
use super::protocol::Out;
use super::records::child_shard_doc;
use super::records::record_doc;
use crate::catalog::ConsumerArn;
use crate::model::SequenceNumber;
use crate::model::ShardId;
use crate::service::ServiceError;
use crate::service::StreamService;
use crate::service::SubscribeEvent;
use crate::service::document::Doc;
use crate::shard::Cursor;

/// The sequence number a subscriber resumes from (AWS: use it with AFTER_SEQUENCE_NUMBER, or
/// AT_SEQUENCE_NUMBER): the position just before `next`, i.e. of the last record delivered.
pub fn continuation_sequence_number(
    shard_index: u32,
    shard_created_secs: u64,
    next: Cursor,
) -> SequenceNumber {
    let (log_index, position) = match next.position.checked_sub(1) {
        Some(p) => (next.log_index, p),
        None => (next.log_index.saturating_sub(1), u16::MAX),
    };
    SequenceNumber {
        shard_created_secs,
        shard_index,
        log_index,
        position,
        arrival_secs: 0,
    }
}

fn event_doc(e: &SubscribeEvent, shard_index: u32, shard_created_secs: u64) -> Doc {
    // The last record's own sequence number when there is one (as AWS sends it), else the
    // position before the next read.
    let continuation = e.continuation.map(|c| match e.records.last() {
        Some(r) => r.sequence_number.to_string(),
        None => continuation_sequence_number(shard_index, shard_created_secs, c).to_string(),
    });
    let children: Vec<Doc> = e.child_shards.iter().map(child_shard_doc).collect();
    Out::new()
        .put("Records", e.records.iter().map(record_doc).collect::<Vec<_>>())
        .opt("ContinuationSequenceNumber", continuation)
        .put("MillisBehindLatest", e.millis_behind_latest)
        .opt("ChildShards", Some(children).filter(|c| !c.is_empty()))
        .doc()
}

/// The exception type of an error inside the event stream (the members of
/// SubscribeToShardEventStream).
fn exception_type(e: &ServiceError) -> &'static str {
    match e {
        ServiceError::ResourceNotFound(_) => "ResourceNotFoundException",
        ServiceError::ResourceInUse(_) => "ResourceInUseException",
        _ => "InternalFailureException",
    }
}

pub(super) async fn subscribe_to_shard(
    api: &KinesisApi,
    doc: Doc,
    format: Format,
    request_id: &str,
) -> Result<Response, ApiError> {
    let arn = doc.str("ConsumerARN").unwrap_or_default();
    let shard_id = doc.str("ShardId").unwrap_or_default();
    let start = doc.get("StartingPosition");
    let position = StreamService::iterator_request(
        start.and_then(|s| s.str("Type")).unwrap_or_default(),
        start.and_then(|s| s.str("SequenceNumber")),
        start.and_then(|s| s.timestamp_ms("Timestamp")),
    )?;
    let events = api.service().subscribe_consumer(arn, shard_id, position).await?;
    // The service resolved the ARN and the shard; they parse.
    let stream = ConsumerArn::parse(arn).map(|a| a.stream).unwrap_or_default();
    let shard_index = ShardId::parse(shard_id).map_or(0, |s| s.0);
    let created = api.service().shard_created_secs(&stream, shard_index);
    let content_type = format.content_type();
    let initial = event_stream::event(
        "initial-response",
        content_type,
        &format.encode(&Out::new().doc()),
    );
    let frames = events.map(move |e| match e {
        Ok(e) => event_stream::event(
            "SubscribeToShardEvent",
            content_type,
            &format.encode(&event_doc(&e, shard_index, created)),
        ),
        Err(e) => {
            tracing::debug!(error = %e, "subscription ended with an exception");
            let payload = format.encode(&Out::new().put("message", e.to_string()).doc());
            event_stream::exception(exception_type(&e), content_type, &payload)
        }
    });
    let body = stream::once(async move { initial })
        .chain(frames)
        .map(Ok::<_, Infallible>);
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(event_stream::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_is_the_position_before_the_next_read() {
        let c = continuation_sequence_number(
            3,
            100,
            Cursor {
                log_index: 9,
                position: 2,
            },
        );
        assert_eq!((c.log_index, c.position, c.shard_index), (9, 1, 3));
        let c = continuation_sequence_number(
            3,
            100,
            Cursor {
                log_index: 9,
                position: 0,
            },
        );
        assert_eq!((c.log_index, c.position), (8, u16::MAX));
        // AFTER_SEQUENCE_NUMBER of it is the next read's position again.
        assert_eq!(
            Cursor::after(&c),
            Cursor {
                log_index: 9,
                position: 0
            }
        );
    }
}
