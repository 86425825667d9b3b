//! Autoscaler merges, with the operator binary against a real API server and a real
//! `runnel-node standalone` whose `/metrics` the operator reads every second:
//! - a cold 4-shard Stream (`minShards` 4 → 2, a 5 s merge window, a 1 s cooldown) → the operator
//!   merges adjacent pairs (MergeShards) down to 2 open shards; the node's DescribeStream
//!   shows two merge children, each with a closed ParentShardId and AdjacentParentShardId,
//!   and the status the same open shards and parents; `ShardsMerged` Events and
//!   `status.autoscaling.lastAction` report it, and `Scaling` is back to Stable;
//! - at `minShards` it stops: over many more autoscaler passes, with both shards cold for far
//!   longer than the window, the open shard count never goes below 2;
//! - `minShards` lowered to 1 → the last two open shards merge in turn;
//! - records written before the merges are still read from the closed parents, and a record
//!   written afterwards lands in the last child.
//!
//! Nothing waits on a fixed time alone: every check polls with a generous deadline.
//!
//! One `#[test]` owns the cluster so that a control plane started here is stopped afterwards.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::time::Duration;
use std::time::Instant;

use kube::api::DeleteParams;
use runnel_e2e::cluster::Cluster;
use runnel_e2e::cluster::create_namespace;
use runnel_e2e::process::OperatorProcess;
use runnel_e2e::streams::Env;
use runnel_e2e::streams::closed_shards;
use runnel_e2e::streams::condition;
use runnel_e2e::streams::node_open_shards;
use runnel_e2e::streams::open_shards;
use runnel_proto::v1 as pb;
use serde_json::Value;
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The operator needs a full merge window of samples per pair, then each merge's transition.
const AUTOSCALE: Duration = Duration::from_secs(300);
/// How many autoscaler passes at `minShards` must go by without a merge.
const PASSES_AT_FLOOR: f64 = 20.0;
/// ... and for at least this long: several times the merge window plus the cooldown.
const AT_FLOOR: Duration = Duration::from_secs(20);

#[test]
fn operator_merges_cold_shards_down_to_min_shards() -> TestResult {
    let Some(cluster) = Cluster::connect_or_start()? else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let env = Env::start(&cluster).await?;
        cold_shards_merge(&env).await
    })
}

fn spec(name: &str, min_shards: u32) -> Value {
    json!({
        "name": name,
        "shardCount": 4,
        "autoscaling": {
            "enabled": true,
            "minShards": min_shards,
            "maxShards": 4,
            "scaleDownWindowSeconds": 5,
            "scaleDownCooldownSeconds": 1
        },
        "deletionPolicy": "Delete"
    })
}

async fn cold_shards_merge(env: &Env) -> TestResult {
    let ns = create_namespace(&env.client, "e2e-merge").await?;
    let operator = env.start_autoscaling_operator(&ns, "op-merge")?;
    let name = format!("cold-{ns}");
    // minShards 4 at first: nothing can merge while the records are written.
    env.apply_stream(&ns, &name, spec(&name, 4)).await?;
    env.wait_condition(&ns, &name, "Ready", "True", "Active").await?;
    let created = env.describe(&name).await?.ok_or("stream missing on the node")?;
    let originals: BTreeSet<String> = node_open_shards(&created);
    assert_eq!(originals.len(), 4, "{created:?}");
    // One record per original shard, at its starting hash key: far too little to keep a
    // shard warm; the records must stay readable through the closed parents.
    let written = put_one_per_shard(env, &name, &created).await?;
    env.apply_stream(&ns, &name, spec(&name, 2)).await?;

    // Two merges (4 → 3 → 2). Which pairs depends on timing (a merged child is younger than
    // the window for a while), so the check is on lineage, not on particular shards.
    let obj = env.wait_open_shards(&ns, &name, 2, AUTOSCALE).await?;
    let d = env.assert_node_agrees(&name, &obj).await?;
    assert_merges(&d, &originals, 2);
    assert_status_lineage(&obj, &d);
    let autoscaling = obj.pointer("/status/autoscaling").cloned().unwrap_or_default();
    assert!(
        autoscaling["lastAction"]
            .as_str()
            .is_some_and(|a| a.starts_with("MergeShards ")),
        "autoscaling status {autoscaling}"
    );
    assert!(
        autoscaling["lastActionReason"]
            .as_str()
            .is_some_and(|r| r.contains("together peaked at")),
        "autoscaling status {autoscaling}"
    );
    assert!(obj.pointer("/status/lastScalingTime").is_some());
    assert_eq!(condition(&obj, "Ready").map(|c| c.0), Some("True".into()));
    let events = env.events(&ns, &name).await?;
    let merged = events.iter().filter(|r| *r == "ShardsMerged").count();
    assert_eq!(merged, 2, "4 → 3 → 2 expected, events {events:?}");

    // At minShards: the autoscaler keeps looking, both shards stay cold, nothing merges.
    let seen = env
        .wait_stream(
            &ns,
            &name,
            "an autoscaler decision about the 2-shard layout",
            AUTOSCALE,
            |obj, _| match obj
                .pointer("/status/autoscaling/lastDecision")
                .and_then(Value::as_str)
            {
                Some("within target") => Ok(()),
                other => Err(format!("last decision {other:?}")),
            },
        )
        .await?;
    assert_eq!(open_shards(&seen).len(), 2);
    stays_at_floor(env, &operator, &ns, &name).await?;

    // minShards 1: the last two open shards are merged in turn.
    let before: BTreeSet<String> = open_shards(&obj).into_keys().collect();
    env.apply_stream(&ns, &name, spec(&name, 1)).await?;
    let obj = env.wait_open_shards(&ns, &name, 1, AUTOSCALE).await?;
    let d = env.assert_node_agrees(&name, &obj).await?;
    assert_merges(&d, &originals, 3);
    assert_status_lineage(&obj, &d);
    let (last, (parent, adjacent)) = open_shards(&obj).into_iter().next().ok_or("no open shard")?;
    let parents: BTreeSet<String> = parent.into_iter().chain(adjacent).collect();
    assert_eq!(parents, before, "parents of {last}");
    let events = env.events(&ns, &name).await?;
    let merged = events.iter().filter(|r| *r == "ShardsMerged").count();
    assert_eq!(merged, 3, "events {events:?}");

    // Every record is still there, in the (closed) shard it was written to; a new one goes
    // to the one open shard.
    let mut streams = env.node.streams().await?;
    let after = streams
        .put_records(pb::PutRecordsRequest {
            stream_name: name.clone(),
            records: vec![pb::PutRecordsEntry {
                partition_key: "after".into(),
                data: b"after the merges".to_vec().into(),
                explicit_hash_key: None,
            }],
        })
        .await?
        .into_inner();
    assert_eq!(after.failed_record_count, 0, "{after:?}");
    assert_eq!(
        after.records.first().map(|r| r.shard_id.as_str()),
        Some(last.as_str())
    );
    let mut expected = written;
    expected.insert(last.clone(), b"after the merges".to_vec());
    for (shard, data) in &expected {
        let got = read_all(env, &name, shard).await?;
        assert_eq!(got, std::slice::from_ref(data), "records of {shard}");
    }

    env.streams(&ns).delete(&name, &DeleteParams::default()).await?;
    env.wait_gone(&ns, &name).await?;
    Ok(())
}

/// Puts one record at the starting hash key of each open shard, in one request; returns
/// shard → data.
async fn put_one_per_shard(
    env: &Env,
    name: &str,
    d: &pb::StreamDescription,
) -> Result<BTreeMap<String, Vec<u8>>, Box<dyn std::error::Error>> {
    let open = node_open_shards(d);
    let mut written = BTreeMap::new();
    let mut records = Vec::new();
    for shard in d.shards.iter().filter(|s| open.contains(&s.shard_id)) {
        let start = shard
            .hash_key_range
            .as_ref()
            .map(|r| r.starting_hash_key.clone())
            .ok_or_else(|| format!("{} has no hash key range", shard.shard_id))?;
        let data = format!("before the merges, in {}", shard.shard_id).into_bytes();
        records.push(pb::PutRecordsEntry {
            partition_key: "before".into(),
            data: data.clone().into(),
            explicit_hash_key: Some(start),
        });
        written.insert(shard.shard_id.clone(), data);
    }
    let put = env
        .node
        .streams()
        .await?
        .put_records(pb::PutRecordsRequest {
            stream_name: name.to_string(),
            records,
        })
        .await?
        .into_inner();
    assert_eq!(put.failed_record_count, 0, "{put:?}");
    let landed: BTreeSet<String> = put.records.into_iter().map(|r| r.shard_id).collect();
    assert_eq!(landed, open, "one record per shard");
    Ok(written)
}

/// The data of every record of `shard` from its trim horizon (a closed shard ends).
async fn read_all(env: &Env, name: &str, shard: &str) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut streams = env.node.streams().await?;
    let got = streams
        .get_records(pb::GetRecordsRequest {
            stream_name: name.to_string(),
            shard_id: shard.to_string(),
            position: Some(pb::Position {
                kind: Some(pb::position::Kind::TrimHorizon(pb::Empty {})),
            }),
            limit: 100,
        })
        .await?
        .into_inner();
    Ok(got.records.into_iter().map(|r| r.data.to_vec()).collect())
}

/// The node's view after `merges` merges of the `originals`: each merge closed two shards and
/// opened one child whose ParentShardId and AdjacentParentShardId are closed shards of the
/// stream; every closed shard is a parent of exactly one child; nothing else changed.
fn assert_merges(d: &pb::StreamDescription, originals: &BTreeSet<String>, merges: usize) {
    let closed: BTreeSet<&str> = d
        .shards
        .iter()
        .filter(|s| !s.ending_sequence_number.is_empty())
        .map(|s| s.shard_id.as_str())
        .collect();
    let children: Vec<&pb::Shard> = d
        .shards
        .iter()
        .filter(|s| !originals.contains(&s.shard_id))
        .collect();
    assert_eq!(children.len(), merges, "shards on the node {:?}", d.shards);
    assert_eq!(closed.len(), 2 * merges, "closed on the node {closed:?}");
    assert_eq!(node_open_shards(d).len(), originals.len() - merges);
    let mut parents = BTreeSet::new();
    for child in children {
        for p in [&child.parent_shard_id, &child.adjacent_parent_shard_id] {
            assert!(
                closed.contains(p.as_str()) && parents.insert(p.as_str()),
                "{} has parents {:?} + {:?}; closed {closed:?}",
                child.shard_id,
                child.parent_shard_id,
                child.adjacent_parent_shard_id
            );
        }
    }
    assert_eq!(parents, closed, "every closed shard is a merge parent");
}

/// The status lists the open shards with the node's ParentShardId and AdjacentParentShardId,
/// and those parents as closed shards.
fn assert_status_lineage(obj: &Value, d: &pb::StreamDescription) {
    let closed = closed_shards(obj);
    let text = |s: &String| (!s.is_empty()).then(|| s.clone());
    let node_parents: BTreeMap<String, (Option<String>, Option<String>)> = d
        .shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_empty())
        .map(|s| {
            (
                s.shard_id.clone(),
                (text(&s.parent_shard_id), text(&s.adjacent_parent_shard_id)),
            )
        })
        .collect();
    assert_eq!(
        open_shards(obj),
        node_parents,
        "open shards' parents in status vs node"
    );
    // Closed shards are listed when an open shard came from them (older ones only on the node).
    let parents: BTreeSet<String> = node_parents
        .into_values()
        .flat_map(|(p, a)| p.into_iter().chain(a))
        .collect();
    assert_eq!(
        closed, parents,
        "closed shards in status vs the open shards' parents"
    );
}

/// Watches the stream at `minShards` (2) for at least `PASSES_AT_FLOOR` reconciliations and
/// `AT_FLOOR`: the open shard count in the status and on the node never drops below 2.
async fn stays_at_floor(env: &Env, operator: &OperatorProcess, ns: &str, name: &str) -> TestResult {
    let passes = || operator.metric_sum("runnel_operator_reconciliations_total", "kind=\"Stream\"");
    let start = passes()?;
    let since = Instant::now();
    let deadline = since + AUTOSCALE;
    loop {
        let s = env.streams(ns).get(name).await?;
        let open = open_shards(&serde_json::to_value(&s)?).len();
        assert_eq!(open, 2, "open shards in status at minShards 2");
        let d = env.describe(name).await?.ok_or("stream missing on the node")?;
        assert_eq!(
            node_open_shards(&d).len(),
            2,
            "open shards on the node at minShards 2"
        );
        let done = passes()? - start;
        if done >= PASSES_AT_FLOOR && since.elapsed() >= AT_FLOOR {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("only {done} reconciliations in {}s", AUTOSCALE.as_secs()).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
