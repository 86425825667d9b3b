//! Shard leases and checkpoints of consuming applications (what the Kinesis Client Library keeps
//! in a DynamoDB table, kept here in the replicated catalog). Every change is a compare-and-set
//! on a lease's `counter`, so workers of one application coordinate through the catalog alone:
//! a take names the counter it saw; a renewal, checkpoint or release names the owner.
//! Expiry is decided by the workers (a lease whose counter has not moved for their failover
//! time), never by a clock inside `apply`.

use std::collections::BTreeMap;

use super::Catalog;
use super::CatalogReply;

/// Longest application name and owner (worker) id.
pub const MAX_NAME_LEN: usize = 256;

/// How far an application has processed one shard.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Checkpoint {
    /// Every record up to and including this sequence number is processed.
    Sequence(String),
    /// The shard is closed and every record of it is processed: its children may start.
    ShardEnd,
}

/// One shard's lease of one application.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The worker holding the lease; `None` once released.
    pub owner: Option<String>,
    /// Bumped by every take, renewal and release: a lease whose counter stands still has a
    /// dead owner.
    pub counter: u64,
    pub checkpoint: Option<Checkpoint>,
}

/// An application's leases by shard index.
pub type Leases = BTreeMap<u32, Lease>;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LeaseCommand {
    /// Takes the lease of `shard` for `owner` if its counter is still `expected` (`None`: the
    /// lease must not exist yet) or, with `steal_from`, if that worker still holds it.
    /// Answers `Lease` with the new state, or `Conflict`.
    Take {
        shard: u32,
        owner: String,
        expected: Option<u64>,
        #[serde(default)]
        steal_from: Option<String>,
    },
    /// Bumps the counter of each of `shards` that `owner` still holds; answers `Held` with
    /// those shards.
    Renew { owner: String, shards: Vec<u32> },
    /// Records a checkpoint, only for the lease's owner.
    Checkpoint {
        shard: u32,
        owner: String,
        checkpoint: Checkpoint,
    },
    /// Gives the lease up (the owner is shutting down): others take it without waiting.
    Release { shard: u32, owner: String },
    /// Forgets the application's leases and checkpoints.
    Delete,
}

impl Catalog {
    pub(super) fn apply_lease(&mut self, stream: &str, application: &str, cmd: LeaseCommand) -> CatalogReply {
        let Some(s) = self.streams.get_mut(stream) else {
            return CatalogReply::NotFound;
        };
        if let LeaseCommand::Delete = cmd {
            return match s.applications.remove(application) {
                Some(_) => CatalogReply::Done,
                None => CatalogReply::NotFound,
            };
        }
        let listed: Vec<u32> = s.listed_shards().map(|sh| sh.index).collect();
        let leases = s.applications.entry(application.to_owned()).or_default();
        apply(leases, &listed, cmd)
    }
}

/// The pure change of one application's leases; `listed` are the shards that may be leased.
fn apply(leases: &mut Leases, listed: &[u32], cmd: LeaseCommand) -> CatalogReply {
    match cmd {
        LeaseCommand::Take {
            shard,
            owner,
            expected,
            steal_from,
        } => {
            if !listed.contains(&shard) {
                return CatalogReply::NotFound;
            }
            let current = leases.get(&shard).map(|l| l.counter);
            if let Some(victim) = steal_from {
                if leases.get(&shard).and_then(|l| l.owner.as_deref()) != Some(victim.as_str()) {
                    return CatalogReply::Conflict(format!("the lease is not held by {victim}"));
                }
            } else if current != expected {
                return CatalogReply::Conflict(match current {
                    Some(c) => format!("the lease is at counter {c}"),
                    None => "the lease does not exist".into(),
                });
            }
            let lease = leases.entry(shard).or_insert(Lease {
                owner: None,
                counter: 0,
                checkpoint: None,
            });
            lease.owner = Some(owner);
            lease.counter += 1;
            CatalogReply::Lease(lease.clone())
        }
        LeaseCommand::Renew { owner, shards } => {
            let mut held = Vec::new();
            for shard in shards {
                if let Some(lease) = leases.get_mut(&shard)
                    && lease.owner.as_deref() == Some(owner.as_str())
                {
                    lease.counter += 1;
                    held.push(shard);
                }
            }
            CatalogReply::Held(held)
        }
        LeaseCommand::Checkpoint {
            shard,
            owner,
            checkpoint,
        } => match leases.get_mut(&shard) {
            Some(lease) if lease.owner.as_deref() == Some(owner.as_str()) => {
                lease.checkpoint = Some(checkpoint);
                CatalogReply::Done
            }
            Some(_) => CatalogReply::Conflict("the lease is held by another worker".into()),
            None => CatalogReply::Conflict("the lease does not exist".into()),
        },
        LeaseCommand::Release { shard, owner } => match leases.get_mut(&shard) {
            Some(lease) if lease.owner.as_deref() == Some(owner.as_str()) => {
                lease.owner = None;
                lease.counter += 1;
                CatalogReply::Done
            }
            _ => CatalogReply::Conflict("the lease is not held by this worker".into()),
        },
        LeaseCommand::Delete => CatalogReply::Done,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn take(shard: u32, owner: &str, expected: Option<u64>) -> LeaseCommand {
        LeaseCommand::Take {
            shard,
            owner: owner.into(),
            expected,
            steal_from: None,
        }
    }

    #[test]
    fn takes_are_compare_and_set_on_the_counter() {
        let mut l = Leases::new();
        let listed = [0, 1];
        let CatalogReply::Lease(first) = apply(&mut l, &listed, take(0, "a", None)) else {
            panic!("first take refused")
        };
        assert_eq!((first.owner.as_deref(), first.counter), (Some("a"), 1));
        // A second creator and a taker with a stale counter both lose.
        assert!(matches!(
            apply(&mut l, &listed, take(0, "b", None)),
            CatalogReply::Conflict(_)
        ));
        assert!(matches!(
            apply(&mut l, &listed, take(0, "b", Some(0))),
            CatalogReply::Conflict(_)
        ));
        // Shards that are not listed cannot be leased.
        assert_eq!(apply(&mut l, &listed, take(7, "a", None)), CatalogReply::NotFound);
        // A renewal moves the counter, so a take based on the old one fails.
        let renew = LeaseCommand::Renew {
            owner: "a".into(),
            shards: vec![0, 1],
        };
        assert_eq!(apply(&mut l, &listed, renew), CatalogReply::Held(vec![0]));
        assert!(matches!(
            apply(&mut l, &listed, take(0, "b", Some(1))),
            CatalogReply::Conflict(_)
        ));
        let CatalogReply::Lease(stolen) = apply(&mut l, &listed, take(0, "b", Some(2))) else {
            panic!("take at the current counter refused")
        };
        assert_eq!((stolen.owner.as_deref(), stolen.counter), (Some("b"), 3));
        // The old owner's renewal and checkpoint now fail; the checkpoint is kept.
        let renew = LeaseCommand::Renew {
            owner: "a".into(),
            shards: vec![0],
        };
        assert_eq!(apply(&mut l, &listed, renew), CatalogReply::Held(vec![]));
        let cp = |owner: &str, seq: &str| LeaseCommand::Checkpoint {
            shard: 0,
            owner: owner.into(),
            checkpoint: Checkpoint::Sequence(seq.into()),
        };
        assert!(matches!(
            apply(&mut l, &listed, cp("a", "5")),
            CatalogReply::Conflict(_)
        ));
        assert_eq!(apply(&mut l, &listed, cp("b", "7")), CatalogReply::Done);
        assert_eq!(l[&0].checkpoint, Some(Checkpoint::Sequence("7".into())));
        // A steal names the holder instead of the counter (renewals keep moving it).
        let steal = |from: &str| LeaseCommand::Take {
            shard: 0,
            owner: "c".into(),
            expected: None,
            steal_from: Some(from.into()),
        };
        assert!(matches!(
            apply(&mut l, &listed, steal("a")),
            CatalogReply::Conflict(_)
        ));
        let CatalogReply::Lease(stolen) = apply(&mut l, &listed, steal("b")) else {
            panic!("steal from the holder refused")
        };
        assert_eq!(stolen.owner.as_deref(), Some("c"));
    }

    #[test]
    fn release_frees_the_lease_and_keeps_the_checkpoint() {
        let mut l = Leases::new();
        apply(&mut l, &[0], take(0, "a", None));
        apply(
            &mut l,
            &[0],
            LeaseCommand::Checkpoint {
                shard: 0,
                owner: "a".into(),
                checkpoint: Checkpoint::ShardEnd,
            },
        );
        let release = |owner: &str| LeaseCommand::Release {
            shard: 0,
            owner: owner.into(),
        };
        assert!(matches!(
            apply(&mut l, &[0], release("b")),
            CatalogReply::Conflict(_)
        ));
        assert_eq!(apply(&mut l, &[0], release("a")), CatalogReply::Done);
        assert_eq!(
            l[&0],
            Lease {
                owner: None,
                counter: 2,
                checkpoint: Some(Checkpoint::ShardEnd)
            }
        );
        assert!(matches!(
            apply(&mut l, &[0], take(0, "b", Some(2))),
            CatalogReply::Lease(_)
        ));
    }
}
