//! A consuming application's worker: shard leases balanced across the application's workers,
//! checkpoints kept in the Runnel cluster (no DynamoDB), parents read before children, and
//! at-least-once delivery (after a failover or restart, a shard is read again from its last
//! checkpoint).
//!
//! ```no_run
//! # async fn example() -> Result<(), runnel_client::Error> {
//! use runnel_client::{Client, Consumer, ConsumerConfig};
//! let client = Client::connect("http://127.0.0.1:4568").await?;
//! let mut consumer = Consumer::start(client, ConsumerConfig::new("orders", "billing", "worker-1"));
//! while let Some(delivery) = consumer.next().await {
//!     for record in &delivery.records { /* process */ }
//!     consumer.checkpoint(&delivery).await?;
//! }
//! # Ok(()) }
//! ```

pub mod balance;
pub mod leases;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Client;
use crate::Error;
use crate::Position;
use crate::Record;
pub use leases::Checkpoint;
pub use leases::Lease;

/// How a [`Consumer`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    pub stream: String,
    /// The consuming application: workers with the same name share the shards and checkpoints.
    pub application: String,
    /// This worker's id, unique within the application.
    pub worker_id: String,
    /// Where a shard without a checkpoint starts (TRIM_HORIZON, LATEST or AT_TIMESTAMP).
    /// Children of processed shards always start at their beginning.
    pub initial_position: Position,
    /// A lease whose counter has not moved for this long is taken over.
    pub failover_time: Duration,
    /// How often leases are renewed and the shards and leases looked at again (at most a
    /// third of the failover time).
    pub renew_interval: Duration,
    /// Records asked per GetRecords call.
    pub limit_per_call: u32,
    /// Pause between polls of a shard that had nothing new.
    pub poll_interval: Duration,
    /// Deliveries buffered ahead of the application.
    pub buffer: usize,
    /// Split KPL-aggregated records into their user records.
    pub deaggregate: bool,
}

impl ConsumerConfig {
    pub fn new(
        stream: impl Into<String>,
        application: impl Into<String>,
        worker_id: impl Into<String>,
    ) -> Self {
        ConsumerConfig {
            stream: stream.into(),
            application: application.into(),
            worker_id: worker_id.into(),
            initial_position: Position::TrimHorizon,
            failover_time: Duration::from_secs(10),
            renew_interval: Duration::from_secs(3),
            limit_per_call: 10_000,
            poll_interval: Duration::from_millis(200),
            buffer: 16,
            deaggregate: true,
        }
    }

    /// Sets the failover time and a renewal interval of a third of it.
    pub fn with_failover_time(mut self, failover: Duration) -> Self {
        self.failover_time = failover;
        self.renew_interval = failover / 3;
        self
    }
}

/// Records of one shard, in sequence order, handed to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub shard_id: String,
    pub records: Vec<Record>,
    /// The shard is closed and these are its last records: checkpointing this delivery lets
    /// the shard's children start.
    pub shard_end: bool,
    /// Which holding of the lease this came from; a checkpoint from an older holding fails.
    generation: u64,
    /// The last sequence number read, before de-aggregation.
    last_sequence_number: Option<String>,
}

/// The leases this worker holds: shard → the generation of its reader.
type Held = Arc<Mutex<HashMap<String, u64>>>;

/// One worker of a consuming application. Deliveries come from every shard whose lease it
/// holds; the application processes them and checkpoints.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    deliveries: mpsc::Receiver<Delivery>,
    held: Held,
    coordinator: JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Consumer {
    /// Starts the worker: it takes leases in the background and reads the leased shards.
    pub fn start(client: Client, config: ConsumerConfig) -> Consumer {
        let (tx, deliveries) = mpsc::channel(config.buffer.max(1));
        let held: Held = Arc::default();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let coordinator = tokio::spawn(worker::run(
            client.clone(),
            config.clone(),
            held.clone(),
            tx,
            stopped,
        ));
        Consumer {
            client,
            config,
            deliveries,
            held,
            coordinator,
            stop,
        }
    }

    /// The next delivery; `None` once the stream is gone or every shard is closed and
    /// processed (or the worker was stopped).
    pub async fn next(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// The shards whose leases this worker holds now.
    pub fn held_shards(&self) -> Vec<String> {
        let mut shards: Vec<String> = self
            .held
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default();
        shards.sort();
        shards
    }

    /// Records that `delivery` is processed: its last record, or the shard's end. Fails with
    /// [`Error::LeaseLost`] when the lease moved to another worker meanwhile (that worker
    /// reads again from the previous checkpoint).
    pub async fn checkpoint(&self, delivery: &Delivery) -> Result<(), Error> {
        let current = self
            .held
            .lock()
            .ok()
            .and_then(|h| h.get(&delivery.shard_id).copied());
        if current != Some(delivery.generation) {
            return Err(Error::LeaseLost(delivery.shard_id.clone()));
        }
        let checkpoint = if delivery.shard_end {
            Checkpoint::ShardEnd
        } else if let Some(seq) = &delivery.last_sequence_number {
            Checkpoint::Sequence(seq.clone())
        } else {
            return Ok(());
        };
        let c = &self.config;
        match self
            .client
            .checkpoint(
                &c.stream,
                &c.application,
                &delivery.shard_id,
                &c.worker_id,
                &checkpoint,
            )
            .await
        {
            Err(Error::LeaseConflict(_)) => Err(Error::LeaseLost(delivery.shard_id.clone())),
            other => other,
        }
    }

    /// Stops reading and releases the held leases, so other workers take them at once.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.coordinator.await;
    }

    /// Stops without releasing anything, as a crashed worker would: its leases expire after
    /// the failover time. For tests and for handing over without a release.
    pub fn abandon(self) {
        self.coordinator.abort();
    }
}
