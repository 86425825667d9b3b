//! Typed calls of the `Leases` service: shard leases and checkpoints kept in the cluster.

use runnel_proto::v1 as proto;

use crate::Client;
use crate::Error;
use crate::error::Subject;

/// How far an application has processed a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every record up to and including this sequence number is processed.
    Sequence(String),
    /// The shard is closed and processed to its end.
    ShardEnd,
}

/// One shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shard_id: String,
    /// `None` when released.
    pub owner: Option<String>,
    /// Moves with every take, renewal and release.
    pub counter: u64,
    pub checkpoint: Option<Checkpoint>,
}

impl Lease {
    fn from_proto(l: proto::ShardLease) -> Lease {
        let checkpoint = if l.shard_end {
            Some(Checkpoint::ShardEnd)
        } else if l.checkpoint.is_empty() {
            None
        } else {
            Some(Checkpoint::Sequence(l.checkpoint))
        };
        Lease {
            shard_id: l.shard_id,
            owner: Some(l.owner).filter(|o| !o.is_empty()),
            counter: l.counter,
            checkpoint,
        }
    }

    pub fn is_ended(&self) -> bool {
        self.checkpoint == Some(Checkpoint::ShardEnd)
    }
}

impl Client {
    /// The leases of `application` on `stream`.
    pub async fn list_leases(&self, stream: &str, application: &str) -> Result<Vec<Lease>, Error> {
        let request = proto::ListLeasesRequest {
            stream_name: stream.to_string(),
            application_name: application.to_string(),
        };
        let response = self
            .leases
            .clone()
            .list_leases(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?;
        Ok(response
            .into_inner()
            .leases
            .into_iter()
            .map(Lease::from_proto)
            .collect())
    }

    /// Takes a shard's lease for `owner` if its counter is still `expected` (`None`: nobody
    /// has leased it yet) or, with `steal_from`, if that worker still holds it (its renewals
    /// move the counter, so a steal names the owner instead); [`Error::LeaseConflict`]
    /// otherwise.
    pub async fn take_lease(
        &self,
        stream: &str,
        application: &str,
        shard: &str,
        owner: &str,
        expected: Option<u64>,
        steal_from: Option<&str>,
    ) -> Result<Lease, Error> {
        let request = proto::TakeLeaseRequest {
            stream_name: stream.to_string(),
            application_name: application.to_string(),
            shard_id: shard.to_string(),
            owner: owner.to_string(),
            expected_counter: expected,
            steal_from: steal_from.map(str::to_string),
        };
        let response = self
            .leases
            .clone()
            .take_lease(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(stream, shard)))?;
        Ok(Lease::from_proto(response.into_inner()))
    }

    /// Renews the leases `owner` holds among `shards`; answers the ones still held.
    pub async fn renew_leases(
        &self,
        stream: &str,
        application: &str,
        owner: &str,
        shards: Vec<String>,
    ) -> Result<Vec<String>, Error> {
        let request = proto::RenewLeasesRequest {
            stream_name: stream.to_string(),
            application_name: application.to_string(),
            owner: owner.to_string(),
            shard_ids: shards,
        };
        let response = self
            .leases
            .clone()
            .renew_leases(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?;
        Ok(response.into_inner().held_shard_ids)
    }

    /// Records a checkpoint of a shard `owner` leases.
    pub async fn checkpoint(
        &self,
        stream: &str,
        application: &str,
        shard: &str,
        owner: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), Error> {
        let (sequence_number, shard_end) = match checkpoint {
            Checkpoint::Sequence(seq) => (seq.clone(), false),
            Checkpoint::ShardEnd => (String::new(), true),
        };
        let request = proto::CheckpointRequest {
            stream_name: stream.to_string(),
            application_name: application.to_string(),
            shard_id: shard.to_string(),
            owner: owner.to_string(),
            sequence_number,
            shard_end,
        };
        self.leases
            .clone()
            .checkpoint(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(stream, shard)))?;
        Ok(())
    }

    /// Gives a lease up so another worker takes it at once.
    pub async fn release_lease(
        &self,
        stream: &str,
        application: &str,
        shard: &str,
        owner: &str,
    ) -> Result<(), Error> {
        let request = proto::ReleaseLeaseRequest {
            stream_name: stream.to_string(),
            application_name: application.to_string(),
            shard_id: shard.to_string(),
            owner: owner.to_string(),
        };
        self.leases
            .clone()
            .release_lease(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Shard(stream, shard)))?;
        Ok(())
    }

    /// Forgets every lease and checkpoint of `application` on `stream`.
    pub async fn delete_application(&self, stream: &str, application: &str) -> Result<(), Error> {
        let request = proto::DeleteApplicationRequest {
            stream_name: stream.to_string(),
            application_name: application.to_string(),
        };
        self.leases
            .clone()
            .delete_application(request)
            .await
            .map_err(|s| Error::from_status(s, Subject::Stream(stream)))?;
        Ok(())
    }
}
