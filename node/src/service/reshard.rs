//! SplitShard, MergeShards and UpdateShardCount, and the driver that carries a reshard round
//! out: children's groups first, then every parent sealed by its own Raft group, then one
//! catalog change that closes the parents at their seals and opens the children.
//!
//! A write that reaches a sealed parent is refused by the parent's state machine on every
//! replica (nothing appended), and the service routes it again once the catalog shows the
//! children, so a record lands in the parent before its end or in a child, never in both.

use std::time::Duration;

use futures::future::join_all;

use super::ServiceError;
use super::StreamService;
use super::validate::Violations;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::ReshardStep;
use crate::catalog::SCALING_WINDOW_MS;
use crate::catalog::ShardRecord;
use crate::catalog::StreamMode;
use crate::catalog::StreamRecord;
use crate::catalog::StreamStatus;
use crate::catalog::reshard;
use crate::clock;
use crate::model::ShardId;
use crate::model::hash_key;

/// Rounds one UpdateShardCount may take before the driver gives up (a few suffice).
const MAX_ROUNDS: usize = 64;
/// Attempts at sealing a round's parents before the driver leaves the round to a restart.
const SEAL_ATTEMPTS: u32 = 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateShardCountOutput {
    pub current_shard_count: u32,
    pub target_shard_count: u32,
}

impl StreamService {
    fn shard_not_found(&self, stream: &str, shard_id: &str) -> ServiceError {
        ServiceError::ResourceNotFound(format!(
            "Could not find shard {shard_id} in stream {stream} under account {}.",
            self.config().account
        ))
    }

    /// The open shard a split or merge names, with AWS's errors for the others.
    fn open_shard_of(&self, stream: &StreamRecord, shard_id: &str) -> Result<ShardRecord, ServiceError> {
        let shard = ShardId::parse(shard_id)
            .and_then(|id| stream.shard(id.0))
            .filter(|s| !s.pending)
            .ok_or_else(|| self.shard_not_found(&stream.name, shard_id))?;
        if !shard.is_open() {
            return Err(ServiceError::ResourceInUse(format!(
                "Shard {} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                ShardId(shard.index),
                stream.name,
                self.config().account
            )));
        }
        Ok(shard.clone())
    }

    /// A stream change needs the stream ACTIVE (ResourceInUseException otherwise).
    pub(super) fn require_active(&self, stream: &StreamRecord) -> Result<(), ServiceError> {
        if stream.status != StreamStatus::Active {
            return Err(ServiceError::ResourceInUse(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                stream.name,
                self.config().account,
                stream.status.aws_name()
            )));
        }
        Ok(())
    }

    /// The account-wide open-shard limit for `additional` more shards.
    pub(super) fn check_shard_limit(&self, additional: u32) -> Result<(), ServiceError> {
        let cfg = self.config();
        let used: u32 = self
            .inner
            .view
            .read(|c| c.streams.values().map(|s| s.open_shards().count() as u32).sum());
        if used.saturating_add(additional) > cfg.max_shards_total {
            return Err(ServiceError::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {}. Current limit: {}. Current open shard count: {used}. Number of additional shards that would have resulted from this request: {additional}.",
                cfg.account, cfg.max_shards_total
            )));
        }
        Ok(())
    }

    /// SplitShard: the stream is UPDATING until the parent is sealed and its two children open.
    pub async fn split_shard(
        &self,
        stream_name: &str,
        shard_id: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        v.stream_name(stream_name, "streamName");
        v.min_len(shard_id, shard_id.len(), 1, "shardToSplit");
        v.max_len(shard_id, shard_id.len(), 128, "shardToSplit");
        if hash_key::parse_hash_key(new_starting_hash_key).is_none() {
            v.push(
                new_starting_hash_key,
                "newStartingHashKey",
                "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
            );
        }
        v.into_result()?;
        let stream = self.stream_record(stream_name)?;
        let shard = self.open_shard_of(&stream, shard_id)?;
        self.check_shard_limit(1)?;
        let at = hash_key::parse_hash_key(new_starting_hash_key).unwrap_or_default();
        if at <= shard.range.start.saturating_add(1) || at >= shard.range.end {
            return Err(ServiceError::InvalidArgument(format!(
                "NewStartingHashKey {new_starting_hash_key} used in SplitShard() on shard {} in stream {stream_name} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                ShardId(shard.index),
                self.config().account,
                shard.range.start,
                shard.range.end
            )));
        }
        self.require_active(&stream)?;
        let steps = vec![ReshardStep::Split {
            parent: shard.index,
            at,
        }];
        self.start_round(stream_name, steps, None, false).await
    }

    /// MergeShards: the two shards must be open and adjacent.
    pub async fn merge_shards(
        &self,
        stream_name: &str,
        shard_id: &str,
        adjacent_shard_id: &str,
    ) -> Result<(), ServiceError> {
        let mut v = Violations::default();
        v.stream_name(stream_name, "streamName");
        for (value, path) in [
            (shard_id, "shardToMerge"),
            (adjacent_shard_id, "adjacentShardToMerge"),
        ] {
            v.min_len(value, value.len(), 1, path);
            v.max_len(value, value.len(), 128, path);
        }
        v.into_result()?;
        let stream = self.stream_record(stream_name)?;
        let a = self.open_shard_of(&stream, shard_id)?;
        let b = self.open_shard_of(&stream, adjacent_shard_id)?;
        if a.index == b.index || !reshard::adjacent(a.range, b.range) {
            return Err(ServiceError::InvalidArgument(format!(
                "Shards {} and {} in stream {stream_name} under account {} are not an adjacent pair of shards eligible for merging",
                ShardId(a.index),
                ShardId(b.index),
                self.config().account
            )));
        }
        self.require_active(&stream)?;
        let steps = vec![ReshardStep::Merge {
            parent: a.index,
            adjacent: b.index,
        }];
        self.start_round(stream_name, steps, None, false).await
    }

    /// UpdateShardCount with UNIFORM_SCALING: rounds of splits and merges (short-lived shards,
    /// as on AWS) until the open shards divide the key space evenly into `target`.
    pub async fn update_shard_count(
        &self,
        stream_name: &str,
        target: u32,
    ) -> Result<UpdateShardCountOutput, ServiceError> {
        let mut v = Violations::default();
        v.stream_name(stream_name, "streamName");
        if target < 1 {
            v.push(
                target.to_string(),
                "targetShardCount",
                "Member must have value greater than or equal to 1",
            );
        }
        v.into_result()?;
        let stream = self.stream_record(stream_name)?;
        let cfg = self.config();
        if stream.mode == StreamMode::OnDemand {
            return Err(ServiceError::InvalidArgument(format!(
                "UpdateShardCount is not supported for stream {stream_name} under account {} in ON_DEMAND mode.",
                cfg.account
            )));
        }
        self.require_active(&stream)?;
        let current = stream.open_shards().count() as u32;
        if target > current.saturating_mul(2) {
            return Err(ServiceError::InvalidArgument(format!(
                "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: {current} Target shard count: {target}"
            )));
        }
        if target < current.div_ceil(2) {
            return Err(ServiceError::InvalidArgument(format!(
                "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: {current} Target shard count: {target}"
            )));
        }
        if target > cfg.max_shards_per_stream {
            return Err(ServiceError::LimitExceeded(format!(
                "UpdateShardCount cannot scale up to more than {} shards in a stream. Target shard count: {target}",
                cfg.max_shards_per_stream
            )));
        }
        self.check_shard_limit(target.saturating_sub(current))?;
        let now = clock::now_ms();
        let recent = stream
            .scaling_ms
            .iter()
            .filter(|&&t| t > now - SCALING_WINDOW_MS)
            .count() as u32;
        if recent >= cfg.max_scalings_per_day {
            return Err(ServiceError::LimitExceeded(format!(
                "Exceeded the maximum of {} UpdateShardCount calls per rolling 24 hours for stream {stream_name} under account {}.",
                cfg.max_scalings_per_day, cfg.account
            )));
        }
        let steps = reshard::next_round(&stream.open_ranges(), target);
        if !steps.is_empty() {
            self.start_round(stream_name, steps, Some(target), true).await?;
        }
        Ok(UpdateShardCountOutput {
            current_shard_count: current,
            target_shard_count: target,
        })
    }

    /// Proposes a round and hands it to the driver.
    async fn start_round(
        &self,
        stream_name: &str,
        steps: Vec<ReshardStep>,
        target: Option<u32>,
        scaling: bool,
    ) -> Result<(), ServiceError> {
        let children = self.inner.view.read(|c| {
            c.stream(stream_name)
                .map(|s| reshard::children(&s.open_ranges(), &steps))
        });
        let children = match children {
            None => return Err(self.not_found(stream_name)),
            Some(Err(e)) => return Err(ServiceError::InvalidArgument(e.to_string())),
            Some(Ok(k)) => k.len() as u32,
        };
        let cmd = CatalogCommand::StartReshard {
            name: stream_name.into(),
            steps,
            placement: self.place(children),
            target,
            scaling,
            now_ms: clock::now_ms(),
        };
        match self.propose(cmd).await? {
            CatalogReply::Done => {}
            CatalogReply::NotFound => return Err(self.not_found(stream_name)),
            // Raced with another change of the stream: report it as AWS reports a busy stream.
            CatalogReply::Conflict(_)
            | CatalogReply::AlreadyExists
            | CatalogReply::Lease(_)
            | CatalogReply::Held(_) => {
                let status = self.stream_record(stream_name)?.status;
                return Err(ServiceError::ResourceInUse(format!(
                    "Stream {stream_name} under account {} not ACTIVE, instead in state {}",
                    self.config().account,
                    status.aws_name()
                )));
            }
        }
        self.spawn_reshard(stream_name.to_owned());
        Ok(())
    }

    pub(super) fn spawn_reshard(&self, name: String) {
        let svc = self.clone();
        tokio::spawn(async move {
            if let Err(e) = svc.drive_reshard(&name).await {
                tracing::error!(stream = %name, error = %e, "reshard stopped; it resumes when a node restarts");
            }
        });
    }

    /// Forgets closed shards whose records are all past retention at `now_ms` (as AWS stops
    /// listing them) and stops their replicas here, which removes their data. Returns how many
    /// shards went. Every node may run it: a second proposal finds nothing left to expire.
    pub async fn expire_closed_shards(&self, now_ms: i64) -> Result<usize, ServiceError> {
        let due: Vec<(String, usize)> = self.inner.view.read(|c| {
            c.streams
                .values()
                .map(|s| (s.name.clone(), s.expired_shards(now_ms).len()))
                .filter(|(_, n)| *n > 0)
                .collect()
        });
        let mut expired = 0;
        for (name, n) in due {
            if self
                .propose(CatalogCommand::ExpireShards {
                    name: name.clone(),
                    now_ms,
                })
                .await?
                == CatalogReply::Done
            {
                tracing::info!(stream = %name, shards = n, "closed shards expired");
                expired += n;
            }
        }
        if expired > 0 {
            self.reconcile_replicas().await?;
        }
        Ok(expired)
    }

    /// Runs [`StreamService::expire_closed_shards`] every minute until the node stops.
    pub async fn expire_closed_shards_loop(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            if let Err(e) = self.expire_closed_shards(clock::now_ms()).await {
                tracing::warn!(error = %e, "expiring closed shards failed");
            }
        }
    }

    /// Back to ACTIVE once no reshard round is left.
    async fn activate(&self, name: &str) -> Result<(), ServiceError> {
        self.propose(CatalogCommand::SetStatus {
            name: name.into(),
            status: StreamStatus::Active,
            now_ms: clock::now_ms(),
        })
        .await?;
        Ok(())
    }

    /// Carries pending rounds (and UpdateShardCount's further rounds) to the end. Safe to run
    /// on several nodes at once: sealing is idempotent and the catalog refuses stale steps.
    pub(super) async fn drive_reshard(&self, name: &str) -> Result<(), ServiceError> {
        for _ in 0..MAX_ROUNDS {
            let Some(stream) = self.inner.view.read(|c| c.stream(name).cloned()) else {
                return Ok(());
            };
            if stream.status == StreamStatus::Deleting {
                return Ok(());
            }
            if let Some(pending) = &stream.reshard {
                // The children's groups must exist before they take writes.
                self.reconcile_replicas().await?;
                let parents: Vec<ShardRecord> = pending
                    .parents
                    .iter()
                    .filter_map(|p| stream.shard(*p).cloned())
                    .collect();
                let ends = self.seal_all(&parents).await?;
                let cmd = CatalogCommand::FinishReshard {
                    name: name.into(),
                    ends,
                    now_ms: clock::now_ms(),
                };
                match self.propose(cmd).await? {
                    CatalogReply::Done | CatalogReply::Conflict(_) => continue,
                    _ => return Ok(()),
                }
            }
            let Some(target) = stream.target_shard_count else {
                if stream.status == StreamStatus::Updating {
                    self.activate(name).await?;
                }
                return Ok(());
            };
            let steps = reshard::next_round(&stream.open_ranges(), target);
            if steps.is_empty() {
                return self.activate(name).await;
            }
            let kids = reshard::children(&stream.open_ranges(), &steps)
                .map(|k| k.len() as u32)
                .unwrap_or(0);
            let cmd = CatalogCommand::StartReshard {
                name: name.into(),
                steps,
                placement: self.place(kids),
                target: Some(target),
                scaling: false,
                now_ms: clock::now_ms(),
            };
            self.propose(cmd).await?;
        }
        Err(ServiceError::internal(format!(
            "stream {name} did not reach its shard count in {MAX_ROUNDS} rounds"
        )))
    }

    /// Seals every parent at its group's leader; returns `(shard, seal index)`.
    async fn seal_all(&self, parents: &[ShardRecord]) -> Result<Vec<(u32, u64)>, ServiceError> {
        let router = &self.inner.router;
        let mut last = None;
        for attempt in 0..SEAL_ATTEMPTS {
            let sealed = join_all(parents.iter().map(|p| router.seal(p, 0))).await;
            match sealed.into_iter().collect::<Result<Vec<u64>, _>>() {
                Ok(at) => return Ok(parents.iter().map(|p| p.index).zip(at).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "sealing a parent shard failed; retrying");
                    last = Some(e);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(ServiceError::internal(format!(
            "cannot seal parent shards: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// Waits until this node's catalog shows none of `shards` open any more (their round
    /// finished), and returns the stream as it is then.
    pub(super) async fn await_closed(
        &self,
        name: &str,
        shards: &[u32],
    ) -> Result<StreamRecord, ServiceError> {
        let mut changes = self.inner.view.changes();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let stream = self.active_stream(name)?;
            if shards
                .iter()
                .all(|i| stream.shard(*i).is_none_or(|s| s.ending_log_index.is_some()))
            {
                return Ok(stream);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ServiceError::internal("the catalog stopped")),
                Err(_) => {
                    return Err(ServiceError::internal(format!(
                        "shards of {name} stayed sealed without their children opening"
                    )));
                }
            }
        }
    }
}
