//! Group commit: a sync thread fsyncs every log that has pending appends, then acknowledges
//! all of them at once, so many concurrent batches (of one shard or of many) share each fsync.
//! A few sync threads share the logs (each log always on the same thread, so its syncs stay in
//! order): one shard's fsync does not wait for every other shard's on the same node.

use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use runnel_log::SyncHandle;

use crate::metrics::StorageMetrics;

/// When an appended entry counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum FsyncPolicy {
    /// fsync before acknowledging (with group commit). The default: nothing acknowledged is lost.
    #[default]
    Always,
    /// Acknowledge once written to the OS; a machine crash may lose acknowledged records.
    /// For benchmarks and throwaway data only.
    Never,
}

type Callback = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Pending {
    group: u64,
    handle: SyncHandle,
    done: Callback,
}

/// Sync threads per node. fsync waits on the device, not the CPU; a few in parallel keep a
/// device with a queue busy without one per log.
const SYNC_THREADS: usize = 4;

/// Handle to the node's group-commit threads.
#[derive(Clone)]
pub struct GroupCommit {
    policy: FsyncPolicy,
    txs: Vec<mpsc::Sender<Pending>>,
}

impl GroupCommit {
    pub fn start(policy: FsyncPolicy, metrics: StorageMetrics) -> io::Result<GroupCommit> {
        let mut txs = Vec::with_capacity(SYNC_THREADS);
        for i in 0..SYNC_THREADS {
            let (tx, rx) = mpsc::channel::<Pending>();
            let metrics = metrics.clone();
            thread::Builder::new()
                .name(format!("group-commit-{i}"))
                .spawn(move || run(rx, metrics))?;
            txs.push(tx);
        }
        Ok(GroupCommit { policy, txs })
    }

    /// Calls `done` once everything appended to `handle`'s log so far is durable.
    pub fn flush(&self, group: u64, handle: SyncHandle, done: impl FnOnce(io::Result<()>) + Send + 'static) {
        if self.policy == FsyncPolicy::Never {
            done(Ok(()));
            return;
        }
        let pending = Pending {
            group,
            handle,
            done: Box::new(done),
        };
        let tx = &self.txs[(group % self.txs.len() as u64) as usize];
        if let Err(mpsc::SendError(p)) = tx.send(pending) {
            (p.done)(Err(io::Error::other("group-commit thread stopped")));
        }
    }
}

fn run(rx: mpsc::Receiver<Pending>, metrics: StorageMetrics) {
    let mut batch: Vec<Pending> = Vec::new();
    let mut synced: Vec<(u64, Result<(), String>)> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        synced.clear();
        for p in &batch {
            if synced.iter().any(|(g, _)| *g == p.group) {
                continue;
            }
            let start = Instant::now();
            let result = p.handle.sync().map_err(|e| e.to_string());
            metrics.fsync_seconds.observe(start.elapsed().as_secs_f64());
            synced.push((p.group, result));
        }
        metrics.group_commit_batch.observe(batch.len() as f64);
        for p in batch.drain(..) {
            let result = match synced.iter().find(|(g, _)| *g == p.group) {
                Some((_, Ok(()))) => Ok(()),
                Some((_, Err(e))) => Err(io::Error::other(e.clone())),
                None => Err(io::Error::other("not synced")),
            };
            (p.done)(result);
        }
    }
}
