//! The consumer library against real nodes: workers of one application share a stream's shards
//! through leases kept in the cluster, take over a crashed worker's shards from its last
//! checkpoint, read parents before children across resharding, and deliver every record at
//! least once, in per-key order. Deadlines below only bound how long a test waits for an
//! outcome; no assertion depends on how fast anything is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use harness::Node;
use runnel_client::Client;
use runnel_client::Consumer;
use runnel_client::ConsumerConfig;
use runnel_client::CreateStream;
use runnel_client::PutEntry;
use runnel_client::consumer::Checkpoint;

const KEYS: usize = 40;
const WAIT: Duration = Duration::from_secs(90);

/// What the workers did, in the order it was observed.
#[derive(Debug, Clone)]
enum Event {
    Delivered {
        worker: String,
        shard: String,
        records: Vec<(String, String)>,
    },
    Checkpointed {
        shard: String,
        upto: String,
    },
}

type Log = Arc<Mutex<Vec<Event>>>;

/// Puts `per_key` records for each key, numbered from `from`, in per-key order.
async fn produce(client: &Client, stream: &str, from: usize, per_key: usize) -> Vec<String> {
    let mut sent = Vec::new();
    for i in from..from + per_key {
        let entries: Vec<PutEntry> = (0..KEYS)
            .map(|k| {
                let data = format!("k{k}-{i:05}");
                sent.push(data.clone());
                PutEntry::new(format!("k{k}"), data)
            })
            .collect();
        // A cluster that just created the stream may refuse a call while its shard groups elect
        // leaders: retry the call (a record stored twice is delivered twice, which the checks
        // allow: delivery is at least once).
        let mut attempt = 0;
        loop {
            match client.put_records(stream, entries.clone()).await {
                Ok(results) if results.iter().all(|r| r.is_ok()) => break,
                other => {
                    attempt += 1;
                    assert!(attempt < 50, "put keeps failing: {other:?}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    sent
}

fn delivered(log: &Log) -> BTreeSet<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Delivered { records, .. } => Some(records.iter().map(|(_, d)| d.clone())),
            _ => None,
        })
        .flatten()
        .collect()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Decimal sequence numbers compare by length, then digits.
fn seq_le(a: &str, b: &str) -> bool {
    (a.len(), a) <= (b.len(), b)
}

/// Every key's records, first deliveries only, arrive in the order they were put; and no
/// record is delivered again after a checkpoint covering it succeeded.
fn check_order_and_checkpoints(log: &Log) {
    let log = log.lock().unwrap();
    let mut first: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut checkpointed: BTreeMap<String, String> = BTreeMap::new();
    for e in log.iter() {
        match e {
            Event::Delivered {
                worker,
                shard,
                records,
            } => {
                for (seq, data) in records {
                    if let Some(upto) = checkpointed.get(shard) {
                        assert!(
                            !seq_le(seq, upto),
                            "{worker} got {data} ({seq}) of {shard} again after the checkpoint at {upto}"
                        );
                    }
                    if seen.insert(data.clone()) {
                        let (key, n) = data.split_once('-').unwrap();
                        first.entry(key.to_string()).or_default().push(n.parse().unwrap());
                    }
                }
            }
            Event::Checkpointed { shard, upto } => {
                let e = checkpointed.entry(shard.clone()).or_insert_with(|| upto.clone());
                if seq_le(e, upto) {
                    *e = upto.clone();
                }
            }
        }
    }
    for (key, ns) in first {
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "records of {key} delivered out of order");
    }
}

async fn create(client: &Client, stream: &str, shards: u32) {
    client
        .create_stream(CreateStream::provisioned(stream, shards))
        .await
        .unwrap();
    client
        .wait_for_active(stream, Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_balance_shards_and_take_over_a_crashed_worker() {
    let node = Node::start();
    let client = Client::connect(node.endpoint.clone()).await.unwrap();
    create(&client, "orders", 4).await;
    let mut sent = produce(&client, "orders", 0, 10).await;
    let log: Log = Arc::default();

    // One worker takes every shard.
    let a = Consumer::start(
        client.clone(),
        ConsumerConfig::new("orders", "app", "a").with_failover_time(Duration::from_secs(3)),
    );
    let a = spawn_logging(a, "a", log.clone());
    wait_for("worker a to read everything", || {
        delivered(&log).len() == sent.len()
    })
    .await;
    assert_eq!(a.held().len(), 4);

    // A second worker gets half of them, one steal at a time.
    let b = Consumer::start(
        client.clone(),
        ConsumerConfig::new("orders", "app", "b").with_failover_time(Duration::from_secs(3)),
    );
    let b = spawn_logging(b, "b", log.clone());
    wait_for("2 + 2 leases", || a.held().len() == 2 && b.held().len() == 2).await;
    sent.extend(produce(&client, "orders", 10, 10).await);
    wait_for("both workers to read the new records", || {
        delivered(&log).len() == sent.len()
    })
    .await;
    let b_shards = b.held();
    let by_worker = |w: &str| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Delivered { worker, records, .. } if worker == w && !records.is_empty()))
            .count()
    };
    assert!(by_worker("b") > 0, "b delivered nothing");

    // b crashes without releasing anything; a takes its shards over after the failover time
    // and goes on from b's checkpoints.
    b.crash();
    sent.extend(produce(&client, "orders", 20, 10).await);
    wait_for("a to hold every shard again", || a.held().len() == 4).await;
    wait_for("every record after the crash", || {
        delivered(&log).len() == sent.len()
    })
    .await;
    assert_eq!(delivered(&log), sent.iter().cloned().collect());
    check_order_and_checkpoints(&log);

    // The checkpoints in the cluster are the last records of each shard.
    let leases = client.list_leases("orders", "app").await.unwrap();
    assert_eq!(leases.len(), 4);
    for lease in &leases {
        assert_eq!(lease.owner.as_deref(), Some("a"));
        let last = last_delivered(&log, &lease.shard_id);
        assert_eq!(
            lease.checkpoint,
            Some(Checkpoint::Sequence(last)),
            "{}",
            lease.shard_id
        );
    }
    assert!(b_shards.iter().all(|s| leases.iter().any(|l| &l.shard_id == s)));

    // A clean shutdown releases the leases: a new worker takes them at once (no failover
    // wait is needed for released leases) and reads only what came after the checkpoints.
    a.shutdown().await;
    let leases = client.list_leases("orders", "app").await.unwrap();
    assert!(leases.iter().all(|l| l.owner.is_none()), "{leases:?}");
    let before = log.lock().unwrap().len();
    let c = Consumer::start(
        client.clone(),
        ConsumerConfig::new("orders", "app", "c").with_failover_time(Duration::from_secs(3600)),
    );
    let c = spawn_logging(c, "c", log.clone());
    wait_for("c to take the released leases", || c.held().len() == 4).await;
    sent.extend(produce(&client, "orders", 30, 2).await);
    wait_for("c to read the new records", || {
        delivered(&log).len() == sent.len()
    })
    .await;
    let redelivered: usize = log.lock().unwrap()[before..]
        .iter()
        .map(|e| match e {
            Event::Delivered { records, .. } => records
                .iter()
                .filter(|(_, d)| !d.ends_with("-00030") && !d.ends_with("-00031"))
                .count(),
            _ => 0,
        })
        .sum();
    assert_eq!(redelivered, 0, "c resumed after the checkpoints");
    check_order_and_checkpoints(&log);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parents_are_processed_before_children_across_resharding() {
    let node = Node::start();
    let client = Client::connect(node.endpoint.clone()).await.unwrap();
    create(&client, "events", 2).await;
    let log: Log = Arc::default();
    let workers: Vec<Worker> = ["a", "b"]
        .iter()
        .map(|w| {
            let c = Consumer::start(
                client.clone(),
                ConsumerConfig::new("events", "app", *w).with_failover_time(Duration::from_secs(3)),
            );
            spawn_logging(c, w, log.clone())
        })
        .collect();
    let mut sent = produce(&client, "events", 0, 5).await;
    // Split, then merge back, while writing: the keys move to children and back.
    client
        .split_shard("events", "shardId-000000000000", u128::MAX / 4)
        .await
        .unwrap();
    sent.extend(produce(&client, "events", 5, 5).await);
    client
        .wait_for_active("events", Duration::from_secs(30))
        .await
        .unwrap();
    client
        .merge_shards("events", "shardId-000000000002", "shardId-000000000003")
        .await
        .unwrap();
    sent.extend(produce(&client, "events", 10, 5).await);
    client
        .wait_for_active("events", Duration::from_secs(30))
        .await
        .unwrap();
    sent.extend(produce(&client, "events", 15, 5).await);
    wait_for("every record", || delivered(&log).len() == sent.len()).await;
    assert_eq!(delivered(&log), sent.iter().cloned().collect());
    check_order_and_checkpoints(&log);

    // Closed shards end checkpointed at SHARD_END; the open ones are shared by the workers.
    let deadline = Instant::now() + WAIT;
    loop {
        let leases = client.list_leases("events", "app").await.unwrap();
        if leases.iter().filter(|l| l.is_ended()).count() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed shards not checkpointed at their end: {leases:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open: Vec<String> = client
        .describe_stream("events")
        .await
        .unwrap()
        .shards
        .into_iter()
        .filter(|s| s.ending_sequence_number.is_empty())
        .map(|s| s.shard_id)
        .collect();
    assert_eq!(open.len(), 2);
    wait_for("one open shard per worker", || {
        workers.iter().all(|w| w.held().len() == 1)
    })
    .await;
    for w in workers {
        w.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_are_shared_through_any_node_of_a_cluster() {
    let nodes = Node::start_cluster(3);
    let clients = futures::future::join_all(nodes.iter().map(|n| Client::connect(n.endpoint.clone()))).await;
    let clients: Vec<Client> = clients.into_iter().map(Result::unwrap).collect();
    create(&clients[0], "orders", 3).await;
    let log: Log = Arc::default();
    // Each worker talks to its own node: leases are compare-and-set through the catalog group.
    let workers: Vec<Worker> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = format!("w{i}");
            // A longer failover time than elsewhere: catalog round trips on a loaded 3-node
            // cluster must not make live workers look dead (leases would bounce between them).
            let config =
                ConsumerConfig::new("orders", "app", &name).with_failover_time(Duration::from_secs(6));
            let consumer = Consumer::start(c.clone(), config);
            spawn_logging(consumer, &name, log.clone())
        })
        .collect();
    let sent = produce(&clients[1], "orders", 0, 10).await;
    wait_for("every record", || delivered(&log).len() == sent.len()).await;
    wait_for("one shard per worker", || {
        workers.iter().all(|w| w.held().len() == 1)
    })
    .await;
    let holders: BTreeSet<Vec<String>> = workers.iter().map(Worker::held).collect();
    assert_eq!(
        holders.len(),
        3,
        "each shard leased by exactly one worker: {holders:?}"
    );
    assert_eq!(delivered(&log), sent.iter().cloned().collect());
    check_order_and_checkpoints(&log);
    for w in workers {
        w.shutdown().await;
    }
}

/// A worker whose deliveries go to the log.
struct Worker {
    held: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::oneshot::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    fn held(&self) -> Vec<String> {
        self.held.lock().unwrap().clone()
    }
    /// Stops and releases the leases.
    async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
    /// Stops as a crash would: nothing released.
    fn crash(self) {
        let _ = self.stop.send(false);
    }
}

fn spawn_logging(mut consumer: Consumer, worker: &str, log: Log) -> Worker {
    let held = Arc::new(Mutex::new(Vec::new()));
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<bool>();
    let worker = worker.to_string();
    let shared = held.clone();
    let task = tokio::spawn(async move {
        loop {
            *shared.lock().unwrap() = consumer.held_shards();
            let d = tokio::select! {
                d = consumer.next() => d,
                release = &mut stopped => {
                    if release.unwrap_or(false) {
                        consumer.shutdown().await;
                    } else {
                        consumer.abandon();
                    }
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => continue,
            };
            let Some(d) = d else { return };
            let records = d
                .records
                .iter()
                .map(|r| {
                    (
                        r.sequence_number.clone(),
                        String::from_utf8_lossy(&r.data).into_owned(),
                    )
                })
                .collect();
            log.lock().unwrap().push(Event::Delivered {
                worker: worker.clone(),
                shard: d.shard_id.clone(),
                records,
            });
            if consumer.checkpoint(&d).await.is_ok()
                && let Some(last) = d.records.last()
            {
                log.lock().unwrap().push(Event::Checkpointed {
                    shard: d.shard_id.clone(),
                    upto: last.sequence_number.clone(),
                });
            }
        }
    });
    Worker { held, stop, task }
}

fn last_delivered(log: &Log, shard: &str) -> String {
    let log = log.lock().unwrap();
    let mut last = String::new();
    for e in log.iter() {
        if let Event::Delivered {
            shard: s, records, ..
        } = e
            && s == shard
        {
            for (seq, _) in records {
                if last.is_empty() || seq_le(&last, seq) {
                    last = seq.clone();
                }
            }
        }
    }
    last
}
