//! The worker's background tasks: a coordinator that renews and takes leases every renewal
//! interval, and one reader per leased shard that hands records to the application.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::ConsumerConfig;
use super::Delivery;
use super::Held;
use super::balance;
use super::balance::ExpiryTracker;
use super::balance::ShardInfo;
use super::leases::Checkpoint;
use super::leases::Lease;
use crate::Client;
use crate::Error;
use crate::Position;
use crate::Record;

/// A shard reader; dropping it stops the read.
struct Reader(JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct State {
    client: Client,
    config: ConsumerConfig,
    held: Held,
    tx: mpsc::Sender<Delivery>,
    readers: HashMap<String, Reader>,
    tracker: ExpiryTracker,
    generation: u64,
    last_renewed: Instant,
}

enum Round {
    Continue,
    /// The stream is gone, or every shard is closed and processed.
    Finished,
}

pub(super) async fn run(
    client: Client,
    config: ConsumerConfig,
    held: Held,
    tx: mpsc::Sender<Delivery>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(config.renew_interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = State {
        client,
        config,
        held,
        tx,
        readers: HashMap::new(),
        tracker: ExpiryTracker::default(),
        generation: 0,
        last_renewed: Instant::now(),
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => break,
        }
        // A call that never answers (a node cut off from the cluster) must not stop the
        // worker: the round is abandoned and tried again.
        let limit = state.config.failover_time.max(Duration::from_secs(5));
        match tokio::time::timeout(limit, state.round()).await {
            Ok(Ok(Round::Continue)) => {}
            Ok(Ok(Round::Finished)) => return,
            Ok(Err(e)) => tracing::warn!(error = %e, "consumer round failed; retrying"),
            Err(_) => tracing::warn!("consumer round timed out; retrying"),
        }
    }
    state.release_all().await;
}

impl State {
    fn held_shards(&self) -> Vec<String> {
        self.held
            .lock()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn drop_lease(&mut self, shard: &str) {
        if let Ok(mut h) = self.held.lock() {
            h.remove(shard);
        }
        self.readers.remove(shard);
    }

    async fn round(&mut self) -> Result<Round, Error> {
        let c = self.config.clone();
        self.renew(&c).await;
        let description = match self.client.describe_stream(&c.stream).await {
            Err(Error::StreamNotFound(_)) => return Ok(Round::Finished),
            other => other?,
        };
        let listed: Vec<&str> = description.shards.iter().map(|s| s.shard_id.as_str()).collect();
        let shards: Vec<ShardInfo> = description
            .shards
            .iter()
            .map(|s| ShardInfo {
                shard_id: s.shard_id.clone(),
                parents: [&s.parent_shard_id, &s.adjacent_parent_shard_id]
                    .into_iter()
                    .filter(|p| listed.contains(&p.as_str()))
                    .cloned()
                    .collect(),
                closed: !s.ending_sequence_number.is_empty(),
            })
            .collect();
        let leases = self.client.list_leases(&c.stream, &c.application).await?;
        // Processed to the end (checkpointed): nothing more to hold.
        for lease in leases.iter().filter(|l| l.is_ended()) {
            if self.held.lock().is_ok_and(|h| h.contains_key(&lease.shard_id)) {
                self.drop_lease(&lease.shard_id);
            }
        }
        let by_shard: BTreeMap<&str, &Lease> = leases.iter().map(|l| (l.shard_id.as_str(), l)).collect();
        let skip_closed = c.initial_position == Position::Latest;
        if balance::workable(&shards, &by_shard, skip_closed).is_empty() && self.held_shards().is_empty() {
            return Ok(Round::Finished);
        }
        let expired = self.tracker.observe(&leases, Instant::now(), c.failover_time);
        for take in balance::plan(&c.worker_id, &shards, &leases, &expired, skip_closed) {
            let lease = match self
                .client
                .take_lease(
                    &c.stream,
                    &c.application,
                    &take.shard_id,
                    &c.worker_id,
                    take.expected,
                    take.steal_from.as_deref(),
                )
                .await
            {
                Ok(lease) => lease,
                // Another worker was faster; the next round looks again.
                Err(Error::LeaseConflict(_)) => continue,
                Err(e) => return Err(e),
            };
            let Some(shard) = shards.iter().find(|s| s.shard_id == take.shard_id) else {
                continue;
            };
            let start = match &lease.checkpoint {
                Some(Checkpoint::Sequence(seq)) => Position::AfterSequenceNumber(seq.clone()),
                Some(Checkpoint::ShardEnd) => continue,
                None => balance::start_position(shard, &by_shard, &c.initial_position),
            };
            tracing::info!(shard = %take.shard_id, worker = %c.worker_id, %start, "took lease");
            self.generation += 1;
            if let Ok(mut h) = self.held.lock() {
                h.insert(take.shard_id.clone(), self.generation);
            }
            let task = tokio::spawn(read_shard(
                self.client.clone(),
                c.clone(),
                take.shard_id.clone(),
                self.generation,
                start,
                self.tx.clone(),
            ));
            self.readers.insert(take.shard_id, Reader(task));
        }
        Ok(Round::Continue)
    }

    /// Renews the held leases and stops reading the shards whose leases were lost. Leases that
    /// could not be renewed for the failover time are given up too: other workers own them
    /// by now.
    async fn renew(&mut self, c: &ConsumerConfig) {
        let held = self.held_shards();
        if held.is_empty() {
            self.last_renewed = Instant::now();
            return;
        }
        match self
            .client
            .renew_leases(&c.stream, &c.application, &c.worker_id, held.clone())
            .await
        {
            Ok(kept) => {
                self.last_renewed = Instant::now();
                for shard in held.iter().filter(|s| !kept.contains(s)) {
                    tracing::info!(shard = %shard, worker = %c.worker_id, "lease lost");
                    self.drop_lease(shard);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "lease renewal failed");
                if self.last_renewed.elapsed() >= c.failover_time {
                    for shard in &held {
                        self.drop_lease(shard);
                    }
                }
            }
        }
    }

    async fn release_all(&mut self) {
        self.readers.clear();
        let c = &self.config;
        for shard in self.held_shards() {
            if let Err(e) = self
                .client
                .release_lease(&c.stream, &c.application, &shard, &c.worker_id)
                .await
            {
                tracing::warn!(shard = %shard, error = %e, "lease release failed");
            }
        }
        if let Ok(mut h) = self.held.lock() {
            h.clear();
        }
    }
}

/// Reads one leased shard from `start` and hands its records over, in order, until the shard
/// ends (the last delivery says so) or the reader is dropped.
async fn read_shard(
    client: Client,
    c: ConsumerConfig,
    shard: String,
    generation: u64,
    start: Position,
    tx: mpsc::Sender<Delivery>,
) {
    let mut position = start;
    loop {
        let page = match client
            .get_records(&c.stream, &shard, position.clone(), c.limit_per_call)
            .await
        {
            Ok(page) => page,
            Err(Error::StreamNotFound(_) | Error::ShardNotFound { .. }) => return,
            Err(e) => {
                tracing::debug!(shard = %shard, error = %e, "read failed; retrying");
                tokio::time::sleep(c.poll_interval).await;
                continue;
            }
        };
        let idle = page.records.is_empty();
        let shard_end = page.next_position.is_none();
        if !idle || shard_end {
            let last_sequence_number = page.records.last().map(|r| r.sequence_number.clone());
            let records: Vec<Record> = if c.deaggregate {
                page.records.into_iter().flat_map(Record::deaggregate).collect()
            } else {
                page.records
            };
            let delivery = Delivery {
                shard_id: shard.clone(),
                records,
                shard_end,
                generation,
                last_sequence_number,
            };
            if tx.send(delivery).await.is_err() {
                return;
            }
        }
        match page.next_position {
            None => return,
            Some(next) => position = next,
        }
        if idle {
            tokio::time::sleep(c.poll_interval).await;
        }
    }
}
