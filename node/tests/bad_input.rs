//! Invariant 5 with a real node: bad input gets a clear error (gRPC code and Kinesis error type
//! in `x-runnel-error-type`), never reaches storage (the stream is read back after every
//! rejection) and never stops the node (a valid put succeeds after every rejection).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Buf;
use bytes::BufMut;
use prost::Message;
use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use runnel_proto::v1::streams_client::StreamsClient;
use support::Node;
use support::entry;
use support::entry_hash;
use support::error_type;
use tonic::Code;
use tonic::transport::Channel;

const STREAM: &str = "bad-input";
/// 2^128 - 1: the last hash key, owned by the last shard.
const MAX_HASH: &str = "340282366920938463463374607431768211455";
/// 2^128: one past the hash key space.
const TWO_POW_128: &str = "340282366920938463463374607431768211456";
const MIB: usize = 1 << 20;

struct Ctx {
    node: Node,
    client: StreamsClient<Channel>,
    admin: AdminClient<Channel>,
    /// Records the stream holds (only valid puts add to it).
    stored: usize,
}

impl Ctx {
    async fn new() -> Ctx {
        let node = Node::start().await;
        let mut admin = node.admin().await;
        let shards = support::create_active_stream(&mut admin, STREAM, 2).await;
        assert_eq!(shards.len(), 2);
        let client = node.streams().await;
        Ctx {
            node,
            client,
            admin,
            stored: 0,
        }
    }

    async fn put(
        &mut self,
        records: Vec<pb::PutRecordsEntry>,
    ) -> Result<pb::PutRecordsResponse, tonic::Status> {
        self.put_to(STREAM, records).await
    }

    async fn put_to(
        &mut self,
        stream: &str,
        records: Vec<pb::PutRecordsEntry>,
    ) -> Result<pb::PutRecordsResponse, tonic::Status> {
        self.client
            .put_records(pb::PutRecordsRequest {
                stream_name: stream.to_string(),
                records,
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A valid put that must succeed.
    async fn put_valid(&mut self, records: Vec<pb::PutRecordsEntry>) -> Vec<(String, String)> {
        let n = records.len();
        let out = support::put_ok(&mut self.client, STREAM, records).await;
        self.stored += n;
        out
    }

    /// After a rejection: the stream holds exactly what valid puts wrote, the node is alive and
    /// a valid put succeeds.
    async fn after_rejection(&mut self, what: &str) {
        assert!(
            self.node.is_running(),
            "node died after {what}:\n{}",
            self.node.log()
        );
        let shards = support::read_stream(&mut self.client, &mut self.admin, STREAM).await;
        let stored: usize = shards.iter().map(|(_, r)| r.len()).sum();
        assert_eq!(stored, self.stored, "{what} changed the stream");
        for (_, records) in &shards {
            for r in records {
                assert!(
                    r.data.starts_with(b"valid-"),
                    "{what}: rejected data stored: {:?}",
                    &r.data[..r.data.len().min(32)]
                );
            }
        }
        let n = self.stored;
        self.put_valid(vec![entry(&format!("k{n}"), format!("valid-{n}"))])
            .await;
    }
}

#[track_caller]
fn expect_error<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, tonic::Status>,
    code: Code,
    kind: &str,
) -> tonic::Status {
    let status = match r {
        Ok(v) => panic!("{what} was accepted: {v:?}"),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert_eq!(error_type(&status), kind, "{what}: {status:?}");
    assert!(!status.message().is_empty(), "{what}: no message");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_puts_are_rejected_and_nothing_is_written() {
    let mut ctx = Ctx::new().await;
    ctx.after_rejection("nothing").await;

    let r = ctx.put(vec![]).await;
    expect_error("empty records", r, Code::InvalidArgument, "ValidationException");
    ctx.after_rejection("empty records").await;

    // Exactly 1 MiB is the limit; one more byte is rejected, even next to valid records.
    ctx.put_valid(vec![entry("big", {
        let mut d = b"valid-".to_vec();
        d.resize(MIB, b'x');
        d
    })])
    .await;
    let r = ctx
        .put(vec![entry("a", "bad-neighbour"), entry("b", vec![b'y'; MIB + 1])])
        .await;
    let s = expect_error(
        "1 MiB + 1 record",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    assert!(s.message().contains("data"), "{s:?}");
    ctx.after_rejection("1 MiB + 1 record").await;

    let r = ctx
        .put((0..501).map(|i| entry(&format!("k{i}"), "bad-501")).collect())
        .await;
    expect_error("501 records", r, Code::InvalidArgument, "ValidationException");
    ctx.after_rejection("501 records").await;
    // 500 is fine.
    ctx.put_valid(
        (0..500)
            .map(|i| entry(&format!("k{i}"), format!("valid-500-{i}")))
            .collect(),
    )
    .await;

    // Over 5 MiB in total, every record valid on its own.
    let r = ctx
        .put((0..6).map(|i| entry(&format!("k{i}"), vec![b'z'; MIB])).collect())
        .await;
    expect_error(
        "6 MiB batch",
        r,
        Code::InvalidArgument,
        "InvalidArgumentException",
    );
    ctx.after_rejection("6 MiB batch").await;

    let r = ctx.put(vec![entry("", "bad-empty-key")]).await;
    let s = expect_error(
        "empty partition key",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    assert!(s.message().contains("partitionKey"), "{s:?}");
    ctx.after_rejection("empty partition key").await;

    let r = ctx.put(vec![entry(&"k".repeat(257), "bad-257")]).await;
    expect_error(
        "257-char partition key",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    ctx.after_rejection("257-char partition key").await;
    let r = ctx.put(vec![entry(&"é".repeat(257), "bad-257é")]).await;
    expect_error(
        "257 'é' partition key",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    ctx.after_rejection("257 'é' partition key").await;
    // 256 characters are valid even when they take 512 bytes; so are 256 4-byte characters.
    ctx.put_valid(vec![entry(&"é".repeat(256), "valid-256é")]).await;
    ctx.put_valid(vec![entry(&"🦀".repeat(256), "valid-256-crab")])
        .await;

    for bad in ["abc", "-1", "1.5", "", " 1", "0x10"] {
        let r = ctx.put(vec![entry_hash("k", "bad-hash", bad)]).await;
        expect_error(
            &format!("explicit hash key {bad:?}"),
            r,
            Code::InvalidArgument,
            "ValidationException",
        );
    }
    ctx.after_rejection("non-numeric explicit hash keys").await;
    for bad in [TWO_POW_128, "999999999999999999999999999999999999999"] {
        let r = ctx.put(vec![entry_hash("k", "bad-hash", bad)]).await;
        expect_error(
            &format!("explicit hash key {bad}"),
            r,
            Code::InvalidArgument,
            "InvalidArgumentException",
        );
    }
    ctx.after_rejection("explicit hash keys >= 2^128").await;
    let ok = ctx
        .put_valid(vec![
            entry_hash("k", "valid-hash-0", "0"),
            entry_hash("k", "valid-hash-max", MAX_HASH),
        ])
        .await;
    assert_eq!(ok[0].0, "shardId-000000000000");
    assert_eq!(ok[1].0, "shardId-000000000001");

    let r = ctx.put_to("no-such-stream", vec![entry("k", "bad")]).await;
    expect_error("unknown stream", r, Code::NotFound, "ResourceNotFoundException");
    let r = ctx.put_to("bad name", vec![entry("k", "bad")]).await;
    expect_error(
        "stream name with a space",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    let r = ctx.put_to("", vec![entry("k", "bad")]).await;
    expect_error(
        "empty stream name",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    let r = ctx.put_to(&"s".repeat(129), vec![entry("k", "bad")]).await;
    expect_error(
        "129-char stream name",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    ctx.after_rejection("bad stream names").await;

    // The same rejections through the bidirectional PutRecordsStream: the call ends with the
    // error, and a new call works.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut responses = ctx
        .client
        .put_records_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("open PutRecordsStream")
        .into_inner();
    tx.send(pb::PutRecordsRequest {
        stream_name: STREAM.into(),
        records: vec![entry("", "bad-stream-empty-key")],
    })
    .await
    .expect("send");
    let r = responses.message().await;
    expect_error(
        "PutRecordsStream empty key",
        r,
        Code::InvalidArgument,
        "ValidationException",
    );
    drop(tx);
    ctx.after_rejection("PutRecordsStream empty key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_requests() {
    let mut ctx = Ctx::new().await;

    // 50 MiB: the client raised its own encoding limit; the server (16 MiB) refuses it.
    let huge: Vec<_> = (0..50)
        .map(|i| entry(&format!("k{i}"), vec![b'h'; MIB]))
        .collect();
    let r = ctx.put(huge).await;
    let status = match r {
        Ok(v) => panic!("50 MiB request accepted: {} records", v.records.len()),
        Err(s) => s,
    };
    eprintln!("50 MiB request: {:?} {:?}", status.code(), status.message());
    assert!(
        matches!(
            status.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "50 MiB request: {status:?}"
    );
    ctx.after_rejection("50 MiB request").await;
    // The connection that carried it still works too (a fresh client is used by the check).
    ctx.client = ctx.node.streams().await;

    // Raw bytes on the PutRecords path: not a protobuf message.
    let garbage: Vec<u8> = vec![0xff; 64];
    let r = raw_call(&ctx.node, "/runnel.v1.Streams/PutRecords", garbage).await;
    expect_malformed("garbage body", r);
    ctx.after_rejection("garbage body").await;

    // A valid request cut short inside a length-delimited field.
    let mut valid = pb::PutRecordsRequest {
        stream_name: STREAM.into(),
        records: vec![entry("k", "bad-truncated-but-long-enough")],
    }
    .encode_to_vec();
    valid.truncate(valid.len() - 5);
    let r = raw_call(&ctx.node, "/runnel.v1.Streams/PutRecords", valid).await;
    expect_malformed("truncated body", r);
    ctx.after_rejection("truncated body").await;

    // A string field holding invalid UTF-8 (the partition key).
    let mut body = Vec::new();
    // field 1 (stream_name), length-delimited
    body.push(0x0a);
    body.push(STREAM.len() as u8);
    body.extend_from_slice(STREAM.as_bytes());
    // field 2 (records) holding field 1 (partition_key) = [0xc3, 0x28] (invalid UTF-8)
    let inner = [0x0a, 0x02, 0xc3, 0x28, 0x12, 0x03, b'b', b'a', b'd'];
    body.push(0x12);
    body.push(inner.len() as u8);
    body.extend_from_slice(&inner);
    let r = raw_call(&ctx.node, "/runnel.v1.Streams/PutRecords", body).await;
    expect_malformed("invalid UTF-8 partition key", r);
    ctx.after_rejection("invalid UTF-8 partition key").await;

    // Garbage on the admin path as well.
    let r = raw_call(&ctx.node, "/runnel.v1.Admin/CreateStream", vec![0x0a, 0xff]).await;
    expect_malformed("garbage CreateStream", r);
    ctx.after_rejection("garbage CreateStream").await;

    // An unknown method.
    let r = raw_call(&ctx.node, "/runnel.v1.Streams/NoSuchMethod", vec![]).await;
    assert_eq!(r.expect_err("unknown method").code(), Code::Unimplemented);
    ctx.after_rejection("unknown method").await;
}

fn expect_malformed(what: &str, r: Result<Vec<u8>, tonic::Status>) {
    let status = r.err().unwrap_or_else(|| panic!("{what} was accepted"));
    eprintln!("{what}: {:?} {:?}", status.code(), status.message());
    // tonic reports undecodable messages as INTERNAL; INVALID_ARGUMENT would be better still.
    assert!(
        matches!(status.code(), Code::Internal | Code::InvalidArgument),
        "{what}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_reads_are_rejected() {
    let mut ctx = Ctx::new().await;
    let ok = ctx
        .put_valid(vec![
            entry_hash("k", "valid-0", "0"),
            entry_hash("k", "valid-1", MAX_HASH),
        ])
        .await;
    let (shard0, seq0) = ok[0].clone();
    let (shard1, seq1) = ok[1].clone();
    assert_eq!(shard0, "shardId-000000000000");
    assert_eq!(shard1, "shardId-000000000001");

    let get = |shard: &str, position: Option<pb::Position>, limit: u32| pb::GetRecordsRequest {
        stream_name: STREAM.into(),
        shard_id: shard.into(),
        position,
        limit,
    };

    // A sequence number of another shard.
    for p in [support::at_seq(&seq0), support::after_seq(&seq0)] {
        let r = ctx.client.get_records(get(&shard1, Some(p), 0)).await;
        expect_error(
            "sequence number of another shard",
            r,
            Code::InvalidArgument,
            "InvalidArgumentException",
        );
    }
    let r = ctx
        .client
        .get_records(get(&shard0, Some(support::at_seq(&seq1)), 0))
        .await;
    expect_error(
        "sequence number of another shard",
        r,
        Code::InvalidArgument,
        "InvalidArgumentException",
    );

    for bad in ["garbage", "", "-1", "12abc", &"9".repeat(200)] {
        let r = ctx
            .client
            .get_records(get(&shard0, Some(support::at_seq(bad)), 0))
            .await;
        let s = r.expect_err("garbage sequence number");
        assert_eq!(s.code(), Code::InvalidArgument, "{bad:?}: {s:?}");
        assert!(
            ["InvalidArgumentException", "ValidationException"].contains(&error_type(&s).as_str()),
            "{bad:?}: {s:?}"
        );
    }

    let r = ctx
        .client
        .get_records(get(&shard0, Some(support::trim_horizon()), 10_001))
        .await;
    expect_error("limit 10001", r, Code::InvalidArgument, "ValidationException");
    // 10000 is fine.
    let r = ctx
        .client
        .get_records(get(&shard0, Some(support::trim_horizon()), 10_000))
        .await
        .expect("limit 10000");
    assert_eq!(r.into_inner().records.len(), 1);

    let r = ctx
        .client
        .get_records(get("shardId-000000000009", Some(support::trim_horizon()), 0))
        .await;
    expect_error("unknown shard", r, Code::NotFound, "ResourceNotFoundException");
    let r = ctx
        .client
        .get_records(get("not-a-shard", Some(support::trim_horizon()), 0))
        .await;
    expect_error(
        "malformed shard id",
        r,
        Code::NotFound,
        "ResourceNotFoundException",
    );
    let r = ctx
        .client
        .get_records(pb::GetRecordsRequest {
            stream_name: "no-such-stream".into(),
            ..get(&shard0, Some(support::trim_horizon()), 0)
        })
        .await;
    expect_error("unknown stream", r, Code::NotFound, "ResourceNotFoundException");
    let r = ctx.client.get_records(get(&shard0, None, 0)).await;
    assert_eq!(r.expect_err("no position").code(), Code::InvalidArgument);

    // Subscribe rejects the same positions.
    let r = ctx
        .client
        .subscribe(pb::SubscribeRequest {
            stream_name: STREAM.into(),
            shard_id: shard1.clone(),
            position: Some(support::at_seq(&seq0)),
            consumer: None,
        })
        .await;
    expect_error(
        "subscribe at another shard's sequence number",
        r.map(|_| ()),
        Code::InvalidArgument,
        "InvalidArgumentException",
    );
    ctx.after_rejection("bad reads").await;
}

/// A unary call with a raw body, bypassing protobuf encoding.
async fn raw_call(node: &Node, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let channel = support::channel(&node.endpoint()).await.expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}
