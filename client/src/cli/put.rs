//! `runnel put`: records from lines of stdin or files, or whole files, in batches.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use anyhow::bail;
use bytes::Bytes;
use clap::Args;
use indicatif::ProgressBar;
use indicatif::ProgressStyle;
use runnel_client::BatchLimits;
use runnel_client::Batcher;
use runnel_client::Client;
use runnel_client::PutEntry;
use runnel_client::PutResult;
use runnel_client::RetryPolicy;
use runnel_client::aggregation::chunks;
use runnel_client::aggregation::encode;
use runnel_client::aggregation::group_by_shard;
use tokio::sync::mpsc;

use super::output::Output;

/// Input of at least this many bytes gets a progress bar (when stderr is a terminal).
const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;
/// At most this many failed records are described one by one.
const SHOWN_FAILURES: usize = 5;

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Stream name.
    stream: String,
    /// Files to read; stdin when none.
    files: Vec<PathBuf>,
    /// One record per file (its whole content) instead of one per line.
    #[arg(long, requires = "files")]
    whole_file: bool,
    /// Partition key of every record.
    #[arg(long, conflicts_with = "key_field")]
    partition_key: Option<String>,
    /// Take each record's partition key from this field of the line parsed as a JSON object.
    #[arg(long)]
    key_field: Option<String>,
    /// Put KPL-aggregated records: the records of each batch that go to one shard travel as
    /// one Kinesis record (readable by the KCL, `aws-kinesis-agg` and `runnel get`).
    #[arg(long)]
    aggregate: bool,
    /// Attempts per record: records refused for throughput (or an internal failure) are sent
    /// again with exponential backoff, up to this many times in all (1: no retry).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    attempts: u32,
}

/// Where a record's partition key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Fixed(String),
    Field(String),
    Random,
}

impl KeySource {
    /// The partition key of a record; `origin` names the input for error messages.
    pub fn key_for(&self, data: &[u8], origin: &str) -> anyhow::Result<String> {
        match self {
            KeySource::Fixed(key) => Ok(key.clone()),
            KeySource::Random => Ok(format!("{:032x}", rand::random::<u128>())),
            KeySource::Field(field) => {
                let value: serde_json::Value = serde_json::from_slice(data)
                    .with_context(|| format!("{origin}: not JSON, cannot read field '{field}'"))?;
                match value.get(field) {
                    Some(serde_json::Value::String(key)) if !key.is_empty() => Ok(key.clone()),
                    Some(serde_json::Value::Null) | None => bail!("{origin}: no field '{field}'"),
                    Some(serde_json::Value::String(_)) => bail!("{origin}: field '{field}' is empty"),
                    Some(other) => Ok(other.to_string()),
                }
            }
        }
    }
}

/// A batch ready to send and how many input bytes it covers.
struct Batch {
    entries: Vec<PutEntry>,
    input_bytes: u64,
}

#[derive(Debug, Default)]
struct Summary {
    put: u64,
    failed: u64,
    bytes: u64,
    failures: BTreeMap<String, u64>,
}

pub async fn run(client: &Client, out: &Output, args: PutArgs) -> anyhow::Result<()> {
    let keys = match (&args.partition_key, &args.key_field) {
        (Some(key), _) if key.is_empty() => bail!("--partition-key must not be empty"),
        (Some(key), _) => KeySource::Fixed(key.clone()),
        (None, Some(field)) => KeySource::Field(field.clone()),
        (None, None) => KeySource::Random,
    };
    let total_input: Option<u64> = if args.files.is_empty() {
        None
    } else {
        let mut total = 0;
        for file in &args.files {
            total += std::fs::metadata(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
        }
        Some(total)
    };
    let show_progress = std::io::stderr().is_terminal();
    let progress = match total_input {
        Some(total) if show_progress && total >= PROGRESS_THRESHOLD => Some(bar(Some(total))),
        _ => None,
    };

    // Aggregation groups records by the open shard their key maps to.
    let shard_ranges = if args.aggregate {
        Some(open_ranges(client, &args.stream).await?)
    } else {
        None
    };
    let (sender, mut receiver) = mpsc::channel::<anyhow::Result<Batch>>(4);
    let (files, whole_file) = (args.files.clone(), args.whole_file);
    let reader = std::thread::spawn(move || {
        let result = read_input(&files, whole_file, &keys, &sender);
        if let Err(err) = result {
            let _ = sender.blocking_send(Err(err));
        }
    });

    let started = Instant::now();
    let mut summary = Summary::default();
    let mut progress = progress;
    let mut consumed: u64 = 0;
    let mut first_failures: Vec<String> = Vec::new();
    while let Some(batch) = receiver.recv().await {
        let batch = batch?;
        // Each entry sent, with the (user records, data bytes) it carries.
        let (entries, carried): (Vec<PutEntry>, Vec<(u64, u64)>) = match &shard_ranges {
            Some(ranges) => group_by_shard(batch.entries, ranges)
                .into_iter()
                .flat_map(chunks)
                .map(|chunk| {
                    let bytes = chunk.iter().map(|e| e.data.len() as u64).sum();
                    let count = chunk.len() as u64;
                    (encode(chunk), (count, bytes))
                })
                .unzip(),
            None => batch
                .entries
                .into_iter()
                .map(|e| {
                    let size = e.data.len() as u64;
                    (e, (1, size))
                })
                .unzip(),
        };
        let policy = RetryPolicy {
            max_attempts: args.attempts,
            ..RetryPolicy::default()
        };
        let results = client
            .put_records_with_retry(&args.stream, entries, policy)
            .await?;
        for (result, (count, size)) in results.into_iter().zip(carried) {
            match result {
                PutResult::Ok { .. } => {
                    summary.put += count;
                    summary.bytes += size;
                }
                PutResult::Failed {
                    error_code,
                    error_message,
                } => {
                    summary.failed += count;
                    if first_failures.len() < SHOWN_FAILURES {
                        first_failures.push(format!("{error_code}: {error_message}"));
                    }
                    *summary.failures.entry(error_code).or_default() += count;
                }
            }
        }
        consumed += batch.input_bytes;
        if progress.is_none() && show_progress && consumed >= PROGRESS_THRESHOLD {
            progress = Some(bar(None));
        }
        if let Some(bar) = &progress {
            bar.set_position(consumed);
            bar.set_message(format!("{} records", summary.put + summary.failed));
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if reader.join().is_err() {
        bail!("the input reader stopped unexpectedly");
    }
    let seconds = started.elapsed().as_secs_f64();
    for failure in &first_failures {
        eprintln!("failed: {failure}");
    }
    if out.json {
        out.json_value(&serde_json::json!({
            "stream": args.stream,
            "records_put": summary.put,
            "records_failed": summary.failed,
            "bytes": summary.bytes,
            "failures_by_code": summary.failures,
            "seconds": seconds,
        }))?;
    } else {
        out.line(&format!(
            "put {} record(s) to '{}', {} failed, {} bytes in {:.2}s",
            summary.put, args.stream, summary.failed, summary.bytes, seconds
        ))?;
    }
    if summary.failed > 0 {
        bail!("{} record(s) were not put", summary.failed);
    }
    Ok(())
}

/// The hash key ranges of the stream's open shards.
async fn open_ranges(client: &Client, stream: &str) -> anyhow::Result<Vec<(u128, u128)>> {
    let description = client.describe_stream(stream).await?;
    let mut ranges = Vec::new();
    for shard in description
        .shards
        .iter()
        .filter(|s| s.ending_sequence_number.is_empty())
    {
        if let Some(r) = &shard.hash_key_range {
            ranges.push((r.starting_hash_key.parse()?, r.ending_hash_key.parse()?));
        }
    }
    Ok(ranges)
}

fn bar(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Reads the input on a blocking thread and sends full batches.
fn read_input(
    files: &[PathBuf],
    whole_file: bool,
    keys: &KeySource,
    sender: &mpsc::Sender<anyhow::Result<Batch>>,
) -> anyhow::Result<()> {
    let mut batcher = Batcher::new(BatchLimits::default());
    let mut pending_bytes: u64 = 0;
    let send = |entries: Vec<PutEntry>, input_bytes: &mut u64| -> anyhow::Result<()> {
        let batch = Batch {
            entries,
            input_bytes: std::mem::take(input_bytes),
        };
        sender
            .blocking_send(Ok(batch))
            .map_err(|_| anyhow::anyhow!("put stopped"))
    };
    let mut add = |data: Vec<u8>, origin: &dyn Fn() -> String, input_len: u64| -> anyhow::Result<()> {
        pending_bytes += input_len;
        if data.is_empty() {
            return Ok(());
        }
        let key = keys.key_for(&data, &origin())?;
        if let Some(full) = batcher.push(PutEntry::new(key, Bytes::from(data))) {
            send(full, &mut pending_bytes)?;
        }
        Ok(())
    };
    if whole_file {
        for file in files {
            let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let len = data.len() as u64;
            add(data, &|| file.display().to_string(), len)?;
        }
    } else if files.is_empty() {
        let stdin = std::io::stdin();
        read_lines(stdin.lock(), "stdin", &mut add)?;
    } else {
        for file in files {
            let handle =
                std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
            read_lines(
                std::io::BufReader::new(handle),
                &file.display().to_string(),
                &mut add,
            )?;
        }
    }
    if let Some(last) = batcher.finish() {
        send(last, &mut pending_bytes)?;
    }
    Ok(())
}

type AddRecord<'a> = dyn FnMut(Vec<u8>, &dyn Fn() -> String, u64) -> anyhow::Result<()> + 'a;

fn read_lines(mut input: impl BufRead, name: &str, add: &mut AddRecord<'_>) -> anyhow::Result<()> {
    let mut number = 0u64;
    loop {
        let mut line = Vec::new();
        let read = input
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {name}"))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        add(line, &|| format!("{name} line {number}"), read as u64)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_a_json_field() {
        let keys = KeySource::Field("user".into());
        assert_eq!(
            keys.key_for(br#"{"user":"ann","n":1}"#, "l1").ok().as_deref(),
            Some("ann")
        );
        assert_eq!(keys.key_for(br#"{"user":42}"#, "l1").ok().as_deref(), Some("42"));
        let err = keys
            .key_for(br#"{"n":1}"#, "stdin line 3")
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("stdin line 3: no field 'user'"));
        assert!(keys.key_for(b"not json", "l").is_err());
    }

    #[test]
    fn fixed_and_random_keys() {
        assert_eq!(
            KeySource::Fixed("k".into()).key_for(b"x", "l").ok().as_deref(),
            Some("k")
        );
        let a = KeySource::Random.key_for(b"x", "l").unwrap_or_default();
        let b = KeySource::Random.key_for(b"x", "l").unwrap_or_default();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn lines_are_split_without_their_endings() {
        let mut seen = Vec::new();
        let mut add = |data: Vec<u8>, origin: &dyn Fn() -> String, len: u64| -> anyhow::Result<()> {
            seen.push((String::from_utf8_lossy(&data).to_string(), origin(), len));
            Ok(())
        };
        let input = std::io::Cursor::new(b"a\r\nbb\n\nccc".to_vec());
        assert!(read_lines(input, "in", &mut add).is_ok());
        assert_eq!(
            seen,
            vec![
                ("a".into(), "in line 1".into(), 3),
                ("bb".into(), "in line 2".into(), 3),
                ("".into(), "in line 3".into(), 1),
                ("ccc".into(), "in line 4".into(), 3),
            ]
        );
    }
}
