//! Stale-read probes for cluster checkers: while faults are injected, a reader asks random
//! nodes for a record whose acknowledgement arrived before the read was sent. A successful
//! read must return that record: a deposed leader (or a follower) presenting its older prefix
//! as the latest data fails the check. Failed reads are fine.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use runnel_proto::v1 as pb;

use super::workload::parse_id;

/// Where a record was acknowledged: its sequence number and its id (producer, counter).
type Acknowledged = (String, (u32, u64));

/// The last acknowledged record of each shard, as producers learn them.
#[derive(Default)]
pub struct LatestAcks(Mutex<BTreeMap<String, Acknowledged>>);

impl LatestAcks {
    pub fn publish(&self, shard: &str, seq: &str, id: (u32, u64)) {
        let mut m = self.0.lock().unwrap();
        m.insert(shard.to_owned(), (seq.to_owned(), id));
    }

    fn pick(&self, rng: &mut impl Rng) -> Option<(String, String, (u32, u64))> {
        let m = self.0.lock().unwrap();
        if m.is_empty() {
            return None;
        }
        let (shard, (seq, id)) = m.iter().nth(rng.random_range(0..m.len()))?;
        Some((shard.clone(), seq.clone(), *id))
    }
}

/// Reads acknowledged records back through random endpoints until `stop`; panics on a stale
/// read. Returns how many reads succeeded (and were checked).
pub async fn probe_reads(
    stream: &str,
    endpoints: Vec<String>,
    latest: Arc<LatestAcks>,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4201);
    let mut checked = 0;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if super::workload::PAUSED.load(Ordering::SeqCst) {
            continue;
        }
        // Picked before the read is sent: its acknowledgement has arrived.
        let Some((shard, seq, id)) = latest.pick(&mut rng) else {
            continue;
        };
        let endpoint = &endpoints[rng.random_range(0..endpoints.len())];
        let Ok(mut client) = super::streams_client(endpoint).await else {
            continue;
        };
        let read = client.get_records(pb::GetRecordsRequest {
            stream_name: stream.into(),
            shard_id: shard.clone(),
            position: Some(super::at_seq(&seq)),
            limit: 1,
        });
        let Ok(Ok(resp)) = tokio::time::timeout(Duration::from_secs(15), read).await else {
            continue;
        };
        let records = resp.into_inner().records;
        let first = records
            .first()
            .map(|r| (r.sequence_number.as_str(), parse_id(&r.data)));
        assert_eq!(
            first,
            Some((seq.as_str(), id)),
            "stale read through {endpoint}: {shard} at {seq} should hold acknowledged record {id:?}"
        );
        checked += 1;
    }
    checked
}
