//! Producing and reading records.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

use super::ServiceError;
use super::StreamService;
use super::validate::Violations;
use crate::capacity::shard_admission::ReadAdmission;
use crate::capacity::usage::record_bytes;
use crate::catalog::ShardRecord;
use crate::catalog::StreamRecord;
use crate::model::Record;
use crate::model::RecordBatch;
use crate::model::SequenceNumber;
use crate::model::ShardId;
use crate::model::hash_key;
use crate::shard::AppendError;
use crate::shard::Cursor;
use crate::shard::DecodeError;
use crate::shard::ReadError;
use crate::shard::ReadLimits;
use crate::shard::ReadRecord;
use crate::shard::ReadResult;
use crate::shard::ReadStart;
use crate::shard::Take;
use crate::shard::decode;
use crate::shard::sequence_number;

pub const MAX_RECORDS_PER_PUT: usize = 500;
pub const MAX_PUT_BYTES: usize = 5 << 20;
/// 256 characters of UTF-8.
const MAX_PARTITION_KEY_BYTES: usize = 1024;
pub const MAX_GET_LIMIT: u32 = 10_000;
pub const MAX_GET_BYTES: usize = 10 << 20;
/// The error code of records whose stream's key the leader's keyring does not hold.
pub const KMS_NOT_FOUND: &str = "KMSNotFoundException";
/// How many reshard rounds one put follows before failing the records it still holds.
const MAX_RESHARD_RETRIES: usize = 4;

fn internal_failure() -> PutEntryResult {
    PutEntryResult::Failed {
        error_code: "InternalFailure".into(),
        error_message: "Internal service failure.".into(),
    }
}

#[derive(Clone, Debug)]
pub struct PutEntryInput {
    pub partition_key: String,
    pub data: Bytes,
    pub explicit_hash_key: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PutRecordsInput {
    pub stream_name: String,
    pub records: Vec<PutEntryInput>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutEntryResult {
    Ok {
        shard_id: ShardId,
        sequence_number: SequenceNumber,
        /// Stored encrypted (the stream's server-side encryption).
        encrypted: bool,
    },
    Failed {
        error_code: String,
        error_message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PositionInput {
    TrimHorizon,
    Latest,
    AtSequenceNumber(String),
    AfterSequenceNumber(String),
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
    /// A position this service handed out earlier (the AWS shard iterator carries one).
    Cursor(Cursor),
}

#[derive(Clone, Debug)]
pub struct GetRecordsInput {
    pub stream_name: String,
    pub shard_id: String,
    pub position: PositionInput,
    pub limit: Option<u32>,
}

#[derive(Debug)]
pub struct GetRecordsOutput {
    pub shard_id: ShardId,
    pub records: Vec<ReadRecord>,
    /// Where the next read continues; `None` once a closed shard has been read to its end.
    pub next: Option<Cursor>,
    pub millis_behind_latest: i64,
    /// At the end of a closed shard: the shards that continue it.
    pub child_shards: Vec<ChildShard>,
}

/// A shard that continues a closed one (GetRecords' and SubscribeToShard's ChildShards).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: ShardId,
    pub parent_shards: Vec<ShardId>,
    pub range: crate::model::HashKeyRange,
}

/// Why a read of a shard returned nothing.
#[derive(Debug)]
pub(super) enum ReadFailure {
    /// The shard's leader refused to admit it (over the shard's limits).
    Throttled,
    Service(ServiceError),
}

impl From<ServiceError> for ReadFailure {
    fn from(e: ServiceError) -> Self {
        ReadFailure::Service(e)
    }
}

impl From<ReadError> for ReadFailure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Throttled { .. } => ReadFailure::Throttled,
            other => ReadFailure::Service(ServiceError::internal(other)),
        }
    }
}

impl ReadFailure {
    /// The error of a read that is never admitted (a subscription's).
    pub(super) fn into_service_error(self) -> ServiceError {
        match self {
            ReadFailure::Service(e) => e,
            ReadFailure::Throttled => ServiceError::internal("a read that needs no admission was throttled"),
        }
    }
}

impl StreamService {
    fn validate_put(&self, input: &PutRecordsInput) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        let n = input.records.len();
        if n < 1 {
            v.push(
                "[]",
                "records",
                "Member must have length greater than or equal to 1",
            );
        }
        if n > MAX_RECORDS_PER_PUT {
            v.push(
                format!("[{n} records]"),
                "records",
                format!("Member must have length less than or equal to {MAX_RECORDS_PER_PUT}"),
            );
        }
        v.stream_name(&input.stream_name, "streamName");
        // The stream's MaxRecordSizeInKiB (the default for a stream that does not exist: that
        // error comes after the request's own checks, as on AWS).
        let max = self
            .inner
            .view
            .read(|c| c.stream(&input.stream_name).and_then(|s| s.max_record_size_kib))
            .map_or(self.inner.config.max_record_bytes, |kib| kib as usize * 1024);
        for (i, r) in input.records.iter().enumerate().take(MAX_RECORDS_PER_PUT) {
            let chars = r.partition_key.chars().count();
            let path = format!("records.{}.member.partitionKey", i + 1);
            v.min_len(&r.partition_key, chars, 1, &path);
            v.max_len(&r.partition_key, chars, 256, &path);
            if r.data.len() > max {
                v.push(
                    format!(
                        "java.nio.HeapByteBuffer[pos=0 lim={} cap={}]",
                        r.data.len(),
                        r.data.len()
                    ),
                    &format!("records.{}.member.data", i + 1),
                    format!("Member must have length less than or equal to {max}"),
                );
            }
            if let Some(k) = &r.explicit_hash_key
                && (!k.bytes().all(|b| b.is_ascii_digit()) || k.is_empty())
            {
                v.push(
                    k.as_str(),
                    &format!("records.{}.member.explicitHashKey", i + 1),
                    "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
                );
            }
        }
        v.into_result()?;
        let total: usize = input
            .records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        // A stream taking records over 5 MiB takes a request of one such record.
        let limit = MAX_PUT_BYTES.max(max + MAX_PARTITION_KEY_BYTES);
        if total > limit {
            return Err(ServiceError::InvalidArgument(format!(
                "Records size exceeds {} MB limit",
                limit >> 20
            )));
        }
        for r in &input.records {
            if let Some(k) = &r.explicit_hash_key
                && hash_key::parse_hash_key(k).is_none()
            {
                return Err(ServiceError::InvalidArgument(format!(
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {k}"
                )));
            }
        }
        Ok(())
    }

    /// Puts a batch; each record succeeds or fails on its own, as PutRecords does.
    pub async fn put_records(&self, input: PutRecordsInput) -> Result<Vec<PutEntryResult>, ServiceError> {
        let started = Instant::now();
        self.validate_put(&input)?;
        let mut stream = self.active_stream(&input.stream_name)?;
        let mut results: Vec<Option<PutEntryResult>> = vec![None; input.records.len()];
        let sizes: Vec<usize> = input
            .records
            .iter()
            .map(|r| record_bytes(r.data.len(), &r.partition_key))
            .collect();
        let mut todo: Vec<(usize, Record)> = input
            .records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let explicit_hash_key = r.explicit_hash_key.as_deref().and_then(hash_key::parse_hash_key);
                (
                    i,
                    Record {
                        partition_key: r.partition_key,
                        explicit_hash_key,
                        data: r.data,
                    },
                )
            })
            .collect();
        // A record that meets a sealed shard (a split or merge in progress) was not appended;
        // it is routed again once the catalog shows that shard's children.
        for round in 0..=MAX_RESHARD_RETRIES {
            let (closed, retry) = self
                .append_routed(&stream, std::mem::take(&mut todo), &mut results)
                .await?;
            if retry.is_empty() {
                break;
            }
            if round == MAX_RESHARD_RETRIES {
                break;
            }
            match self.await_closed(&stream.name, &closed).await {
                Ok(s) => stream = s,
                Err(e) => {
                    tracing::warn!(stream = %stream.name, error = %e, "records left behind by a reshard");
                    break;
                }
            }
            todo = retry;
        }
        let results: Vec<PutEntryResult> = results
            .into_iter()
            .map(|r| r.unwrap_or_else(internal_failure))
            .collect();
        self.account_put(&stream.name, &sizes, &results, started);
        Ok(results)
    }

    /// Routes records to the open shards owning their hash keys and appends one batch per
    /// shard, concurrently. Fills `results`; returns the shards found sealed and the records
    /// they refused (to route again).
    async fn append_routed(
        &self,
        stream: &StreamRecord,
        records: Vec<(usize, Record)>,
        results: &mut [Option<PutEntryResult>],
    ) -> Result<(Vec<u32>, Vec<(usize, Record)>), ServiceError> {
        let mut batches: BTreeMap<u32, Vec<(usize, Record)>> = BTreeMap::new();
        // The hash keys of each batch's records, in its order (for the shard's hot-key window).
        let mut hash_keys: BTreeMap<u32, Vec<u128>> = BTreeMap::new();
        for (i, r) in records {
            let key = r
                .explicit_hash_key
                .unwrap_or_else(|| hash_key::partition_key_hash(&r.partition_key));
            let Some(shard) = stream.open_shards().find(|s| s.range.contains(key)) else {
                return Err(ServiceError::internal(format!(
                    "no open shard of {} owns hash key {key}",
                    stream.name
                )));
            };
            batches.entry(shard.index).or_default().push((i, r));
            hash_keys.entry(shard.index).or_default().push(key);
        }
        // Per-shard throughput (PROVISIONED): each shard's leader appends what fits its budget;
        // the entries it refused fail on their own.
        let admit = self.write_throttled(stream);
        let router = &self.inner.router;
        let appends = batches.into_iter().map(|(shard, entries)| {
            let record = stream.shard(shard).cloned();
            async move {
                let batch = RecordBatch {
                    records: entries.iter().map(|(_, r)| r.clone()).collect(),
                };
                let outcome = match &record {
                    Some(record) => router.append(record, batch.encode(), admit, 0).await,
                    None => Err(AppendError::Unavailable {
                        shard: ShardId(shard),
                        message: "shard vanished".into(),
                    }),
                };
                (record, shard, entries, outcome)
            }
        });
        let mut closed = Vec::new();
        let mut retry = Vec::new();
        let mut throttled = 0;
        for (record, shard, entries, outcome) in futures::future::join_all(appends).await {
            match (record, outcome) {
                (Some(record), Ok(admitted)) => {
                    let (count, at) = admitted.appended(entries.len());
                    if let Some(a) = at {
                        for (p, (i, _)) in entries.iter().take(count).enumerate() {
                            results[*i] = Some(PutEntryResult::Ok {
                                shard_id: ShardId(shard),
                                sequence_number: sequence_number(
                                    &record,
                                    a.log_index,
                                    p as u16,
                                    a.arrival_ms,
                                ),
                                encrypted: a.encrypted,
                            });
                        }
                    }
                    let keys = hash_keys.get(&shard).map(Vec::as_slice).unwrap_or_default();
                    let sizes = entries
                        .iter()
                        .map(|(_, r)| record_bytes(r.data.len(), &r.partition_key) as u64);
                    self.observe_keys(&stream.name, shard, keys.iter().copied().zip(sizes).take(count));
                    let refused = entries.get(count..).unwrap_or_default();
                    throttled += self.fail_throttled(&stream.name, shard, refused, results);
                }
                (_, Err(AppendError::Closed { .. })) => {
                    closed.push(shard);
                    retry.extend(entries);
                }
                // The stream's key is missing from the leader's keyring: the records fail as
                // AWS fails them when KMS cannot find the key; nothing was stored.
                (_, Err(AppendError::KeyNotFound { message, .. })) => {
                    tracing::warn!(stream = %stream.name, shard = %ShardId(shard), error = %message, "encryption key not found");
                    for (i, _) in entries {
                        results[i] = Some(PutEntryResult::Failed {
                            error_code: KMS_NOT_FOUND.into(),
                            error_message: message.clone(),
                        });
                    }
                }
                (_, outcome) => {
                    let e = outcome.err().map(|e| e.to_string()).unwrap_or_default();
                    tracing::warn!(stream = %stream.name, shard = %ShardId(shard), error = %e, "append failed");
                    for (i, _) in entries {
                        results[i] = Some(internal_failure());
                    }
                }
            }
        }
        self.count_write_throttled(&stream.name, throttled);
        Ok((closed, retry))
    }

    /// Finds the shard of a data-plane read.
    pub(super) fn read_target(&self, stream_name: &str, shard_id: &str) -> Result<ShardRecord, ServiceError> {
        let mut v = Violations::default();
        v.stream_name(stream_name, "streamName");
        v.min_len(shard_id, shard_id.len(), 1, "shardId");
        v.max_len(shard_id, shard_id.len(), 128, "shardId");
        v.into_result()?;
        let stream = self.active_stream(stream_name)?;
        ShardId::parse(shard_id)
            .and_then(|s| stream.shard(s.0).cloned())
            .ok_or_else(|| {
                ServiceError::ResourceNotFound(format!(
                    "Shard {shard_id} in stream {stream_name} under account {} does not exist",
                    self.inner.config.account
                ))
            })
    }

    /// Turns a requested position into where a read of the shard starts. Sequence numbers are
    /// checked against the shard; log-dependent positions are resolved by the shard's leader.
    pub fn read_start(
        &self,
        shard: &ShardRecord,
        position: &PositionInput,
    ) -> Result<ReadStart, ServiceError> {
        let parse = |s: &str, kind: &str| {
            SequenceNumber::parse_for_shard(s, shard.index, shard.created_secs()).map_err(|_| {
                ServiceError::InvalidArgument(format!(
                    "Invalid SequenceNumber {s} for ShardIteratorType {kind} in shard {}",
                    ShardId(shard.index)
                ))
            })
        };
        Ok(match position {
            PositionInput::TrimHorizon => ReadStart::TrimHorizon,
            PositionInput::Latest => ReadStart::Latest,
            PositionInput::AtSequenceNumber(s) => {
                ReadStart::Cursor(Cursor::at(&parse(s, "AT_SEQUENCE_NUMBER")?))
            }
            PositionInput::AfterSequenceNumber(s) => {
                ReadStart::Cursor(Cursor::after(&parse(s, "AFTER_SEQUENCE_NUMBER")?))
            }
            PositionInput::AtTimestamp(ts) => ReadStart::AtTimestamp(*ts),
            PositionInput::Cursor(c) => ReadStart::Cursor(*c),
        })
    }

    /// Resolves a position to an exact cursor now (a shard iterator pins LATEST when issued),
    /// at the shard's leader, which first admits the read as `admission` says.
    pub(super) async fn resolve_cursor(
        &self,
        shard: &ShardRecord,
        position: &PositionInput,
        admission: ReadAdmission,
    ) -> Result<Cursor, ReadFailure> {
        let start = self.read_start(shard, position)?;
        let read = self
            .inner
            .router
            .read(shard, start, ReadLimits::RESOLVE, admission, 0)
            .await?;
        Ok(read.start)
    }

    pub async fn get_records(&self, input: GetRecordsInput) -> Result<GetRecordsOutput, ServiceError> {
        let started = Instant::now();
        if let Some(l) = input.limit
            && !(1..=MAX_GET_LIMIT).contains(&l)
        {
            let c = if l < 1 {
                "greater than or equal to 1".to_string()
            } else {
                format!("less than or equal to {MAX_GET_LIMIT}")
            };
            return Err(ServiceError::Validation(vec![super::FieldViolation {
                value: l.to_string(),
                path: "limit".into(),
                constraint: format!("Member must have value {c}"),
            }]));
        }
        let shard = self.read_target(&input.stream_name, &input.shard_id)?;
        let start = self.read_start(&shard, &input.position)?;
        let limit = input.limit.unwrap_or(MAX_GET_LIMIT) as usize;
        // Per-shard read throughput (PROVISIONED), at the shard's leader: 5 calls/s, bytes
        // charged after each read.
        let name = &input.stream_name;
        let budget = self.read_throttled(name);
        let read = match self.read(&shard, start, limit, MAX_GET_BYTES, budget).await {
            Ok(read) => read,
            Err(ReadFailure::Throttled) => return Err(self.read_refused(name, &shard)),
            Err(ReadFailure::Service(e)) => return Err(e),
        };
        let m = &self.inner.metrics.streams;
        let bytes: usize = read.records.iter().map(|r| r.data.len()).sum();
        let returned = self.account_read(name, &read.records);
        self.account_shard_read(name, ShardId(shard.index), returned);
        m.get_records_records
            .with_label_values(&[name])
            .inc_by(read.records.len() as u64);
        m.get_records_bytes
            .with_label_values(&[name])
            .inc_by(bytes as u64);
        m.get_records_latency
            .with_label_values(&[name])
            .observe(started.elapsed().as_secs_f64());
        m.iterator_age_ms
            .with_label_values(&[name])
            .set(read.millis_behind_latest);
        let (next, child_shards) = self.continuation(&input.stream_name, &shard, read.next);
        Ok(GetRecordsOutput {
            shard_id: ShardId(shard.index),
            records: read.records,
            next,
            millis_behind_latest: read.millis_behind_latest,
            child_shards,
        })
    }
}

impl StreamService {
    /// Reads up to `limit` records of a shard from `start`, at its leader. With
    /// `get_records_budget`, the read is a GetRecords call that the leader admits against the
    /// shard's read budget: the first read takes a call, each read is charged its bytes.
    pub(super) async fn read(
        &self,
        shard: &ShardRecord,
        start: ReadStart,
        limit: usize,
        max_bytes: usize,
        get_records_budget: bool,
    ) -> Result<ReadResult, ReadFailure> {
        // Fetch entries until `limit` records, `max_bytes` or the end: some entries hold no
        // records (a new leader's blank entry, membership changes), and one entry holds up to
        // 500. Only the read's first record may be larger than `max_bytes`.
        let mut start = start;
        let mut out: Option<ReadResult> = None;
        for round in 0..16 {
            let (taken, bytes) = out.as_ref().map_or((0, 0), |o| (o.records.len(), o.bytes));
            let take = Take {
                records: limit - taken,
                bytes: max_bytes.saturating_sub(bytes),
                at_least_one: round == 0,
            };
            let admission = if get_records_budget {
                ReadAdmission::GetRecords {
                    first: round == 0,
                    records: take.records,
                }
            } else {
                ReadAdmission::Unlimited
            };
            let limits = ReadLimits {
                max_entries: take.records.clamp(1, 1024),
                max_bytes: take.bytes.max(1),
            };
            let frames = self.inner.router.read(shard, start, limits, admission, 0).await?;
            let (watermark, fetched) = (frames.watermark, frames.frames.len());
            let part = decode(
                shard,
                frames.frames,
                frames.start,
                watermark,
                take,
                self.inner.router.cipher(),
            )
            .map_err(|e| match e {
                DecodeError::MissingKey(message) => ServiceError::KmsAccessDenied(message),
                DecodeError::Malformed(message) => ServiceError::internal(message),
            })?;
            let next = part.next;
            let done =
                fetched == 0 || next.log_index > watermark || part.full || part.records.len() >= take.records;
            out = Some(match out {
                None => part,
                Some(mut o) => {
                    o.records.extend(part.records);
                    o.next = part.next;
                    o.millis_behind_latest = part.millis_behind_latest;
                    o.bytes += part.bytes;
                    o.full = part.full;
                    o
                }
            });
            if done {
                break;
            }
            start = ReadStart::Cursor(next);
        }
        out.ok_or_else(|| ServiceError::internal("read produced nothing").into())
    }

    /// Where a read that stopped at `next` continues: nowhere past the end of a closed shard,
    /// whose children are returned instead.
    pub(super) fn continuation(
        &self,
        stream: &str,
        shard: &ShardRecord,
        next: Cursor,
    ) -> (Option<Cursor>, Vec<ChildShard>) {
        // The catalog may know of the close even if the caller's copy of the shard did not.
        let (end, children) = self.inner.view.read(|c| {
            let Some(s) = c.stream(stream) else {
                return (None, Vec::new());
            };
            let end = s.shard(shard.index).and_then(|r| r.ending_log_index);
            let children = s
                .children_of(shard.index)
                .map(|ch| ChildShard {
                    shard_id: ShardId(ch.index),
                    parent_shards: ch
                        .parent
                        .into_iter()
                        .chain(ch.adjacent_parent)
                        .map(ShardId)
                        .collect(),
                    range: ch.range,
                })
                .collect();
            (end, children)
        });
        match end {
            // The seal entry at `end` holds no records: reaching it is reaching the end.
            Some(end) if next.log_index >= end => (None, children),
            _ => (Some(next), Vec::new()),
        }
    }

    /// Creation time (seconds) of a shard, which its sequence numbers encode.
    pub fn shard_created_secs(&self, stream: &str, shard: u32) -> u64 {
        self.inner
            .view
            .read(|c| {
                c.stream(stream)
                    .and_then(|s| s.shard(shard))
                    .map(|s| s.created_secs())
            })
            .unwrap_or(0)
    }
}
