//! Stream administration: create, describe, list, delete, retention.

use std::collections::BTreeMap;

use openraft::async_runtime::WatchReceiver;

use super::ServiceError;
use super::StreamService;
use super::validate::Violations;
use crate::catalog::Catalog;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::DEFAULT_MAX_RECORD_SIZE_KIB;
use crate::catalog::MAX_MAX_RECORD_SIZE_KIB;
use crate::catalog::ShardRecord;
use crate::catalog::StreamMode;
use crate::catalog::StreamRecord;
use crate::catalog::StreamStatus;
use crate::clock;
use crate::cluster::placement;
use crate::model::HashKeyRange;
use crate::model::SequenceNumber;
use crate::model::ShardId;

pub const MIN_RETENTION_HOURS: u32 = 24;
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Shards an ON_DEMAND stream starts with.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

#[derive(Clone, Debug, Default)]
pub struct CreateStreamInput {
    pub stream_name: String,
    pub shard_count: Option<u32>,
    pub on_demand: bool,
    pub retention_hours: Option<u32>,
    pub tags: BTreeMap<String, String>,
    /// MaxRecordSizeInKiB (1024..=10240); `None` for the default, 1024.
    pub max_record_size_kib: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct ShardDescription {
    pub shard_id: ShardId,
    pub parent: Option<ShardId>,
    pub adjacent_parent: Option<ShardId>,
    pub range: HashKeyRange,
    pub starting_sequence_number: SequenceNumber,
    pub ending_sequence_number: Option<SequenceNumber>,
    pub replicas: Vec<u64>,
    pub leader: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct StreamDescription {
    pub name: String,
    pub arn: String,
    pub status: StreamStatus,
    pub mode: StreamMode,
    pub retention_hours: u32,
    pub created_ms: i64,
    pub tags: BTreeMap<String, String>,
    pub shards: Vec<ShardDescription>,
    pub open_shard_count: u32,
    /// MaxRecordSizeInKiB.
    pub max_record_size_kib: u32,
    /// The `KeyId` new records are encrypted with (EncryptionType KMS), if any.
    pub encryption_key_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct ListStreamsOutput {
    pub names: Vec<String>,
    pub has_more: bool,
}

/// One page of names in order: at most `limit` of those strictly after `exclusive_start`, and
/// whether more follow.
pub(super) fn page_after<'a>(
    names: impl Iterator<Item = &'a String>,
    exclusive_start: Option<&str>,
    limit: usize,
) -> (Vec<String>, bool) {
    let mut page: Vec<String> = names
        .filter(|n| exclusive_start.is_none_or(|s| n.as_str() > s))
        .take(limit + 1)
        .cloned()
        .collect();
    let has_more = page.len() > limit;
    page.truncate(limit);
    (page, has_more)
}

fn seq(shard: &ShardRecord, log_index: u64) -> SequenceNumber {
    SequenceNumber {
        shard_created_secs: shard.created_secs(),
        shard_index: shard.index,
        log_index,
        position: 0,
        arrival_secs: shard.created_secs(),
    }
}

impl StreamService {
    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.inner.config.region, self.inner.config.account
        )
    }

    pub(super) async fn propose(&self, cmd: CatalogCommand) -> Result<CatalogReply, ServiceError> {
        self.inner
            .catalog
            .propose(cmd, 0)
            .await
            .map(|(reply, _)| reply)
            .map_err(ServiceError::internal)
    }

    pub(super) fn stream_record(&self, name: &str) -> Result<StreamRecord, ServiceError> {
        self.inner
            .view
            .read(|c| c.stream(name).cloned())
            .ok_or_else(|| self.not_found(name))
    }

    fn describe_record(&self, s: &StreamRecord) -> StreamDescription {
        let shards = s
            .listed_shards()
            .map(|sh| ShardDescription {
                shard_id: ShardId(sh.index),
                parent: sh.parent.map(ShardId),
                adjacent_parent: sh.adjacent_parent.map(ShardId),
                range: sh.range,
                starting_sequence_number: seq(sh, 0),
                ending_sequence_number: sh.ending_log_index.map(|i| seq(sh, i)),
                replicas: sh.replicas.clone(),
                leader: self
                    .inner
                    .router
                    .host()
                    .by_group(sh.group)
                    .and_then(|r| r.group().raft.metrics().borrow_watched().current_leader),
            })
            .collect();
        StreamDescription {
            name: s.name.clone(),
            arn: self.arn(&s.name),
            status: s.status,
            mode: s.mode,
            retention_hours: s.retention_hours,
            created_ms: s.created_ms,
            tags: s.tags.clone(),
            open_shard_count: s.open_shards().count() as u32,
            shards,
            max_record_size_kib: s.max_record_size_kib(),
            encryption_key_id: s.encryption.as_ref().map(|e| e.key_id.clone()),
        }
    }

    pub async fn create_stream(&self, input: CreateStreamInput) -> Result<StreamDescription, ServiceError> {
        let mut v = Violations::default();
        v.stream_name(&input.stream_name, "streamName");
        if let Some(n) = input.shard_count
            && n < 1
        {
            v.push(
                n.to_string(),
                "shardCount",
                "Member must have value greater than or equal to 1",
            );
        }
        v.into_result()?;
        let cfg = &self.inner.config;
        let shard_count = match (input.on_demand, input.shard_count) {
            (_, Some(n)) => n,
            (true, None) => ON_DEMAND_INITIAL_SHARDS,
            (false, None) => {
                return Err(ServiceError::InvalidArgument(
                    "ShardCount is required for streams in PROVISIONED mode.".into(),
                ));
            }
        };
        let retention_hours = input.retention_hours.unwrap_or(MIN_RETENTION_HOURS);
        check_retention(retention_hours)?;
        if let Some(kib) = input.max_record_size_kib {
            check_max_record_size(kib)?;
        }
        if shard_count > cfg.max_shards_per_stream {
            return Err(ServiceError::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {}. Current limit: {}. Number of additional shards that would have resulted from this request: {shard_count}.",
                cfg.account, cfg.max_shards_per_stream
            )));
        }
        self.check_shard_limit(shard_count)?;
        self.check_transitioning_limit()?;
        let cmd = CatalogCommand::CreateStream {
            name: input.stream_name.clone(),
            mode: if input.on_demand {
                StreamMode::OnDemand
            } else {
                StreamMode::Provisioned
            },
            shard_count,
            retention_hours,
            tags: input.tags,
            placement: self.place(shard_count),
            now_ms: clock::now_ms(),
            max_record_size_kib: input.max_record_size_kib,
        };
        match self.propose(cmd).await? {
            CatalogReply::Done => {}
            CatalogReply::AlreadyExists => {
                return Err(ServiceError::ResourceInUse(format!(
                    "Stream {} under account {} already exists.",
                    input.stream_name, cfg.account
                )));
            }
            CatalogReply::NotFound
            | CatalogReply::Conflict(_)
            | CatalogReply::Lease(_)
            | CatalogReply::Held(_) => {
                return Err(ServiceError::internal("catalog lost the new stream"));
            }
        }
        self.spawn_transition(input.stream_name.clone());
        let record = self.stream_record(&input.stream_name)?;
        Ok(self.describe_record(&record))
    }

    /// AWS lets at most a few streams be CREATING or DELETING at once; a request that would
    /// start one more fails. Checked against the applied catalog, so requests racing through
    /// different nodes can overshoot by the number in flight.
    fn check_transitioning_limit(&self) -> Result<(), ServiceError> {
        let cfg = &self.inner.config;
        let transitioning = self.inner.view.read(|c| {
            c.streams
                .values()
                .filter(|s| matches!(s.status, StreamStatus::Creating | StreamStatus::Deleting))
                .count()
        });
        if transitioning >= cfg.max_transitioning_streams as usize {
            // AWS's wording, "have exceed" included.
            return Err(ServiceError::LimitExceeded(format!(
                "This request would have exceed the limit on the number of streams that can simultaneously be in CREATING or DELETING for the account {}. Limit: {}.",
                cfg.account, cfg.max_transitioning_streams
            )));
        }
        Ok(())
    }

    /// Completes CREATING → ACTIVE or DELETING → gone after the configured delay.
    pub(super) fn spawn_transition(&self, name: String) {
        let svc = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(svc.inner.config.transition_delay).await;
            if let Err(e) = svc.complete_transition(&name).await {
                tracing::error!(stream = %name, error = %e, "stream transition failed");
            }
        });
    }

    /// Starts and stops this node's shard replicas to match the applied catalog; returns the
    /// catalog it matched.
    pub(super) async fn reconcile_replicas(&self) -> Result<Catalog, ServiceError> {
        let catalog = self.inner.view.read(|c| c.clone());
        self.inner
            .router
            .host()
            .reconcile(&catalog)
            .await
            .map_err(ServiceError::internal)?;
        Ok(catalog)
    }

    /// Brings the shard replicas in line with the catalog and finishes a pending transition.
    pub async fn complete_transition(&self, name: &str) -> Result<(), ServiceError> {
        let catalog = self.reconcile_replicas().await?;
        let Some(stream) = catalog.stream(name) else {
            return Ok(());
        };
        if stream.status != StreamStatus::Deleting
            && (stream.reshard.is_some() || stream.target_shard_count.is_some())
        {
            // Sealing may wait for leaders (e.g. while a cluster starts): never block the caller.
            self.spawn_reshard(name.to_owned());
            return Ok(());
        }
        let status = stream.status;
        let cmd = match status {
            StreamStatus::Creating | StreamStatus::Updating => CatalogCommand::SetStatus {
                name: name.into(),
                status: StreamStatus::Active,
                now_ms: clock::now_ms(),
            },
            StreamStatus::Deleting => CatalogCommand::RemoveStream { name: name.into() },
            StreamStatus::Active => return Ok(()),
        };
        self.propose(cmd).await?;
        Ok(())
    }

    /// Finishes transitions interrupted by a restart.
    pub async fn resume_transitions(&self) -> Result<(), ServiceError> {
        let pending: Vec<String> = self.inner.view.read(|c| {
            c.streams
                .values()
                .filter(|s| s.status != StreamStatus::Active)
                .map(|s| s.name.clone())
                .collect()
        });
        self.reconcile_replicas().await?;
        for name in pending {
            self.complete_transition(&name).await?;
        }
        self.resume_consumer_transitions().await
    }

    pub fn describe_stream(&self, name: &str) -> Result<StreamDescription, ServiceError> {
        let mut v = Violations::default();
        v.stream_name(name, "streamName");
        v.into_result()?;
        let record = self.stream_record(name)?;
        Ok(self.describe_record(&record))
    }

    pub fn list_streams(
        &self,
        exclusive_start: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ListStreamsOutput, ServiceError> {
        let mut v = Violations::default();
        if let Some(l) = limit
            && !(1..=10_000).contains(&l)
        {
            let c = if l < 1 {
                "greater than or equal to 1"
            } else {
                "less than or equal to 10000"
            };
            v.push(l.to_string(), "limit", format!("Member must have value {c}"));
        }
        if let Some(s) = exclusive_start {
            v.stream_name(s, "exclusiveStartStreamName");
        }
        v.into_result()?;
        let limit = limit.unwrap_or(100) as usize;
        let (names, has_more) = self
            .inner
            .view
            .read(|c| page_after(c.streams.keys(), exclusive_start, limit));
        Ok(ListStreamsOutput { names, has_more })
    }

    /// DeleteStream; a stream with registered consumers is deleted only with
    /// `enforce_consumer_deletion` (its consumers go with it).
    pub async fn delete_stream(
        &self,
        name: &str,
        enforce_consumer_deletion: bool,
    ) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        v.stream_name(name, "streamName");
        v.into_result()?;
        let record = self.stream_record(name)?;
        if record.status == StreamStatus::Deleting {
            return Ok(());
        }
        self.check_consumers_before_delete(name, enforce_consumer_deletion)?;
        self.check_transitioning_limit()?;
        let reply = self
            .propose(CatalogCommand::SetStatus {
                name: name.into(),
                status: StreamStatus::Deleting,
                now_ms: clock::now_ms(),
            })
            .await?;
        if reply == CatalogReply::NotFound {
            return Err(self.not_found(name));
        }
        self.spawn_transition(name.to_owned());
        Ok(())
    }

    pub async fn update_retention(&self, name: &str, hours: u32) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        v.stream_name(name, "streamName");
        v.into_result()?;
        check_retention(hours)?;
        self.require_active(&self.stream_record(name)?)?;
        match self
            .propose(CatalogCommand::SetRetention {
                name: name.into(),
                hours,
            })
            .await?
        {
            CatalogReply::NotFound => Err(self.not_found(name)),
            _ => Ok(()),
        }
    }

    /// The record of a stream that a control-plane change needs ACTIVE (ResourceInUseException
    /// otherwise, in AWS's words).
    pub(super) fn stream_to_change(&self, name: &str) -> Result<StreamRecord, ServiceError> {
        let record = self.stream_record(name)?;
        if record.status != StreamStatus::Active {
            return Err(ServiceError::ResourceInUse(format!(
                "Stream {name} under account {} not ACTIVE, instead in state {}",
                self.config().account,
                record.status.aws_name()
            )));
        }
        Ok(record)
    }

    /// Resolves a stream name to its ACTIVE record (data-plane operations).
    pub(super) fn active_stream(&self, name: &str) -> Result<StreamRecord, ServiceError> {
        let record = self.stream_record(name)?;
        match record.status {
            StreamStatus::Active | StreamStatus::Updating => Ok(record),
            _ => Err(self.not_found(name)),
        }
    }
}

/// MaxRecordSizeInKiB's range (the Kinesis API checks it against its model first).
fn check_max_record_size(kib: u32) -> Result<(), ServiceError> {
    if !(DEFAULT_MAX_RECORD_SIZE_KIB..=MAX_MAX_RECORD_SIZE_KIB).contains(&kib) {
        return Err(ServiceError::InvalidArgument(format!(
            "MaxRecordSizeInKiB must be between {DEFAULT_MAX_RECORD_SIZE_KIB} and {MAX_MAX_RECORD_SIZE_KIB}; {kib} was requested."
        )));
    }
    Ok(())
}

impl StreamService {
    /// UpdateMaxRecordSize: the largest record the stream accepts from now on.
    pub async fn update_max_record_size(&self, name: &str, kib: u32) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        v.stream_name(name, "streamName");
        v.into_result()?;
        check_max_record_size(kib)?;
        self.require_active(&self.stream_record(name)?)?;
        match self
            .propose(CatalogCommand::SetMaxRecordSize {
                name: name.into(),
                kib,
            })
            .await?
        {
            CatalogReply::NotFound => Err(self.not_found(name)),
            _ => Ok(()),
        }
    }
}

fn check_retention(hours: u32) -> Result<(), ServiceError> {
    if hours < MIN_RETENTION_HOURS {
        return Err(ServiceError::InvalidArgument(format!(
            "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too short."
        )));
    }
    if hours > MAX_RETENTION_HOURS {
        return Err(ServiceError::InvalidArgument(format!(
            "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is too long."
        )));
    }
    Ok(())
}

impl StreamService {
    /// Replica sets for `count` new shards across the cluster's nodes.
    pub(super) fn place(&self, count: u32) -> Vec<Vec<u64>> {
        let host = self.inner.router.host();
        let draining = self.inner.view.read(|c| c.draining.clone());
        let nodes: Vec<u64> = host
            .nodes()
            .into_keys()
            .filter(|n| !draining.contains(n))
            .collect();
        let nodes = if nodes.is_empty() {
            vec![host.node_id()]
        } else {
            nodes
        };
        let load = self.inner.view.read(|c| {
            placement::load_of(
                c.streams
                    .values()
                    .flat_map(|s| s.shards.iter().map(|sh| sh.replicas.as_slice())),
            )
        });
        placement::place(
            &nodes,
            &load,
            self.inner.config.replication_factor,
            count as usize,
        )
    }
}
