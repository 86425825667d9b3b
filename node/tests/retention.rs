//! Retention removes whole expired segments and nothing else. The node runs in-process on real
//! storage; only the "now" given to the retention pass is moved forward, since waiting 24 hours
//! is not an option.

#![allow(clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use runnel_log::LogConfig;
use runnel_node::clock;
use runnel_node::node::Node;
use runnel_node::node::NodeConfig;
use runnel_node::raft::FsyncPolicy;
use runnel_node::retention;
use runnel_node::service::CreateStreamInput;
use runnel_node::service::GetRecordsInput;
use runnel_node::service::PositionInput;
use runnel_node::service::PutEntryInput;
use runnel_node::service::PutRecordsInput;
use runnel_node::service::ServiceConfig;
use runnel_node::service::StreamService;

async fn start(dir: &std::path::Path) -> Node {
    let any = "127.0.0.1:0".parse().expect("addr");
    let config = NodeConfig {
        node_id: 1,
        data_dir: dir.to_owned(),
        kinesis_addr: any,
        grpc_addr: any,
        metrics_addr: any,
        fsync: FsyncPolicy::Always,
        log: LogConfig {
            segment_bytes: 8 << 10,
            ..LogConfig::default()
        },
        service: ServiceConfig {
            transition_delay: Duration::from_millis(10),
            // Reads in a loop; whether they exceed 5 calls/s would depend on timing.
            throttling: runnel_node::capacity::throughput::Throttling::Off,
            ..ServiceConfig::default()
        },
        kinesis_tls: None,
        peers: Default::default(),
        join: None,
        quiesce: false,
        advertise: None,
        retention: Default::default(),
        stats_every: std::time::Duration::from_secs(5),
        keyring: Default::default(),
    };
    Node::start(config).await.expect("node starts")
}

async fn active(svc: &StreamService, name: &str) {
    for _ in 0..500 {
        if svc
            .describe_stream(name)
            .map(|d| d.status == runnel_node::catalog::StreamStatus::Active)
            .unwrap_or(false)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("stream {name} never became ACTIVE");
}

async fn read_all(svc: &StreamService, name: &str) -> Vec<Bytes> {
    let out = svc
        .get_records(GetRecordsInput {
            stream_name: name.into(),
            shard_id: "shardId-000000000000".into(),
            position: PositionInput::TrimHorizon,
            limit: Some(10_000),
        })
        .await
        .expect("get records");
    out.records.into_iter().map(|r| r.data).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_expired_sealed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;
    let svc = node.service.clone();
    svc.create_stream(CreateStreamInput {
        stream_name: "r".into(),
        shard_count: Some(1),
        ..Default::default()
    })
    .await
    .expect("create");
    active(&svc, "r").await;
    for batch in 0..40u32 {
        let records = (0..4u32)
            .map(|i| PutEntryInput {
                partition_key: "k".into(),
                data: Bytes::from(format!("{batch}-{i}-{}", "x".repeat(500))),
                explicit_hash_key: None,
            })
            .collect();
        let res = svc
            .put_records(PutRecordsInput {
                stream_name: "r".into(),
                records,
            })
            .await
            .expect("put");
        assert!(
            res.iter()
                .all(|r| matches!(r, runnel_node::service::PutEntryResult::Ok { .. }))
        );
    }
    let before = read_all(&svc, "r").await;
    assert_eq!(before.len(), 160);

    let host_view = node.catalog();
    let host = node_host(&node);
    // Within retention: nothing goes.
    assert_eq!(
        retention::enforce(&host, &host_view, clock::now_ms() + 3_600_000).await,
        0
    );
    assert_eq!(read_all(&svc, "r").await, before);

    // 25 hours later every sealed segment has expired; the active one stays.
    let deleted = retention::enforce(&host, &host_view, clock::now_ms() + 25 * 3_600_000).await;
    assert!(deleted > 0, "expected expired segments to be deleted");
    let after = read_all(&svc, "r").await;
    assert!(after.len() < before.len());
    // What remains is exactly a suffix of what was written: retention removes from the front.
    assert_eq!(&before[before.len() - after.len()..], &after[..]);

    // Raising retention keeps the rest.
    svc.update_retention("r", 48).await.expect("increase retention");
    assert_eq!(
        retention::enforce(&host, &host_view, clock::now_ms() + 25 * 3_600_000).await,
        0
    );
}

fn node_host(node: &Node) -> std::sync::Arc<runnel_node::shard::ShardHost> {
    node.host()
}

/// A closed parent stays listed and readable until every record it had is past retention;
/// then the catalog forgets it, its replica stops and its data goes. Its children keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_shards_go_once_past_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = start(dir.path()).await;
    let svc = node.service.clone();
    svc.create_stream(CreateStreamInput {
        stream_name: "c".into(),
        shard_count: Some(1),
        ..Default::default()
    })
    .await
    .expect("create");
    active(&svc, "c").await;
    let put = |tag: &'static str| {
        let svc = svc.clone();
        async move {
            let records = (0..20u32)
                .map(|i| PutEntryInput {
                    partition_key: format!("k{i}"),
                    data: Bytes::from(format!("{tag}-{i}")),
                    explicit_hash_key: None,
                })
                .collect();
            svc.put_records(PutRecordsInput {
                stream_name: "c".into(),
                records,
            })
            .await
            .expect("put")
        }
    };
    put("before").await;
    svc.split_shard("c", "shardId-000000000000", &(u128::MAX / 2).to_string())
        .await
        .expect("split");
    active(&svc, "c").await;
    put("after").await;
    let listed = |svc: &StreamService| -> Vec<String> {
        svc.describe_stream("c")
            .expect("describe")
            .shards
            .iter()
            .map(|s| s.shard_id.to_string())
            .collect()
    };
    assert_eq!(listed(&svc).len(), 3);
    let groups = node.host().all().len();
    assert_eq!(groups, 3);

    // An hour later the parent's records are still within retention.
    assert_eq!(
        svc.expire_closed_shards(clock::now_ms() + 3_600_000)
            .await
            .expect("expire"),
        0
    );
    assert_eq!(read_all(&svc, "c").await.len(), 20);
    // A day and an hour later they are not: the parent is forgotten and its replica stopped.
    assert_eq!(
        svc.expire_closed_shards(clock::now_ms() + 25 * 3_600_000)
            .await
            .expect("expire"),
        1
    );
    assert_eq!(listed(&svc), ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(node.host().all().len(), 2);
    let gone = svc
        .get_records(GetRecordsInput {
            stream_name: "c".into(),
            shard_id: "shardId-000000000000".into(),
            position: PositionInput::TrimHorizon,
            limit: Some(10),
        })
        .await;
    assert!(
        matches!(gone, Err(runnel_node::service::ServiceError::ResourceNotFound(_))),
        "{gone:?}"
    );
    // The children still hold what was written after the split.
    let mut kept = 0;
    for shard in ["shardId-000000000001", "shardId-000000000002"] {
        kept += svc
            .get_records(GetRecordsInput {
                stream_name: "c".into(),
                shard_id: shard.into(),
                position: PositionInput::TrimHorizon,
                limit: Some(10_000),
            })
            .await
            .expect("child records")
            .records
            .len();
    }
    assert_eq!(kept, 20);
}
