//! The AWS Kinesis Data Streams HTTP API (`Kinesis_20131202`): a translator over the service
//! layer, like `grpc`. `POST /` with `X-Amz-Target: Kinesis_20131202.<Operation>`, AWS JSON 1.1
//! or CBOR 1.1 bodies, SigV4-shaped authentication, HTTP/1.1 and HTTP/2 on one port: cleartext
//! (h2c) by default, TLS (ALPN h2 / http/1.1, [`tls`]) with a configured certificate.
//!
//! Request handling, in AWS's order: method and content type, target, body, signature, then the
//! operation's model checks (types → SerializationException, constraints → ValidationException,
//! both from botocore's model in [`crate::service::document`]) and the operation itself.

pub mod auth;
mod consumers;
mod encryption;
pub mod event_stream;
pub mod iterator;
mod limits;
pub mod protocol;
mod records;
mod reshard;
mod shards;
mod streams;
mod subscribe;
mod tags;
pub mod tls;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::Method;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::response::Response;
use tokio::net::TcpListener;

use self::auth::Verifier;
use self::iterator::IteratorKeys;
use self::protocol::ApiError;
use self::protocol::Format;
use crate::service::StreamService;
use crate::service::document;
use crate::service::document::Doc;

pub const TARGET_PREFIX: &str = "Kinesis_20131202";
/// Largest request body accepted (PutRecords of 5 MiB is about 6.7 MiB in base64).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Everything a Kinesis request needs; cheap to clone.
#[derive(Clone)]
pub struct KinesisApi {
    inner: Arc<Inner>,
}

struct Inner {
    service: StreamService,
    iterators: IteratorKeys,
    verifier: Box<dyn Verifier>,
}

impl KinesisApi {
    pub fn new(service: StreamService, data_dir: &Path) -> std::io::Result<KinesisApi> {
        Ok(KinesisApi {
            inner: Arc::new(Inner {
                service,
                iterators: IteratorKeys::load_or_create(data_dir)?,
                verifier: Box::new(auth::AcceptAnyKey),
            }),
        })
    }

    pub(crate) fn service(&self) -> &StreamService {
        &self.inner.service
    }

    pub(crate) fn iterators(&self) -> &IteratorKeys {
        &self.inner.iterators
    }

    pub fn router(self) -> Router {
        Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }
}

/// Serves the API on `listener` until the task is dropped: over TLS when `tls` is given, else
/// cleartext HTTP/1.1 and h2c.
pub async fn serve(
    listener: TcpListener,
    api: KinesisApi,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    match tls {
        Some(config) => tls::serve(listener, api.router(), config).await,
        None => axum::serve(listener, api.router()).await,
    }
}

async fn handle(
    State(api): State<KinesisApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = protocol::request_id();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let format = Format::from_content_type(header("content-type"));
    let target = header("x-amz-target").unwrap_or_default();
    let (service, op) = target.split_once('.').unwrap_or((target, ""));
    if method != Method::POST {
        return protocol::unattributed_response(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            Some("Unable to determine service/operation name to be authorized"),
            &request_id,
        );
    }
    let known = service == TARGET_PREFIX && is_served(op);
    let Some(format) = format else {
        if service.is_empty() || op.is_empty() {
            return protocol::unattributed_response(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                Some("Unable to determine service/operation name to be authorized"),
                &request_id,
            );
        }
        return protocol::unattributed_response(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            None,
            &request_id,
        );
    };
    let fail = |e: ApiError| protocol::error_response(format, &e, &request_id);
    if body.is_empty() {
        return fail(ApiError::bare(if known {
            "SerializationException"
        } else {
            "UnknownOperationException"
        }));
    }
    let Some(doc) = format.decode(&body) else {
        return fail(ApiError::bare("SerializationException"));
    };
    if !known {
        return fail(ApiError::bare("UnknownOperationException"));
    }
    let sig = match auth::check(&headers, uri.query()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Err(e) = api.inner.verifier.verify(&sig) {
        return fail(e);
    }
    if op == "SubscribeToShard" {
        // The answer is an event stream rather than one document.
        let subscribed = match check(op, doc) {
            Ok(doc) => subscribe::subscribe_to_shard(&api, doc, format, &request_id).await,
            Err(e) => Err(e),
        };
        return subscribed.unwrap_or_else(fail);
    }
    match call(&api, op, doc).await {
        Ok(out) => protocol::ok_response(format, &out, &request_id),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(operation = op, error = ?e.message, "kinesis request failed");
            }
            fail(e)
        }
    }
}

/// The operations this build answers; every other one is an UnknownOperationException, as AWS
/// answers an operation it does not have.
const SERVED: &[&str] = &[
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeAccountSettings",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "GetRecords",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForResource",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateMaxRecordSize",
    "UpdateShardCount",
    "UpdateStreamMode",
];

fn is_served(op: &str) -> bool {
    SERVED.contains(&op)
}

/// Checks the request against the operation's model and refuses the members this build
/// cannot honour.
fn check(op: &str, doc: Doc) -> Result<Doc, ApiError> {
    let doc = match document::operation_input(op) {
        Some(Some(shape)) => {
            let doc = document::coerce(doc, shape).map_err(|e| ApiError::serialization(e.0))?;
            document::validate(&doc, shape)?;
            doc
        }
        _ => doc,
    };
    // Members this build cannot honour are refused rather than ignored: a DryRun that wrote
    // records, or a StreamId that named nothing, would be a fake success.
    if doc.bool("DryRun") == Some(true) {
        return Err(ApiError::new(
            "InvalidArgumentException",
            "DryRun is not supported by this Runnel build.",
        ));
    }
    if doc.get("StreamId").is_some() {
        return Err(ApiError::new(
            "InvalidArgumentException",
            "StreamId is not supported by this Runnel build; use StreamName or StreamARN.",
        ));
    }
    Ok(doc)
}

/// Checks the request, then runs it.
async fn call(api: &KinesisApi, op: &str, doc: Doc) -> Result<Doc, ApiError> {
    let doc = check(op, doc)?;
    match op {
        "CreateStream" => streams::create_stream(api, doc).await,
        "DeleteStream" => streams::delete_stream(api, doc).await,
        "DescribeStream" => streams::describe_stream(api, doc),
        "DescribeStreamSummary" => streams::describe_stream_summary(api, doc),
        "ListStreams" => streams::list_streams(api, doc),
        "IncreaseStreamRetentionPeriod" => streams::retention(api, doc, true).await,
        "DecreaseStreamRetentionPeriod" => streams::retention(api, doc, false).await,
        "PutRecord" => records::put_record(api, doc).await,
        "PutRecords" => records::put_records(api, doc).await,
        "GetShardIterator" => records::get_shard_iterator(api, doc).await,
        "GetRecords" => records::get_records(api, doc).await,
        "ListShards" => shards::list_shards(api, doc),
        "AddTagsToStream" => tags::add_tags_to_stream(api, doc).await,
        "RemoveTagsFromStream" => tags::remove_tags_from_stream(api, doc).await,
        "ListTagsForStream" => tags::list_tags_for_stream(api, doc),
        "TagResource" => tags::tag_resource(api, doc).await,
        "UntagResource" => tags::untag_resource(api, doc).await,
        "ListTagsForResource" => tags::list_tags_for_resource(api, doc),
        "DescribeLimits" => limits::describe_limits(api),
        "DescribeAccountSettings" => limits::describe_account_settings(),
        "UpdateStreamMode" => limits::update_stream_mode(api, doc).await,
        "StartStreamEncryption" => encryption::start_stream_encryption(api, doc).await,
        "StopStreamEncryption" => encryption::stop_stream_encryption(api, doc).await,
        "UpdateMaxRecordSize" => limits::update_max_record_size(api, doc).await,
        "SplitShard" => reshard::split_shard(api, doc).await,
        "MergeShards" => reshard::merge_shards(api, doc).await,
        "UpdateShardCount" => reshard::update_shard_count(api, doc).await,
        "RegisterStreamConsumer" => consumers::register_stream_consumer(api, doc).await,
        "DescribeStreamConsumer" => consumers::describe_stream_consumer(api, doc),
        "ListStreamConsumers" => consumers::list_stream_consumers(api, doc),
        "DeregisterStreamConsumer" => consumers::deregister_stream_consumer(api, doc).await,
        _ => Err(ApiError::bare("UnknownOperationException")),
    }
}

/// The stream a request names, by `StreamName` and/or `StreamARN`.
pub(crate) fn stream_of(api: &KinesisApi, doc: &Doc) -> Result<String, ApiError> {
    Ok(api
        .service()
        .stream_identity(doc.str("StreamName"), doc.str("StreamARN"))?)
}
