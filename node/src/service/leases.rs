//! Shard leases and checkpoints of consuming applications (native API only: AWS keeps these in
//! DynamoDB, Runnel in its own catalog). The client library's consumer balances an
//! application's shards across its workers with these calls; see `catalog::leases`.

use super::ServiceError;
use super::StreamService;
use super::validate::Violations;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::Checkpoint;
use crate::catalog::Lease;
use crate::catalog::LeaseCommand;
use crate::catalog::StreamRecord;
use crate::catalog::leases::MAX_NAME_LEN;
use crate::model::SequenceNumber;
use crate::model::ShardId;

/// One shard's lease as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseDescription {
    pub shard_id: ShardId,
    pub lease: Lease,
}

impl StreamService {
    /// Every lease of `application` on the stream, by shard.
    pub fn list_leases(
        &self,
        stream: &str,
        application: &str,
    ) -> Result<Vec<LeaseDescription>, ServiceError> {
        check_names(stream, application, None)?;
        let record = self.stream_record(stream)?;
        Ok(record
            .applications
            .get(application)
            .into_iter()
            .flatten()
            .map(|(shard, lease)| LeaseDescription {
                shard_id: ShardId(*shard),
                lease: lease.clone(),
            })
            .collect())
    }

    /// Takes a shard's lease if its counter is still `expected` (`None`: nobody has leased the
    /// shard yet).
    pub async fn take_lease(
        &self,
        stream: &str,
        application: &str,
        shard_id: &str,
        owner: &str,
        expected: Option<u64>,
        steal_from: Option<&str>,
    ) -> Result<LeaseDescription, ServiceError> {
        check_names(stream, application, Some(owner))?;
        let record = self.stream_record(stream)?;
        let shard = self.leased_shard(&record, shard_id)?;
        let reply = self
            .change_lease(
                stream,
                application,
                LeaseCommand::Take {
                    shard,
                    owner: owner.to_owned(),
                    expected,
                    steal_from: steal_from.map(str::to_owned),
                },
            )
            .await?;
        match reply {
            CatalogReply::Lease(lease) => Ok(LeaseDescription {
                shard_id: ShardId(shard),
                lease,
            }),
            other => Err(self.lease_refused(stream, shard_id, other)),
        }
    }

    /// Renews the leases `owner` still holds among `shard_ids`; answers those.
    pub async fn renew_leases(
        &self,
        stream: &str,
        application: &str,
        owner: &str,
        shard_ids: &[String],
    ) -> Result<Vec<ShardId>, ServiceError> {
        check_names(stream, application, Some(owner))?;
        let shards: Vec<u32> = shard_ids
            .iter()
            .filter_map(|s| ShardId::parse(s).map(|id| id.0))
            .collect();
        let reply = self
            .change_lease(
                stream,
                application,
                LeaseCommand::Renew {
                    owner: owner.to_owned(),
                    shards,
                },
            )
            .await?;
        match reply {
            CatalogReply::Held(held) => Ok(held.into_iter().map(ShardId).collect()),
            other => Err(self.lease_refused(stream, "", other)),
        }
    }

    /// Records how far `owner` has processed a shard it leases: a sequence number of the shard,
    /// or its end (`None`, allowed only for a closed shard).
    pub async fn checkpoint(
        &self,
        stream: &str,
        application: &str,
        shard_id: &str,
        owner: &str,
        sequence_number: Option<&str>,
    ) -> Result<(), ServiceError> {
        check_names(stream, application, Some(owner))?;
        let record = self.stream_record(stream)?;
        let shard = self.leased_shard(&record, shard_id)?;
        let Some(sh) = record.shard(shard) else {
            return Err(self.shard_missing(stream, shard_id));
        };
        let checkpoint = match sequence_number {
            Some(seq) => {
                SequenceNumber::parse_for_shard(seq, sh.index, sh.created_secs()).map_err(|_| {
                    ServiceError::InvalidArgument(format!(
                        "Invalid SequenceNumber {seq} for shard {shard_id}"
                    ))
                })?;
                Checkpoint::Sequence(seq.to_owned())
            }
            None if sh.ending_log_index.is_some() => Checkpoint::ShardEnd,
            None => {
                return Err(ServiceError::InvalidArgument(format!(
                    "Shard {shard_id} is open: only a closed shard can be checkpointed at its end"
                )));
            }
        };
        let reply = self
            .change_lease(
                stream,
                application,
                LeaseCommand::Checkpoint {
                    shard,
                    owner: owner.to_owned(),
                    checkpoint,
                },
            )
            .await?;
        match reply {
            CatalogReply::Done => Ok(()),
            other => Err(self.lease_refused(stream, shard_id, other)),
        }
    }

    /// Gives a lease up so another worker can take it at once.
    pub async fn release_lease(
        &self,
        stream: &str,
        application: &str,
        shard_id: &str,
        owner: &str,
    ) -> Result<(), ServiceError> {
        check_names(stream, application, Some(owner))?;
        let record = self.stream_record(stream)?;
        let shard = self.leased_shard(&record, shard_id)?;
        let command = LeaseCommand::Release {
            shard,
            owner: owner.to_owned(),
        };
        match self.change_lease(stream, application, command).await? {
            CatalogReply::Done => Ok(()),
            other => Err(self.lease_refused(stream, shard_id, other)),
        }
    }

    /// Forgets an application's leases and checkpoints on the stream.
    pub async fn delete_application(&self, stream: &str, application: &str) -> Result<(), ServiceError> {
        check_names(stream, application, None)?;
        self.stream_record(stream)?;
        match self
            .change_lease(stream, application, LeaseCommand::Delete)
            .await?
        {
            CatalogReply::Done => Ok(()),
            _ => Err(ServiceError::ResourceNotFound(format!(
                "Application {application} has no leases on stream {stream}"
            ))),
        }
    }

    async fn change_lease(
        &self,
        stream: &str,
        application: &str,
        command: LeaseCommand,
    ) -> Result<CatalogReply, ServiceError> {
        self.propose(CatalogCommand::Lease {
            stream: stream.to_owned(),
            application: application.to_owned(),
            command,
        })
        .await
    }

    /// The index of a listed shard of the stream.
    fn leased_shard(&self, record: &StreamRecord, shard_id: &str) -> Result<u32, ServiceError> {
        ShardId::parse(shard_id)
            .filter(|id| record.listed_shards().any(|sh| sh.index == id.0))
            .map(|id| id.0)
            .ok_or_else(|| self.shard_missing(&record.name, shard_id))
    }

    fn shard_missing(&self, stream: &str, shard_id: &str) -> ServiceError {
        ServiceError::ResourceNotFound(format!(
            "Shard {shard_id} in stream {stream} under account {} does not exist",
            self.config().account
        ))
    }

    fn lease_refused(&self, stream: &str, shard_id: &str, reply: CatalogReply) -> ServiceError {
        match reply {
            CatalogReply::NotFound => self.shard_missing(stream, shard_id),
            CatalogReply::Conflict(why) => {
                ServiceError::ConditionFailed(format!("Lease of shard {shard_id} not changed: {why}"))
            }
            other => ServiceError::internal(format!("unexpected catalog reply {other:?}")),
        }
    }
}

/// Stream name, application name and (when given) owner: 1 to 256 characters (the stream name
/// as AWS checks it).
fn check_names(stream: &str, application: &str, owner: Option<&str>) -> Result<(), ServiceError> {
    let mut v = Violations::default();
    v.stream_name(stream, "streamName");
    let mut name = |value: &str, path: &str| {
        v.min_len(value, value.chars().count(), 1, path);
        v.max_len(value, value.chars().count(), MAX_NAME_LEN, path);
    };
    name(application, "applicationName");
    if let Some(owner) = owner {
        name(owner, "owner");
    }
    v.into_result()
}
