//! Command-line arguments and dispatch to one module per command group.

mod cluster;
pub mod output;
mod put;
mod read;
mod stream;

use clap::Parser;
use clap::Subcommand;
use runnel_client::Client;

/// Command-line client for Runnel, a self-hosted Kinesis-compatible stream store.
#[derive(Debug, Parser)]
#[command(name = "runnel", version, propagate_version = true)]
pub struct Cli {
    /// gRPC address of a Runnel node.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_ENDPOINT",
        default_value = "http://127.0.0.1:4568"
    )]
    endpoint: String,
    /// Machine-readable output: one JSON object per record, a JSON document otherwise.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, describe and delete streams.
    #[command(subcommand)]
    Stream(stream::StreamCommand),
    /// Put records: one per input line (stdin or files), or one per file with --whole-file.
    Put(put::PutArgs),
    /// Read records of a stream (every shard, parents before children) until caught up.
    Get(read::GetArgs),
    /// Read new records of a stream; with --follow, keep reading until Ctrl-C.
    Tail(read::TailArgs),
    /// Nodes of a replicated cluster: describe, add, drain, remove; move replicas.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::connect(cli.endpoint.as_str()).await?;
    let out = output::Output::new(cli.json);
    match cli.command {
        Command::Stream(command) => stream::run(&client, &out, command).await,
        Command::Put(args) => put::run(&client, &out, args).await,
        Command::Get(args) => read::get(&client, &out, args).await,
        Command::Tail(args) => read::tail(&client, &out, args).await,
        Command::Cluster(command) => cluster::run(&client, &out, command).await,
    }
}
