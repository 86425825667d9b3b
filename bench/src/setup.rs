//! Connecting and making sure the benchmark stream exists.

use std::time::Duration;

use anyhow::Context;
use runnel_client::Client;
use runnel_client::CreateStream;
use runnel_client::Error;

use crate::Options;

/// The client and the stream's open shards.
pub struct Target {
    pub client: Client,
    pub shards: Vec<String>,
}

pub async fn connect(options: &Options) -> anyhow::Result<Target> {
    let client = Client::connect(options.endpoint.as_str()).await?;
    match client.describe_stream(&options.stream).await {
        Ok(_) => {}
        Err(Error::StreamNotFound(_)) => {
            eprintln!(
                "creating stream '{}' with {} shard(s)",
                options.stream, options.shards
            );
            match client
                .create_stream(CreateStream::provisioned(&options.stream, options.shards))
                .await
            {
                Ok(_) | Err(Error::StreamExists(_)) => {}
                Err(err) => return Err(err).context("cannot create the benchmark stream"),
            }
        }
        Err(err) => return Err(err.into()),
    }
    let description = client
        .wait_for_active(&options.stream, Duration::from_secs(30))
        .await?;
    let shards = description
        .shards
        .iter()
        .filter(|shard| shard.ending_sequence_number.is_empty())
        .map(|shard| shard.shard_id.clone())
        .collect();
    Ok(Target { client, shards })
}
