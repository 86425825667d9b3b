//! Push delivery of a shard's records from a position, as they arrive.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::ServiceError;
use super::StreamService;
use super::records::PositionInput;
use crate::shard::Cursor;
use crate::shard::ReadRecord;

/// Events carry at most this many bytes of records.
const EVENT_BYTES: usize = 2 << 20;
/// An empty event is sent at least this often, so subscribers see progress and liveness.
const HEARTBEAT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct SubscribeEvent {
    pub records: Vec<ReadRecord>,
    /// Where a new subscription continues.
    pub continuation: Cursor,
    pub millis_behind_latest: i64,
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
        let replica = self.read_target(stream_name, shard_id)?;
        let mut cursor = self.resolve_position(&replica, &position)?;
        let (tx, rx) = mpsc::channel(4);
        let metrics = self
            .inner
            .metrics
            .streams
            .subscribe_iterator_age_ms
            .with_label_values(&[stream_name]);
        tokio::spawn(async move {
            let mut watermark = replica.watermark();
            loop {
                let read = match replica.read(cursor, 10_000, EVENT_BYTES) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(ServiceError::internal(e))).await;
                        return;
                    }
                };
                let caught_up = read.records.is_empty();
                cursor = read.next;
                metrics.set(read.millis_behind_latest);
                if !caught_up {
                    let event = SubscribeEvent {
                        records: read.records,
                        continuation: cursor,
                        millis_behind_latest: read.millis_behind_latest,
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    continue;
                }
                match tokio::time::timeout(HEARTBEAT, watermark.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return, // the shard was closed down
                    Err(_) => {
                        let event = SubscribeEvent {
                            records: Vec::new(),
                            continuation: cursor,
                            millis_behind_latest: 0,
                        };
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}
