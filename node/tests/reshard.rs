//! Resharding through the official Rust SDK against a real `runnel-node standalone`:
//! SplitShard, MergeShards and UpdateShardCount while producers keep writing. Every
//! acknowledged record must be read back exactly once, from the shard its sequence number
//! names, and a key's records must come in the order they were written when a consumer reads
//! parents before children (as the KCL does). Closed shards end with ChildShards and no
//! NextShardIterator; ListShards' filters tell closed from open shards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_sdk_kinesis::types::Shard;
use aws_sdk_kinesis::types::ShardFilter;
use aws_sdk_kinesis::types::ShardFilterType;
use aws_sdk_kinesis::types::ShardIteratorType;
use aws_sdk_kinesis::types::StreamStatus;
use support::Node;
use support::sdk::client;
use support::sdk::code;
use support::sdk::create_active;
use support::sdk::create_on_demand;
use support::sdk::wait_active;

/// One acknowledged record: (partition key, position in that key's sequence, shard, sequence).
type Acked = (String, u64, String, String);

/// Writes `keys` keys in PutRecords batches (one record per key per batch) until `stop`; an
/// entry that fails is retried on its own before the next batch, so each key's records are
/// sent strictly in order.
async fn produce(
    c: Client,
    stream: &'static str,
    writer: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let keys: Vec<String> = (0..8).map(|k| format!("w{writer}-k{k}")).collect();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let entries: Vec<PutRecordsRequestEntry> = keys
            .iter()
            .map(|k| {
                PutRecordsRequestEntry::builder()
                    .partition_key(k)
                    .data(Blob::new(format!("{k}:{n}")))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = c
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        for (k, r) in keys.iter().zip(out.records()) {
            let (shard, seq) = match (r.shard_id(), r.sequence_number()) {
                (Some(s), Some(q)) => (s.to_string(), q.to_string()),
                _ => {
                    // Failed alone: retried until it lands, before this key's next record.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        assert!(attempt < 100, "{k}:{n} never accepted: {r:?}");
                        match c
                            .put_record()
                            .stream_name(stream)
                            .partition_key(k)
                            .data(Blob::new(format!("{k}:{n}")))
                            .send()
                            .await
                        {
                            Ok(o) => break (o.shard_id().to_string(), o.sequence_number().to_string()),
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                }
            };
            acked.lock().unwrap().push((k.clone(), n, shard, seq));
        }
        n += 1;
    }
}

/// Waits until the writers have `more` further records acknowledged.
async fn wait_acked(acked: &Mutex<Vec<Acked>>, more: usize) {
    let at_least = acked.lock().unwrap().len() + more;
    for _ in 0..600 {
        if acked.lock().unwrap().len() >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("writers stalled below {at_least} records");
}

async fn list(c: &Client, stream: &str, filter: Option<ShardFilter>) -> Vec<Shard> {
    let out = c
        .list_shards()
        .stream_name(stream)
        .set_shard_filter(filter)
        .send()
        .await
        .unwrap();
    out.shards().to_vec()
}

fn ids(shards: &[Shard]) -> Vec<String> {
    shards.iter().map(|s| s.shard_id().to_string()).collect()
}

fn sid(i: u32) -> String {
    format!("shardId-{i:012}")
}

fn filter(kind: ShardFilterType) -> ShardFilter {
    ShardFilter::builder().r#type(kind).build().unwrap()
}

/// Everything a shard holds, and the children named when its end was reached (None while
/// the shard is open).
async fn drain(c: &Client, stream: &str, shard: &str) -> (Vec<(String, String)>, Option<BTreeSet<String>>) {
    let it = c
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let mut iterator = it.shard_iterator().map(str::to_string);
    let mut records = Vec::new();
    while let Some(i) = iterator {
        let out = c.get_records().shard_iterator(&i).send().await.unwrap();
        for r in out.records() {
            let data = String::from_utf8(r.data().as_ref().to_vec()).unwrap();
            records.push((data, r.sequence_number().to_string()));
        }
        match out.next_shard_iterator() {
            None => {
                let children: BTreeSet<String> = out
                    .child_shards()
                    .iter()
                    .map(|k| k.shard_id().to_string())
                    .collect();
                assert!(!children.is_empty(), "{shard} ended without ChildShards");
                for k in out.child_shards() {
                    assert!(
                        k.parent_shards().iter().any(|p| p == shard),
                        "{k:?} does not name {shard}"
                    );
                }
                return (records, Some(children));
            }
            Some(next) if out.records().is_empty() && out.millis_behind_latest() == Some(0) => {
                // Caught up on an open shard; no ChildShards may be given for it.
                assert!(out.child_shards().is_empty());
                let _ = next;
                return (records, None);
            }
            Some(next) => iterator = Some(next.to_string()),
        }
    }
    unreachable!("GetShardIterator returned no iterator for {shard}");
}

#[tokio::test]
async fn split_merge_and_update_shard_count_lose_nothing_under_writers() {
    let node = Node::start().await;
    let c = client(&node);
    const STREAM: &str = "reshard";
    create_active(&c, STREAM, 2).await;
    let created = list(&c, STREAM, None).await;
    assert_eq!(ids(&created), [sid(0), sid(1)]);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(produce(c.clone(), STREAM, w, stop.clone(), acked.clone())))
        .collect();
    wait_acked(&acked, 100).await;

    // Split shard 0 at the middle of its range while the writers keep going.
    let r0 = created[0].hash_key_range().unwrap();
    let start: u128 = r0.starting_hash_key().parse().unwrap();
    let end: u128 = r0.ending_hash_key().parse().unwrap();
    let mid = start + (end - start) / 2;
    c.split_shard()
        .stream_name(STREAM)
        .shard_to_split(sid(0))
        .new_starting_hash_key(mid.to_string())
        .send()
        .await
        .unwrap();
    // A second reshard while the first is in progress is refused.
    let d = c
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    if d.stream_description_summary().unwrap().stream_status() == &StreamStatus::Updating {
        let (t, m) = code(
            c.merge_shards()
                .stream_name(STREAM)
                .shard_to_merge(sid(1))
                .adjacent_shard_to_merge(sid(2))
                .send()
                .await,
        );
        // Unless the split finished in between: then the pair is judged, and shard 1 and the
        // lower child of shard 0 are not adjacent.
        let finished = t == "InvalidArgumentException"
            && c.describe_stream_summary()
                .stream_name(STREAM)
                .send()
                .await
                .unwrap()
                .stream_description_summary()
                .unwrap()
                .stream_status()
                == &StreamStatus::Active;
        assert!(
            t == "ResourceInUseException" || t == "ResourceNotFoundException" || finished,
            "{t}: {m}"
        );
    }
    wait_active(&c, STREAM).await;
    let after_split = list(&c, STREAM, None).await;
    assert_eq!(ids(&after_split), [sid(0), sid(1), sid(2), sid(3)]);
    let s0 = &after_split[0];
    assert!(
        s0.sequence_number_range()
            .unwrap()
            .ending_sequence_number()
            .is_some()
    );
    assert_eq!(after_split[2].parent_shard_id(), Some(sid(0).as_str()));
    assert_eq!(
        after_split[2].hash_key_range().unwrap().starting_hash_key(),
        start.to_string()
    );
    assert_eq!(
        after_split[2].hash_key_range().unwrap().ending_hash_key(),
        (mid - 1).to_string()
    );
    assert_eq!(
        after_split[3].hash_key_range().unwrap().starting_hash_key(),
        mid.to_string()
    );
    assert_eq!(
        after_split[3].hash_key_range().unwrap().ending_hash_key(),
        end.to_string()
    );
    // Splitting the closed parent again is refused.
    let (t, m) = code(
        c.split_shard()
            .stream_name(STREAM)
            .shard_to_split(sid(0))
            .new_starting_hash_key(mid.to_string())
            .send()
            .await,
    );
    assert_eq!(t, "ResourceInUseException", "{m}");
    let between = DateTime::from_millis(now_ms());
    wait_acked(&acked, 100).await;

    // Merge the upper child of the split with its right-hand neighbour.
    let (t, m) = code(
        c.merge_shards()
            .stream_name(STREAM)
            .shard_to_merge(sid(2))
            .adjacent_shard_to_merge(sid(1))
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException", "{m}");
    assert_eq!(
        m,
        "Shards shardId-000000000002 and shardId-000000000001 in stream reshard under account 000000000000 are not an adjacent pair of shards eligible for merging"
    );
    c.merge_shards()
        .stream_name(STREAM)
        .shard_to_merge(sid(3))
        .adjacent_shard_to_merge(sid(1))
        .send()
        .await
        .unwrap();
    wait_active(&c, STREAM).await;
    let open = list(&c, STREAM, Some(filter(ShardFilterType::AtLatest))).await;
    assert_eq!(ids(&open), [sid(2), sid(4)]);
    assert_eq!(open[1].parent_shard_id(), Some(sid(3).as_str()));
    assert_eq!(open[1].adjacent_parent_shard_id(), Some(sid(1).as_str()));
    assert_eq!(
        open[1].hash_key_range().unwrap().starting_hash_key(),
        mid.to_string()
    );
    assert_eq!(
        open[1].hash_key_range().unwrap().ending_hash_key(),
        u128::MAX.to_string()
    );
    wait_acked(&acked, 100).await;

    // UpdateShardCount to 4: uniform ranges again, through as many rounds as it takes.
    let out = c
        .update_shard_count()
        .stream_name(STREAM)
        .target_shard_count(4)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    assert_eq!(out.current_shard_count(), Some(2));
    assert_eq!(out.target_shard_count(), Some(4));
    wait_active(&c, STREAM).await;
    let s = c
        .describe_stream_summary()
        .stream_name(STREAM)
        .send()
        .await
        .unwrap();
    assert_eq!(s.stream_description_summary().unwrap().open_shard_count(), 4);
    let open = list(&c, STREAM, Some(filter(ShardFilterType::AtLatest))).await;
    assert_eq!(open.len(), 4);
    // The same ranges as a stream created with 4 shards.
    create_active(&c, "four", 4).await;
    let fresh = list(&c, "four", None).await;
    let ranges = |v: &[Shard]| -> Vec<(u128, u128)> {
        let mut r: Vec<(u128, u128)> = v
            .iter()
            .map(|s| {
                let r = s.hash_key_range().unwrap();
                (
                    r.starting_hash_key().parse().unwrap(),
                    r.ending_hash_key().parse().unwrap(),
                )
            })
            .collect();
        r.sort();
        r
    };
    assert_eq!(ranges(&open), ranges(&fresh));
    wait_acked(&acked, 100).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    // Read every shard to its end (closed) or to the tip (open).
    let all = list(&c, STREAM, None).await;
    let open_ids: BTreeSet<String> = ids(&open).into_iter().collect();
    let mut by_shard: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for s in &all {
        let id = s.shard_id().to_string();
        let (records, children) = drain(&c, STREAM, &id).await;
        let expected_children: BTreeSet<String> = all
            .iter()
            .filter(|k| {
                k.parent_shard_id() == Some(id.as_str()) || k.adjacent_parent_shard_id() == Some(id.as_str())
            })
            .map(|k| k.shard_id().to_string())
            .collect();
        if open_ids.contains(&id) {
            assert_eq!(children, None, "{id} is open");
        } else {
            assert_eq!(children, Some(expected_children), "children of {id}");
        }
        by_shard.insert(id, records);
    }

    // Exactly once: every acknowledged record is where its acknowledgement said, and nothing
    // else was stored.
    let acked = acked.lock().unwrap().clone();
    let mut stored: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (shard, records) in &by_shard {
        for (data, seq) in records {
            let dup = stored.insert(seq.clone(), (shard.clone(), data.clone()));
            assert!(dup.is_none(), "sequence number {seq} read twice");
        }
    }
    assert_eq!(
        stored.len(),
        acked.len(),
        "stored records differ from acknowledged ones"
    );
    for (key, n, shard, seq) in &acked {
        let got = stored
            .get(seq)
            .unwrap_or_else(|| panic!("acknowledged {key}:{n} ({shard}/{seq}) is missing"));
        assert_eq!(got, &(shard.clone(), format!("{key}:{n}")));
    }

    // Per-key order: parents are read before children (shard ids grow along the lineage).
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for records in by_shard.values() {
        for (data, _) in records {
            let (k, n) = data.rsplit_once(':').unwrap();
            per_key.entry(k.to_string()).or_default().push(n.parse().unwrap());
        }
    }
    assert_eq!(per_key.len(), 24);
    for (k, ns) in per_key {
        let expected: Vec<u64> = (0..ns.len() as u64).collect();
        assert_eq!(ns, expected, "records of {k} out of order");
    }

    // ListShards' filters.
    let all_ids = ids(&all);
    assert_eq!(all_ids.first(), Some(&sid(0)));
    let trim = list(&c, STREAM, Some(filter(ShardFilterType::AtTrimHorizon))).await;
    assert_eq!(ids(&trim), [sid(0), sid(1)]);
    let from_trim = list(&c, STREAM, Some(filter(ShardFilterType::FromTrimHorizon))).await;
    assert_eq!(ids(&from_trim), all_ids);
    let at_between = list(
        &c,
        STREAM,
        Some(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtTimestamp)
                .timestamp(between)
                .build()
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(ids(&at_between), [sid(1), sid(2), sid(3)]);
    let from_between = list(
        &c,
        STREAM,
        Some(
            ShardFilter::builder()
                .r#type(ShardFilterType::FromTimestamp)
                .timestamp(between)
                .build()
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(ids(&from_between), all_ids[1..]);
    let after = list(
        &c,
        STREAM,
        Some(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id(sid(2))
                .build()
                .unwrap(),
        ),
    )
    .await;
    assert_eq!(ids(&after), all_ids[3..]);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn reshard_requests_are_validated_as_aws_does() {
    let node = Node::start_with(&["--throttling", "off", "--scalings-per-day-limit", "2"]).await;
    let c = client(&node);
    create_active(&c, "rv", 2).await;
    let (t, m) = code(
        c.split_shard()
            .stream_name("nope")
            .shard_to_split(sid(0))
            .new_starting_hash_key("5")
            .send()
            .await,
    );
    assert_eq!(t, "ResourceNotFoundException");
    assert_eq!(m, "Stream nope under account 000000000000 not found.");
    let (t, m) = code(
        c.split_shard()
            .stream_name("rv")
            .shard_to_split(sid(7))
            .new_starting_hash_key("5")
            .send()
            .await,
    );
    assert_eq!(t, "ResourceNotFoundException");
    assert_eq!(
        m,
        "Could not find shard shardId-000000000007 in stream rv under account 000000000000."
    );
    let (t, m) = code(
        c.split_shard()
            .stream_name("rv")
            .shard_to_split(sid(0))
            .new_starting_hash_key("x1")
            .send()
            .await,
    );
    assert_eq!(t, "ValidationException");
    assert_eq!(
        m,
        "1 validation error detected: Value 'x1' at 'newStartingHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: (0|([1-9]\\d{0,38}))"
    );
    // The new starting key must be above the shard's start + 1 and below its end.
    let (t, m) = code(
        c.split_shard()
            .stream_name("rv")
            .shard_to_split(sid(0))
            .new_starting_hash_key("1")
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    assert!(m.starts_with("NewStartingHashKey 1 used in SplitShard() on shard shardId-000000000000 in stream rv under account 000000000000 is not both greater than one plus the shard's StartingHashKey 0"), "{m}");
    let (t, _) = code(
        c.split_shard()
            .stream_name("rv")
            .shard_to_split(sid(1))
            .new_starting_hash_key(u128::MAX.to_string())
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    let (t, m) = code(
        c.merge_shards()
            .stream_name("rv")
            .shard_to_merge(sid(0))
            .adjacent_shard_to_merge(sid(0))
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException", "{m}");
    let (t, m) = code(
        c.update_shard_count()
            .stream_name("rv")
            .target_shard_count(5)
            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
    assert_eq!(
        m,
        "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: 2 Target shard count: 5"
    );
    // Rolling-24-hour limit on UpdateShardCount calls (2 here).
    for target in [3, 2] {
        c.update_shard_count()
            .stream_name("rv")
            .target_shard_count(target)
            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
            .send()
            .await
            .unwrap();
        // While UPDATING every reshard is refused.
        let (t, _) = code(
            c.split_shard()
                .stream_name("rv")
                .shard_to_split(sid(0))
                .new_starting_hash_key("5")
                .send()
                .await,
        );
        assert!(t == "ResourceInUseException", "{t}");
        wait_active(&c, "rv").await;
    }
    let s = c
        .describe_stream_summary()
        .stream_name("rv")
        .send()
        .await
        .unwrap();
    assert_eq!(s.stream_description_summary().unwrap().open_shard_count(), 2);
    let (t, m) = code(
        c.update_shard_count()
            .stream_name("rv")
            .target_shard_count(3)
            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
            .send()
            .await,
    );
    assert_eq!(t, "LimitExceededException", "{m}");
    // ON_DEMAND streams are scaled by Runnel, not by UpdateShardCount.
    create_on_demand(&c, "od").await;
    let (t, _) = code(
        c.update_shard_count()
            .stream_name("od")
            .target_shard_count(3)
            .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
            .send()
            .await,
    );
    assert_eq!(t, "InvalidArgumentException");
}
