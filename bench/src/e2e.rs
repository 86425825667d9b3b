//! The `e2e` mode: put-to-subscribe latency, and the receivers shared with `mixed`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use runnel_client::Client;
use runnel_client::Position;
use runnel_client::Record;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Options;
use crate::produce;
use crate::produce::Load;
use crate::report::Report;
use crate::report::histogram;
use crate::setup;

/// Time for subscriptions (and first polls) to be in place before producing.
pub const SETTLE: Duration = Duration::from_millis(500);
/// How long receivers may keep catching up after the producers stop.
const GRACE: Duration = Duration::from_secs(3);
/// Pause between empty polls in polling receivers.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What receivers saw.
#[derive(Debug)]
pub struct ReceiveStats {
    /// Now minus the send time embedded in the record, in microseconds.
    pub latency: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
    pub first_error: Option<String>,
    /// Shared count of records received by all receivers, for knowing when they caught up.
    received: Arc<AtomicU64>,
}

impl ReceiveStats {
    pub fn new() -> Self {
        ReceiveStats {
            latency: histogram(),
            records: 0,
            bytes: 0,
            first_error: None,
            received: Arc::new(AtomicU64::new(0)),
        }
    }

    fn observe(&mut self, records: &[Record]) {
        let now = produce::now_micros();
        for record in records {
            self.records += 1;
            self.bytes += record.data.len() as u64;
            if let Some(sent) = produce::sent_micros(&record.data) {
                self.latency.saturating_record(now.saturating_sub(sent));
            }
        }
        self.received.fetch_add(records.len() as u64, Ordering::Relaxed);
    }

    pub fn merge(&mut self, other: ReceiveStats) {
        let _ = self.latency.add(&other.latency);
        self.records += other.records;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// How receivers read new records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Subscribe,
    Poll,
}

/// Receivers on every shard from LATEST, stopped by `stop`.
pub struct Receivers {
    tasks: Vec<JoinHandle<ReceiveStats>>,
    stop: watch::Sender<bool>,
    received: Arc<AtomicU64>,
}

impl Receivers {
    pub fn start(client: &Client, stream: &str, shards: &[String], via: Via) -> Self {
        Receivers::start_as(client, stream, shards, via, None)
    }

    /// [`Receivers::start`]; subscriptions are made as the enhanced fan-out `consumer`.
    pub fn start_as(
        client: &Client,
        stream: &str,
        shards: &[String],
        via: Via,
        consumer: Option<String>,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let received = Arc::new(AtomicU64::new(0));
        let tasks = shards
            .iter()
            .map(|shard| {
                let (client, stream, shard, stopped) =
                    (client.clone(), stream.to_string(), shard.clone(), stopped.clone());
                let received = received.clone();
                let consumer = consumer.clone();
                tokio::spawn(async move {
                    let mut stats = ReceiveStats::new();
                    stats.received = received;
                    let result = match via {
                        Via::Subscribe => {
                            subscribe(&client, &stream, &shard, consumer.as_deref(), stopped, &mut stats)
                                .await
                        }
                        Via::Poll => poll(&client, &stream, &shard, stopped, &mut stats).await,
                    };
                    if let Err(err) = result {
                        stats.first_error = Some(err.to_string());
                    }
                    stats
                })
            })
            .collect();
        Receivers {
            tasks,
            stop,
            received,
        }
    }

    /// Waits until `expected` records arrived or the grace period ends, then stops.
    pub async fn finish(self, expected: u64) -> ReceiveStats {
        let until = Instant::now() + GRACE;
        while self.received.load(Ordering::Relaxed) < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop.send(true);
        let mut total = ReceiveStats::new();
        for task in self.tasks {
            match task.await {
                Ok(stats) => total.merge(stats),
                Err(err) => {
                    total
                        .first_error
                        .get_or_insert_with(|| format!("receiver failed: {err}"));
                }
            }
        }
        total
    }
}

async fn subscribe(
    client: &Client,
    stream: &str,
    shard: &str,
    consumer: Option<&str>,
    mut stopped: watch::Receiver<bool>,
    stats: &mut ReceiveStats,
) -> Result<(), runnel_client::Error> {
    let mut position = Position::Latest;
    while !*stopped.borrow() {
        let mut events = client
            .subscribe_as(stream, shard, position.clone(), consumer)
            .await?;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(event) => {
                        let event = event?;
                        stats.observe(&event.records);
                        if !event.continuation_sequence_number.is_empty() {
                            position = Position::AfterSequenceNumber(event.continuation_sequence_number);
                        }
                        if !event.child_shards.is_empty() {
                            return Ok(());
                        }
                    }
                    None => break,
                },
                _ = stopped.changed() => return Ok(()),
            }
        }
    }
    Ok(())
}

async fn poll(
    client: &Client,
    stream: &str,
    shard: &str,
    stopped: watch::Receiver<bool>,
    stats: &mut ReceiveStats,
) -> Result<(), runnel_client::Error> {
    let mut position = Position::Latest;
    while !*stopped.borrow() {
        let page = client
            .get_records(stream, shard, position.clone(), 10_000)
            .await?;
        stats.observe(&page.records);
        let empty = page.records.is_empty();
        match page.next_position {
            Some(next) => position = next,
            None => return Ok(()),
        }
        if empty {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
    Ok(())
}

/// Adds the receivers' rows.
pub fn add_receive_rows(report: &mut Report, stats: &ReceiveStats, seconds: f64) {
    report.count("records_received", "records received", stats.records);
    report.rates("consume", stats.records, stats.bytes, seconds);
    report.latency("put_to_receive", "put-to-receive latency", &stats.latency);
    if let Some(error) = &stats.first_error {
        report.text("receive_first_error", "receiver first error", error);
    }
}

pub async fn run(options: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        options.record_size as usize >= produce::HEADER,
        "e2e needs --record-size of at least 16"
    );
    let target = setup::connect(options).await?;
    let receivers = Receivers::start(&target.client, &options.stream, &target.shards, Via::Subscribe);
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    let load = Load::from_options(options, true);
    let produced = produce::produce(&target.client, &load).await;
    let received = receivers.finish(produced.records).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut report = Report::new("e2e");
    produce::describe_setup(&mut report, options, target.shards.len());
    produced.add_to(&mut report);
    add_receive_rows(&mut report, &received, seconds);
    Ok(report)
}
