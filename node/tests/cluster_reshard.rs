//! Resharding in a 3-node cluster under load: producers write through random nodes while
//! UpdateShardCount doubles the stream, the node driving that reshard is `kill -9`ed mid-way
//! and restarted (the reshard must finish anyway), and then one more split and merge run.
//! Afterwards every node reads the same records, every acknowledged record is stored exactly
//! once where its acknowledgement said, and each key's acknowledged records come in the order
//! they were written when parents are read before children.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use runnel_proto::v1 as pb;
use runnel_proto::v1::admin_client::AdminClient;
use support::cluster::Cluster;
use support::workload::check_exactly_once;
use support::workload::produce;
use support::workload::read_agreeing;
use support::workload::wait_progress;
use tonic::transport::Channel;

const STREAM: &str = "resharded";

/// The stream's shards once it is ACTIVE with `open` open shards (at most 60 s).
async fn wait_open(admin: &mut AdminClient<Channel>, open: usize, cluster: &Cluster) -> Vec<pb::Shard> {
    for _ in 0..600 {
        let req = pb::DescribeStreamRequest {
            stream_name: STREAM.into(),
        };
        if let Ok(d) = admin.describe_stream(req).await {
            let s = d.into_inner().stream.unwrap();
            let n = s
                .shards
                .iter()
                .filter(|s| s.ending_sequence_number.is_empty())
                .count();
            if s.status == pb::StreamStatus::Active as i32 && n == open {
                return s.shards;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{STREAM} never reached {open} open shards; logs:\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reshards_finish_across_a_crash_and_lose_nothing() {
    let mut cluster = Cluster::start(3);
    let endpoints = cluster.endpoints();
    let mut admin = cluster.create_stream(0, STREAM, 2).await;
    let shards = support::wait_active(&mut admin, STREAM).await;
    assert_eq!(shards.len(), 2);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..3)
        .map(|p| tokio::spawn(produce(STREAM, p, endpoints.clone(), stop.clone(), acked.clone())))
        .collect();
    wait_progress(&acked, 0, &cluster).await;

    // UpdateShardCount through node 2, which then drives the reshard; it dies mid-way.
    let mut via = support::admin_client(&endpoints[1]).await.unwrap();
    let out = via
        .update_shard_count(pb::UpdateShardCountRequest {
            stream_name: STREAM.into(),
            target_shard_count: 4,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((out.current_shard_count, out.target_shard_count), (2, 4));
    cluster.members[1].kill9();
    let before = acked.load(Ordering::SeqCst);
    wait_progress(&acked, before, &cluster).await;
    cluster.restart(1);
    let shards = wait_open(&mut admin, 4, &cluster).await;
    let before = acked.load(Ordering::SeqCst);
    wait_progress(&acked, before + 500, &cluster).await;

    // A split and a merge through the third node.
    let mut via = support::admin_client(&endpoints[2]).await.unwrap();
    let open: Vec<&pb::Shard> = shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_empty())
        .collect();
    let range = open[0].hash_key_range.clone().unwrap();
    let (lo, hi): (u128, u128) = (
        range.starting_hash_key.parse().unwrap(),
        range.ending_hash_key.parse().unwrap(),
    );
    via.split_shard(pb::SplitShardRequest {
        stream_name: STREAM.into(),
        shard_to_split: open[0].shard_id.clone(),
        new_starting_hash_key: (lo + (hi - lo) / 3).to_string(),
    })
    .await
    .unwrap();
    let shards = wait_open(&mut admin, 5, &cluster).await;
    let before = acked.load(Ordering::SeqCst);
    wait_progress(&acked, before + 500, &cluster).await;
    let open: Vec<&pb::Shard> = shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_empty())
        .collect();
    via.merge_shards(pb::MergeShardsRequest {
        stream_name: STREAM.into(),
        shard_to_merge: open[open.len() - 2].shard_id.clone(),
        adjacent_shard_to_merge: open[open.len() - 1].shard_id.clone(),
    })
    .await
    .unwrap();
    let shards = wait_open(&mut admin, 4, &cluster).await;
    let before = acked.load(Ordering::SeqCst);
    wait_progress(&acked, before + 500, &cluster).await;
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for p in producers {
        acks.extend(p.await.unwrap());
    }

    // Every node reads the same records from every shard, closed or open.
    let ids: Vec<String> = shards.iter().map(|s| s.shard_id.clone()).collect();
    let stored = read_agreeing(&endpoints, STREAM, &ids).await;
    let where_stored = check_exactly_once(&stored, &acks);
    assert!(stored.len() >= 9, "shards: {:?}", stored.keys());

    // Per key, acknowledged records in lineage order (shard ids grow from parent to child,
    // then read order within a shard) follow the order they were written in.
    let position: BTreeMap<&str, usize> = stored
        .values()
        .flat_map(|records| {
            records
                .iter()
                .enumerate()
                .map(|(i, r)| (r.sequence_number.as_str(), i))
        })
        .collect();
    let mut per_key: BTreeMap<String, Vec<(String, usize, u64)>> = BTreeMap::new();
    for a in &acks {
        let (shard, seq) = &where_stored[&a.id];
        let key = format!("k{}-{}", a.id.0, a.id.1 % 16);
        per_key
            .entry(key)
            .or_default()
            .push((shard.clone(), position[seq.as_str()], a.id.1));
    }
    for (key, mut writes) in per_key {
        writes.sort();
        for w in writes.windows(2) {
            assert!(w[0].2 < w[1].2, "{key}: record {} read before {}", w[1].2, w[0].2);
        }
    }
    println!(
        "cluster_reshard: {} acknowledged over {} shards",
        acks.len(),
        stored.len()
    );
}
