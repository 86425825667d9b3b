//! `runnel stream create|list|describe|delete|scale|split|merge`.

use std::time::Duration;

use clap::Args;
use clap::Subcommand;
use runnel_client::Client;
use runnel_client::CreateStream;
use runnel_client::StreamMode;
use runnel_client::proto;

use super::output::Output;
use super::output::format_time;

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Create a stream.
    Create(CreateArgs),
    /// List the names of all streams.
    List,
    /// Show a stream and its shards.
    Describe {
        /// Stream name.
        name: String,
    },
    /// Delete a stream and all its records.
    Delete {
        /// Stream name.
        name: String,
    },
    /// Change the number of open shards (UpdateShardCount, uniform scaling: at most double,
    /// at least half per call); waits until the stream is ACTIVE again.
    Scale {
        /// Stream name.
        name: String,
        /// Target number of open shards.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        shards: u32,
    },
    /// Split one open shard in two; waits until the stream is ACTIVE again.
    Split {
        /// Stream name.
        name: String,
        /// The shard to split (shardId-...).
        shard: String,
        /// First hash key of the upper child (decimal); default: the middle of the shard.
        #[arg(long)]
        at: Option<u128>,
    },
    /// Merge two adjacent open shards; waits until the stream is ACTIVE again.
    Merge {
        /// Stream name.
        name: String,
        /// One shard (shardId-...).
        shard: String,
        /// The shard adjacent to it.
        adjacent: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Stream name (1-128 of [a-zA-Z0-9_.-]).
    name: String,
    /// Number of shards (provisioned mode; default 1, on-demand default 4).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
    /// On-demand capacity mode instead of provisioned.
    #[arg(long)]
    on_demand: bool,
    /// How long records are kept, 24..8760 hours (default 24).
    #[arg(long, value_parser = clap::value_parser!(u32).range(24..=8760))]
    retention_hours: Option<u32>,
    /// A tag KEY=VALUE; may be repeated.
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Return at once instead of waiting (up to a minute) for the stream to become ACTIVE.
    #[arg(long)]
    no_wait: bool,
}

fn parse_tag(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("'{input}' is not KEY=VALUE")),
    }
}

pub async fn run(client: &Client, out: &Output, command: StreamCommand) -> anyhow::Result<()> {
    match command {
        StreamCommand::Create(args) => {
            let mut params = if args.on_demand {
                CreateStream::on_demand(&args.name)
            } else {
                CreateStream::provisioned(&args.name, 1)
            };
            if args.shards.is_some() {
                params.shard_count = args.shards;
            }
            params.mode = if args.on_demand {
                StreamMode::OnDemand
            } else {
                StreamMode::Provisioned
            };
            params.retention_hours = args.retention_hours;
            params.tags = args.tags.into_iter().collect();
            let mut stream = client.create_stream(params).await?;
            if !args.no_wait && stream.status != proto::StreamStatus::Active as i32 {
                stream = client
                    .wait_for_active(&args.name, Duration::from_secs(60))
                    .await?;
            }
            if out.json {
                out.json_pretty(&description_json(&stream))
            } else {
                out.line(&format!(
                    "created stream '{}': {} shard(s), {}, {}",
                    stream.stream_name,
                    stream.shards.len(),
                    status_name(stream.status),
                    stream.stream_arn
                ))
            }
        }
        StreamCommand::List => {
            let names = client.list_streams().await?;
            if out.json {
                out.json_pretty(&serde_json::json!({ "stream_names": names }))
            } else {
                for name in names {
                    out.line(&name)?;
                }
                Ok(())
            }
        }
        StreamCommand::Describe { name } => {
            let stream = client.describe_stream(&name).await?;
            if out.json {
                out.json_pretty(&description_json(&stream))
            } else {
                out.line(&description_text(&stream))
            }
        }
        StreamCommand::Delete { name } => {
            client.delete_stream(&name).await?;
            if out.json {
                out.json_value(&serde_json::json!({ "deleted": name }))
            } else {
                out.line(&format!("deleted stream '{name}'"))
            }
        }
        StreamCommand::Scale { name, shards } => {
            let (from, to) = client.update_shard_count(&name, shards).await?;
            resharded(
                client,
                out,
                &name,
                &format!("scaling from {from} to {to} open shard(s)"),
            )
            .await
        }
        StreamCommand::Split { name, shard, at } => {
            let at = match at {
                Some(at) => at,
                None => middle_of(&client.describe_stream(&name).await?, &shard)?,
            };
            client.split_shard(&name, &shard, at).await?;
            resharded(client, out, &name, &format!("split {shard} at {at}")).await
        }
        StreamCommand::Merge {
            name,
            shard,
            adjacent,
        } => {
            client.merge_shards(&name, &shard, &adjacent).await?;
            resharded(client, out, &name, &format!("merged {shard} and {adjacent}")).await
        }
    }
}

/// Waits (up to a minute) for the reshard to finish and shows the stream.
async fn resharded(client: &Client, out: &Output, name: &str, what: &str) -> anyhow::Result<()> {
    let stream = client.wait_for_active(name, Duration::from_secs(60)).await?;
    if out.json {
        out.json_pretty(&description_json(&stream))
    } else {
        out.line(&format!(
            "{what}: stream '{name}' is {} with {} open shard(s)",
            status_name(stream.status),
            stream.open_shard_count
        ))
    }
}

/// The hash key in the middle of `shard`'s range (where its upper child starts).
fn middle_of(stream: &proto::StreamDescription, shard: &str) -> anyhow::Result<u128> {
    let range = stream
        .shards
        .iter()
        .find(|s| s.shard_id == shard)
        .and_then(|s| s.hash_key_range.clone())
        .ok_or_else(|| anyhow::anyhow!("shard '{shard}' not found in stream '{}'", stream.stream_name))?;
    let start: u128 = range.starting_hash_key.parse()?;
    let end: u128 = range.ending_hash_key.parse()?;
    Ok(start + (end - start) / 2 + 1)
}

fn status_name(status: i32) -> &'static str {
    match proto::StreamStatus::try_from(status) {
        Ok(proto::StreamStatus::Creating) => "CREATING",
        Ok(proto::StreamStatus::Active) => "ACTIVE",
        Ok(proto::StreamStatus::Updating) => "UPDATING",
        Ok(proto::StreamStatus::Deleting) => "DELETING",
        _ => "UNKNOWN",
    }
}

fn mode_name(mode: i32) -> &'static str {
    match proto::StreamMode::try_from(mode) {
        Ok(proto::StreamMode::Provisioned) => "PROVISIONED",
        Ok(proto::StreamMode::OnDemand) => "ON_DEMAND",
        _ => "UNKNOWN",
    }
}

fn description_json(stream: &proto::StreamDescription) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = stream
        .shards
        .iter()
        .map(|shard| {
            let range = shard.hash_key_range.clone().unwrap_or_default();
            serde_json::json!({
                "shard_id": shard.shard_id,
                "parent_shard_id": none_if_empty(&shard.parent_shard_id),
                "adjacent_parent_shard_id": none_if_empty(&shard.adjacent_parent_shard_id),
                "hash_key_range": {
                    "starting_hash_key": range.starting_hash_key,
                    "ending_hash_key": range.ending_hash_key,
                },
                "sequence_number_range": {
                    "starting_sequence_number": shard.starting_sequence_number,
                    "ending_sequence_number": none_if_empty(&shard.ending_sequence_number),
                },
                "replicas": shard.replicas,
                "leader": shard.leader,
            })
        })
        .collect();
    let tags: serde_json::Map<String, serde_json::Value> = stream
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "stream_name": stream.stream_name,
        "stream_arn": stream.stream_arn,
        "status": status_name(stream.status),
        "mode": mode_name(stream.mode),
        "retention_period_hours": stream.retention_period_hours,
        "creation_timestamp": format_time(stream.creation_timestamp_ms),
        "open_shard_count": stream.open_shard_count,
        "tags": tags,
        "shards": shards,
    })
}

fn none_if_empty(value: &str) -> Option<&str> {
    if value.is_empty() { None } else { Some(value) }
}

fn description_text(stream: &proto::StreamDescription) -> String {
    let mut text = format!(
        "name:        {}\narn:         {}\nstatus:      {}\nmode:        {}\nretention:   {} hours\n\
         created:     {}\nopen shards: {}\n",
        stream.stream_name,
        stream.stream_arn,
        status_name(stream.status),
        mode_name(stream.mode),
        stream.retention_period_hours,
        format_time(stream.creation_timestamp_ms),
        stream.open_shard_count,
    );
    if !stream.tags.is_empty() {
        let mut tags: Vec<String> = stream.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        tags.sort();
        text.push_str(&format!("tags:        {}\n", tags.join(", ")));
    }
    text.push_str(&format!(
        "\n{:<22} {:<6} {:<22} {:<40} {:<40} {}\n",
        "SHARD", "STATE", "PARENTS", "HASH KEY FROM", "HASH KEY TO", "LEADER"
    ));
    for shard in &stream.shards {
        let range = shard.hash_key_range.clone().unwrap_or_default();
        let parents: Vec<&str> = [
            shard.parent_shard_id.as_str(),
            shard.adjacent_parent_shard_id.as_str(),
        ]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
        let parents = if parents.is_empty() {
            "-".to_string()
        } else {
            parents.join(",")
        };
        let state = if shard.ending_sequence_number.is_empty() {
            "open"
        } else {
            "closed"
        };
        text.push_str(&format!(
            "{:<22} {:<6} {:<22} {:<40} {:<40} {}\n",
            shard.shard_id, state, parents, range.starting_hash_key, range.ending_hash_key, shard.leader
        ));
    }
    text.trim_end().to_string()
}
