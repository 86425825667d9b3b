//! Producers: concurrent PutRecords loops, optionally paced, and the `produce` mode.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use bytes::BufMut;
use bytes::Bytes;
use bytes::BytesMut;
use clap::Args;
use hdrhistogram::Histogram;
use runnel_client::Client;
use runnel_client::PutEntry;
use runnel_client::PutResult;
use tokio::time::Instant;

use crate::Options;
use crate::report::Report;
use crate::report::histogram;
use crate::setup;

/// Marks records whose data starts with a send timestamp.
pub const MAGIC: &[u8; 8] = b"RNLBENCH";
/// Size of the magic and the timestamp at the start of timestamped records.
pub const HEADER: usize = 16;
/// Distinct partition keys the producers cycle through.
const KEYS: usize = 4096;

/// What the producers do.
#[derive(Debug, Clone)]
pub struct Load {
    pub stream: String,
    pub record_size: usize,
    pub batch_size: usize,
    pub concurrency: usize,
    /// Records/s across all producers; 0 for unlimited.
    pub rate: u64,
    pub deadline: Instant,
    /// Stop after about this many records (rounded up to whole batches).
    pub max_records: Option<u64>,
    /// Put the send time in each record (for latency measurements).
    pub timestamped: bool,
}

impl Load {
    pub fn from_options(options: &Options, timestamped: bool) -> Self {
        Load {
            stream: options.stream.clone(),
            record_size: options.record_size as usize,
            batch_size: options.batch_size as usize,
            concurrency: options.concurrency as usize,
            rate: options.rate,
            deadline: Instant::now() + options.duration(),
            max_records: None,
            timestamped,
        }
    }
}

/// What the producers did.
#[derive(Debug)]
pub struct ProduceStats {
    /// PutRecords call latency in microseconds.
    pub latency: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    pub failed_records: u64,
    pub failed_calls: u64,
    pub first_error: Option<String>,
    pub seconds: f64,
}

impl ProduceStats {
    fn new() -> Self {
        ProduceStats {
            latency: histogram(),
            records: 0,
            bytes: 0,
            failed_records: 0,
            failed_calls: 0,
            first_error: None,
            seconds: 0.0,
        }
    }

    fn merge(&mut self, other: ProduceStats) {
        let _ = self.latency.add(&other.latency);
        self.records += other.records;
        self.bytes += other.bytes;
        self.failed_records += other.failed_records;
        self.failed_calls += other.failed_calls;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn add_to(&self, report: &mut Report) {
        report.count("records_put", "records put", self.records);
        report.count("records_failed", "records failed", self.failed_records);
        report.count("calls_failed", "calls failed", self.failed_calls);
        report.number("produce_seconds", "produce time", self.seconds, "s");
        report.rates("produce", self.records, self.bytes, self.seconds);
        report.latency("put_call", "PutRecords latency", &self.latency);
        if let Some(error) = &self.first_error {
            report.text("first_error", "first error", error);
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The send time of a timestamped record, if it is one.
pub fn sent_micros(data: &[u8]) -> Option<u64> {
    if data.len() < HEADER || &data[..8] != MAGIC {
        return None;
    }
    let mut stamp = [0u8; 8];
    stamp.copy_from_slice(&data[8..HEADER]);
    Some(u64::from_be_bytes(stamp))
}

fn random_bytes(len: usize) -> Bytes {
    let mut data = vec![0u8; len];
    rand::fill(&mut data[..]);
    Bytes::from(data)
}

/// Spaces batches so that all producers together put `rate` records/s.
struct Pacer {
    start: Instant,
    batches: AtomicU64,
    seconds_per_batch: f64,
}

impl Pacer {
    /// When the next batch may be sent.
    fn next_slot(&self) -> Instant {
        let index = self.batches.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_secs_f64(index as f64 * self.seconds_per_batch)
    }
}

/// Runs the producers until the deadline (or `max_records`) and returns their merged stats.
pub async fn produce(client: &Client, load: &Load) -> ProduceStats {
    let started = Instant::now();
    let payload = random_bytes(load.record_size);
    let keys: Arc<Vec<String>> = Arc::new(
        (0..KEYS)
            .map(|_| format!("{:032x}", rand::random::<u128>()))
            .collect(),
    );
    let pacer = (load.rate > 0).then(|| {
        Arc::new(Pacer {
            start: started,
            batches: AtomicU64::new(0),
            seconds_per_batch: load.batch_size as f64 / load.rate as f64,
        })
    });
    let claimed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..load.concurrency.max(1) {
        let (client, load, payload, keys, pacer, claimed) = (
            client.clone(),
            load.clone(),
            payload.clone(),
            keys.clone(),
            pacer.clone(),
            claimed.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut stats = ProduceStats::new();
            let mut key_index = worker * 977;
            loop {
                if let Some(max) = load.max_records
                    && claimed.fetch_add(load.batch_size as u64, Ordering::Relaxed) >= max
                {
                    break;
                }
                if let Some(pacer) = &pacer {
                    let slot = pacer.next_slot();
                    if slot >= load.deadline {
                        break;
                    }
                    tokio::time::sleep_until(slot).await;
                }
                if Instant::now() >= load.deadline {
                    break;
                }
                let entries: Vec<PutEntry> = (0..load.batch_size)
                    .map(|_| {
                        key_index = (key_index + 1) % keys.len();
                        let data = if load.timestamped {
                            stamped(&payload)
                        } else {
                            payload.clone()
                        };
                        PutEntry::new(keys[key_index].clone(), data)
                    })
                    .collect();
                let sent = Instant::now();
                let result = client.put_batch(&load.stream, entries).await;
                stats.latency.saturating_record(sent.elapsed().as_micros() as u64);
                match result {
                    Ok(results) => {
                        for result in results {
                            match result {
                                PutResult::Ok { .. } => {
                                    stats.records += 1;
                                    stats.bytes += load.record_size as u64;
                                }
                                PutResult::Failed {
                                    error_code,
                                    error_message,
                                } => {
                                    stats.failed_records += 1;
                                    if stats.first_error.is_none() {
                                        stats.first_error = Some(format!("{error_code}: {error_message}"));
                                    }
                                }
                            }
                        }
                    }
                    Err(err) => {
                        stats.failed_calls += 1;
                        if stats.first_error.is_none() {
                            stats.first_error = Some(err.to_string());
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            stats
        }));
    }
    let mut total = ProduceStats::new();
    for worker in workers {
        match worker.await {
            Ok(stats) => total.merge(stats),
            Err(err) => {
                total.failed_calls += 1;
                total
                    .first_error
                    .get_or_insert_with(|| format!("producer task failed: {err}"));
            }
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// The payload with the magic and the current time in its first 16 bytes.
fn stamped(payload: &Bytes) -> Bytes {
    let mut data = BytesMut::with_capacity(payload.len().max(HEADER));
    data.put_slice(MAGIC);
    data.put_u64(now_micros());
    if payload.len() > HEADER {
        data.put_slice(&payload[HEADER..]);
    }
    data.freeze()
}

#[derive(Debug, Clone, Args)]
pub struct ProduceOptions {
    #[command(flatten)]
    pub common: Options,
    /// Beside the load, put one record at a time (one in flight, every 10 ms) and report its
    /// latency: what a single put sees while the cluster carries the load.
    #[arg(long)]
    pub probe: bool,
}

pub async fn run(options: &ProduceOptions) -> anyhow::Result<Report> {
    let common = &options.common;
    let target = setup::connect(common).await?;
    let load = Load::from_options(common, false);
    let probe = options.probe.then(|| {
        let (client, load) = (target.client.clone(), load.clone());
        tokio::spawn(async move { probe(&client, &load).await })
    });
    let stats = produce(&target.client, &load).await;
    let mut report = Report::new("produce");
    describe_setup(&mut report, common, target.shards.len());
    stats.add_to(&mut report);
    if let Some(probe) = probe {
        let (latency, failed) = probe.await?;
        report.latency("probe_put", "probe put latency (1 record)", &latency);
        report.count("probe_failed", "probe puts failed", failed);
    }
    Ok(report)
}

/// Puts one record at a time until the load's deadline, 10 ms apart; their latencies (µs)
/// and how many failed.
async fn probe(client: &Client, load: &Load) -> (Histogram<u64>, u64) {
    let (mut latency, mut failed) = (histogram(), 0);
    let payload = random_bytes(load.record_size);
    while Instant::now() < load.deadline {
        let entry = PutEntry::new(format!("{:032x}", rand::random::<u128>()), payload.clone());
        let sent = Instant::now();
        match client.put_batch(&load.stream, vec![entry]).await.as_deref() {
            Ok([PutResult::Ok { .. }]) => {
                latency.saturating_record(sent.elapsed().as_micros() as u64);
            }
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (latency, failed)
}

/// The rows naming what was run.
pub fn describe_setup(report: &mut Report, options: &Options, shards: usize) {
    report.text("stream", "stream", &options.stream);
    report.count("shards", "open shards", shards as u64);
    report.count("record_size", "record size (B)", u64::from(options.record_size));
    report.count("batch_size", "batch size", u64::from(options.batch_size));
    report.count("concurrency", "concurrency", u64::from(options.concurrency));
    report.count("target_rate", "target records/s (0 = max)", options.rate);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let before = now_micros();
        let data = stamped(&random_bytes(100));
        assert_eq!(data.len(), 100);
        let sent = sent_micros(&data).unwrap_or_default();
        assert!(sent >= before && sent <= now_micros());
        assert_eq!(sent_micros(b"short"), None);
        assert_eq!(sent_micros(&[0u8; 32]), None);
        assert_eq!(stamped(&random_bytes(4)).len(), HEADER);
    }

    #[test]
    fn pacer_spaces_batches() {
        let pacer = Pacer {
            start: Instant::now(),
            batches: AtomicU64::new(0),
            seconds_per_batch: 0.5,
        };
        let first = pacer.next_slot();
        let third = {
            pacer.next_slot();
            pacer.next_slot()
        };
        assert_eq!(third - first, Duration::from_secs(1));
    }
}
