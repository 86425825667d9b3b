//! Push delivery of a shard's records from a position, as they arrive.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ServiceError;
use super::StreamService;
use super::records::ChildShard;
use super::records::PositionInput;
use crate::shard::Cursor;
use crate::shard::ReadRecord;
use crate::shard::ReadStart;

/// Events carry at most this many bytes of records.
const EVENT_BYTES: usize = 2 << 20;
/// An empty event is sent at least this often, so subscribers see progress and liveness.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// When no local replica can signal new records, how often the leader is asked again.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct SubscribeEvent {
    pub records: Vec<ReadRecord>,
    /// Where a new subscription continues; `None` at the end of a closed shard.
    pub continuation: Option<Cursor>,
    pub millis_behind_latest: i64,
    /// Set on the last event of a closed shard: the shards that continue it.
    pub child_shards: Vec<ChildShard>,
}

impl StreamService {
    /// Streams the shard's records from `position` until the subscriber goes away or the shard
    /// is removed.
    pub fn subscribe(
        &self,
        stream_name: &str,
        shard_id: &str,
        position: PositionInput,
    ) -> Result<ReceiverStream<Result<SubscribeEvent, ServiceError>>, ServiceError> {
        let shard = self.read_target(stream_name, shard_id)?;
        let mut start = self.read_start(&shard, &position)?;
        let (tx, rx) = mpsc::channel(4);
        let metrics = self
            .inner
            .metrics
            .streams
            .subscribe_iterator_age_ms
            .with_label_values(&[stream_name]);
        let svc = self.clone();
        let stream_name = stream_name.to_owned();
        tokio::spawn(async move {
            // A local replica (leader or follower) signals new entries; otherwise poll.
            let mut watermark = svc
                .inner
                .router
                .host()
                .by_group(shard.group)
                .map(|r| r.watermark());
            let mut quiet = Duration::ZERO;
            loop {
                let read = match svc.read(&shard, start, 10_000, EVENT_BYTES, false).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.into_service_error())).await;
                        return;
                    }
                };
                let caught_up = read.records.is_empty();
                start = ReadStart::Cursor(read.next);
                metrics.set(read.millis_behind_latest);
                let (continuation, child_shards) = svc.continuation(&stream_name, &shard, read.next);
                if continuation.is_none() {
                    // The end of a closed shard: one last event names the children.
                    svc.account_read(&stream_name, &read.records);
                    let event = SubscribeEvent {
                        records: read.records,
                        continuation: None,
                        millis_behind_latest: 0,
                        child_shards,
                    };
                    let _ = tx.send(Ok(event)).await;
                    return;
                }
                if !caught_up {
                    quiet = Duration::ZERO;
                    svc.account_read(&stream_name, &read.records);
                    let event = SubscribeEvent {
                        records: read.records,
                        continuation,
                        millis_behind_latest: read.millis_behind_latest,
                        child_shards: Vec::new(),
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    continue;
                }
                let waited = match watermark.as_mut() {
                    Some(w) => match tokio::time::timeout(HEARTBEAT, w.changed()).await {
                        Ok(Ok(())) => Duration::ZERO,
                        Ok(Err(_)) => return, // the replica was closed down
                        Err(_) => HEARTBEAT,
                    },
                    None => {
                        tokio::time::sleep(POLL).await;
                        POLL
                    }
                };
                quiet += waited;
                if quiet >= HEARTBEAT {
                    quiet = Duration::ZERO;
                    let event = SubscribeEvent {
                        records: Vec::new(),
                        continuation: Some(read.next),
                        millis_behind_latest: 0,
                        child_shards: Vec::new(),
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}
