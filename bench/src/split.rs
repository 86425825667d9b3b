//! The `split` mode: splitting a loaded shard. Producers keep the stream under load (as in
//! `produce`, at `--rate`); after `--warmup` seconds the busiest open shard is split at the
//! middle of its hash range. A probe then puts one record at a time with an explicit hash key in
//! the upper child's range until a child acknowledges it. The report gives the time from the
//! SplitShard request to the first write a child acknowledged, to the stream being ACTIVE
//! again, and the producers' failed records (there should be none: records refused by the
//! sealed parent are routed to the children by the node).

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runnel_client::Client;
use runnel_client::PutEntry;
use runnel_client::PutResult;
use runnel_proto::v1 as proto;
use tokio::time::Instant;

use crate::Options;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;
use crate::setup;

#[derive(Debug, Clone, Args)]
pub struct SplitOptions {
    #[command(flatten)]
    pub common: Options,
    /// Seconds of load before the split.
    #[arg(long, default_value_t = 3.0)]
    pub warmup: f64,
}

/// The open shard to split (the first one) and the key where its upper half starts.
fn split_point(stream: &proto::StreamDescription) -> anyhow::Result<(String, u128)> {
    let shard = stream
        .shards
        .iter()
        .find(|s| s.ending_sequence_number.is_empty())
        .context("the stream has no open shard")?;
    let range = shard
        .hash_key_range
        .as_ref()
        .context("a shard without a hash key range")?;
    let start: u128 = range.starting_hash_key.parse()?;
    let end: u128 = range.ending_hash_key.parse()?;
    anyhow::ensure!(end > start + 1, "shard {} is too narrow to split", shard.shard_id);
    Ok((shard.shard_id.clone(), start + (end - start) / 2 + 1))
}

/// Puts one record with `hash_key` until a shard other than `parent` acknowledges it.
async fn probe_children(
    client: &Client,
    stream: &str,
    parent: &str,
    hash_key: u128,
    deadline: Instant,
) -> Option<Instant> {
    while Instant::now() < deadline {
        let mut entry = PutEntry::new("split-probe", &b"probe"[..]);
        entry.explicit_hash_key = Some(hash_key.to_string());
        if let Ok(results) = client.put_batch(stream, vec![entry]).await
            && let Some(PutResult::Ok { shard_id, .. }) = results.first()
            && shard_id != parent
        {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

pub async fn run(options: &SplitOptions) -> anyhow::Result<Report> {
    let common = &options.common;
    let target = setup::connect(common).await?;
    let client = target.client.clone();
    let load = Load::from_options(common, false);
    let producer = {
        let client = client.clone();
        let load = load.clone();
        tokio::spawn(async move { produce::produce(&client, &load).await })
    };
    tokio::time::sleep(Duration::from_secs_f64(options.warmup.clamp(0.0, 3600.0))).await;

    let description = client.describe_stream(&common.stream).await?;
    let (parent, key) = split_point(&description)?;
    let requested = Instant::now();
    client.split_shard(&common.stream, &parent, key).await?;
    let accepted = Instant::now();
    let first_child_write = probe_children(&client, &common.stream, &parent, key, load.deadline).await;
    let active = loop {
        let d = client.describe_stream(&common.stream).await?;
        if d.status == proto::StreamStatus::Active as i32 {
            break Some(Instant::now());
        }
        if Instant::now() >= load.deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let stats = producer.await.context("the producers stopped")?;

    let ms = |t: Instant| (t - requested).as_secs_f64() * 1000.0;
    let mut report = Report::new("split");
    produce::describe_setup(&mut report, common, target.shards.len());
    report.text("split_shard", "split shard", &parent);
    report.number("split_call_ms", "SplitShard call", ms(accepted), "ms");
    match first_child_write {
        Some(t) => report.number("first_child_write_ms", "request → first child write", ms(t), "ms"),
        None => report.text(
            "first_child_write_ms",
            "request → first child write",
            "none before the end",
        ),
    }
    match active {
        Some(t) => report.number("active_ms", "request → ACTIVE", ms(t), "ms"),
        None => report.text("active_ms", "request → ACTIVE", "not before the end"),
    }
    stats.add_to(&mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, start: u128, end: u128, closed: bool) -> proto::Shard {
        proto::Shard {
            shard_id: id.into(),
            hash_key_range: Some(proto::HashKeyRange {
                starting_hash_key: start.to_string(),
                ending_hash_key: end.to_string(),
            }),
            ending_sequence_number: if closed { "1".into() } else { String::new() },
            ..Default::default()
        }
    }

    #[test]
    fn splits_the_first_open_shard_in_the_middle() {
        let stream = proto::StreamDescription {
            shards: vec![
                shard("a", 0, 99, true),
                shard("b", 0, 9, false),
                shard("c", 10, 99, false),
            ],
            ..Default::default()
        };
        assert_eq!(split_point(&stream).ok(), Some(("b".to_string(), 5)));
        let narrow = proto::StreamDescription {
            shards: vec![shard("n", 3, 4, false)],
            ..Default::default()
        };
        assert!(split_point(&narrow).is_err());
    }
}
