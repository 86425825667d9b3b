//! Pure diffing of a `Stream`'s spec against the catalog's description into the action the
//! reconciler takes, plus the differences the data plane cannot apply yet.

use std::collections::BTreeMap;
use std::fmt;

use crate::catalog_client::CreateStream;
use crate::crd::EncryptionType;
use crate::crd::Stream;
use crate::crd::StreamLifecycle;
use crate::crd::StreamMode;
use crate::observed::ObservedStream;

/// Tag the operator puts on streams it creates: `<namespace>/<name>` of the owning resource. A
/// stream without it (created through the API) or with another owner is never modified.
pub const OWNER_TAG: &str = "runnel.dev/owner";
/// Retention when the spec leaves it unset, as in AWS.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// Initial shard count of an ON_DEMAND stream, as AWS starts, unless autoscaling.minShards says more.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

/// The catalog state a valid `Stream` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub owner: String,
    pub mode: StreamMode,
    /// The declared shard count that must hold (PROVISIONED without autoscaling).
    pub fixed_shard_count: Option<u32>,
    /// Shard count at creation.
    pub initial_shard_count: Option<u32>,
    pub retention_period_hours: u32,
    pub tags: BTreeMap<String, String>,
    /// Spec fields the data plane has no API for yet, with the requested value.
    pub unsupported: Vec<Drift>,
}

impl Desired {
    /// The desired state of a stream that passed validation (`None` without a name).
    pub fn from_stream(stream: &Stream) -> Option<Desired> {
        let name = stream.stream_name()?.to_string();
        let owner = format!(
            "{}/{}",
            stream.metadata.namespace.as_deref().unwrap_or_default(),
            stream.metadata.name.as_deref().unwrap_or_default()
        );
        let spec = &stream.spec;
        let mode = spec.mode();
        let autoscaling = spec
            .autoscaling
            .as_ref()
            .and_then(|a| a.enabled)
            .unwrap_or(mode == StreamMode::OnDemand);
        let shard_count = spec.shard_count.and_then(|n| u32::try_from(n).ok());
        let initial_shard_count = match mode {
            StreamMode::Provisioned => shard_count,
            StreamMode::OnDemand => Some(
                spec.autoscaling
                    .as_ref()
                    .and_then(|a| a.min_shards)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(ON_DEMAND_INITIAL_SHARDS)
                    .max(1),
            ),
        };
        let mut unsupported = Vec::new();
        if let Some(kib) = spec.max_record_size_kib
            && kib != crate::validation::MIN_MAX_RECORD_SIZE_KIB
        {
            unsupported.push(Drift::MaxRecordSize { kib });
        }
        if let Some(enc) = &spec.encryption
            && enc.type_ == EncryptionType::Kms
        {
            unsupported.push(Drift::Encryption);
        }
        if !spec.consumers.is_empty() {
            unsupported.push(Drift::Consumers {
                count: spec.consumers.len(),
            });
        }
        if autoscaling {
            unsupported.push(Drift::Autoscaling);
        }
        let mut tags = spec.tags.clone();
        tags.insert(OWNER_TAG.to_string(), owner.clone());
        Some(Desired {
            name,
            owner,
            mode,
            fixed_shard_count: if mode == StreamMode::Provisioned && !autoscaling {
                shard_count
            } else {
                None
            },
            initial_shard_count,
            retention_period_hours: spec
                .retention_period_hours
                .and_then(|h| u32::try_from(h).ok())
                .unwrap_or(DEFAULT_RETENTION_HOURS),
            tags,
            unsupported,
        })
    }

    /// The CreateStream call for this state.
    pub fn create_request(&self) -> CreateStream {
        CreateStream {
            name: self.name.clone(),
            mode: self.mode,
            shard_count: self.initial_shard_count,
            retention_period_hours: self.retention_period_hours,
            tags: self.tags.clone(),
        }
    }
}

/// A difference between spec and catalog that the data plane cannot apply (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// The open shard count differs from `spec.shardCount` (needs resharding).
    ShardCount { desired: u32, observed: u32 },
    /// The capacity mode differs (needs UpdateStreamMode).
    Mode {
        desired: StreamMode,
        observed: Option<StreamMode>,
    },
    /// Tags differ (needs AddTagsToStream / RemoveTagsFromStream).
    Tags,
    /// A maximum record size other than 1 MiB.
    MaxRecordSize { kib: i32 },
    /// KMS encryption.
    Encryption,
    /// Enhanced fan-out consumers.
    Consumers { count: usize },
    /// Automatic split and merge (needs resharding).
    Autoscaling,
}

impl Drift {
    /// True for differences in shard layout, reported on the Scaling condition; the others go
    /// on Degraded.
    pub fn is_scaling(&self) -> bool {
        matches!(
            self,
            Drift::ShardCount { .. } | Drift::Mode { .. } | Drift::Autoscaling
        )
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::ShardCount { desired, observed } => write!(
                f,
                "spec.shardCount is {desired} but the stream has {observed} open shards (resharding is not supported by the data plane yet)"
            ),
            Drift::Mode { desired, observed } => write!(
                f,
                "spec.streamModeDetails.streamMode is {} but the stream is {} (changing the mode is not supported yet)",
                mode_name(Some(*desired)),
                mode_name(*observed)
            ),
            Drift::Tags => f.write_str("spec.tags differ from the stream's tags (changing tags is not supported yet)"),
            Drift::MaxRecordSize { kib } => write!(
                f,
                "spec.maxRecordSizeKiB {kib} is not applied (the data plane accepts records up to 1024 KiB)"
            ),
            Drift::Encryption => f.write_str("spec.encryption KMS is not applied (no encryption at rest yet)"),
            Drift::Consumers { count } => write!(
                f,
                "spec.consumers ({count}) are not registered (enhanced fan-out is not supported yet)"
            ),
            Drift::Autoscaling => f.write_str(
                "autoscaling is enabled but not applied (split and merge are not supported by the data plane yet)",
            ),
        }
    }
}

fn mode_name(mode: Option<StreamMode>) -> &'static str {
    match mode {
        Some(StreamMode::Provisioned) => "PROVISIONED",
        Some(StreamMode::OnDemand) => "ON_DEMAND",
        None => "unknown",
    }
}

/// What the reconciler does next for one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The catalog has no such stream: create it.
    Create(CreateStream),
    /// A stream of that name exists and belongs to someone else (no or another owner tag).
    Conflict { owner: Option<String> },
    /// The stream is in a transition (CREATING, UPDATING, DELETING): look again shortly.
    Wait(StreamLifecycle),
    /// The stream is ACTIVE: apply what the data plane supports, report the rest.
    Converge {
        update_retention: Option<u32>,
        drift: Vec<Drift>,
    },
}

/// Compares the desired state with the catalog's description.
pub fn plan(desired: &Desired, observed: Option<&ObservedStream>) -> Plan {
    let Some(observed) = observed else {
        return Plan::Create(desired.create_request());
    };
    let owner = observed.tags.get(OWNER_TAG);
    if owner != Some(&desired.owner) {
        return Plan::Conflict {
            owner: owner.cloned(),
        };
    }
    match observed.status {
        Some(StreamLifecycle::Active) => {}
        Some(other) => return Plan::Wait(other),
        None => return Plan::Wait(StreamLifecycle::Updating),
    }
    Plan::Converge {
        update_retention: (observed.retention_period_hours != desired.retention_period_hours)
            .then_some(desired.retention_period_hours),
        drift: drift(desired, observed),
    }
}

/// Every difference that no admin call can apply yet, in a stable order.
pub fn drift(desired: &Desired, observed: &ObservedStream) -> Vec<Drift> {
    let mut drift = Vec::new();
    if observed.mode != Some(desired.mode) {
        drift.push(Drift::Mode {
            desired: desired.mode,
            observed: observed.mode,
        });
    }
    if let Some(want) = desired.fixed_shard_count {
        let open = u32::try_from(observed.open_shard_count()).unwrap_or(u32::MAX);
        if open != want {
            drift.push(Drift::ShardCount {
                desired: want,
                observed: open,
            });
        }
    }
    if observed.tags != desired.tags {
        drift.push(Drift::Tags);
    }
    drift.extend(desired.unsupported.iter().cloned());
    drift
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::crd::Autoscaling;
    use crate::crd::StreamModeDetails;
    use crate::crd::StreamSpec;
    use crate::observed::ObservedShard;

    fn stream(spec: StreamSpec) -> Stream {
        Stream {
            metadata: ObjectMeta {
                name: Some("orders".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }

    fn provisioned(shards: i32) -> StreamSpec {
        StreamSpec {
            shard_count: Some(shards),
            ..StreamSpec::default()
        }
    }

    fn observed(desired: &Desired, open_shards: usize) -> ObservedStream {
        ObservedStream {
            name: desired.name.clone(),
            arn: "arn".into(),
            status: Some(StreamLifecycle::Active),
            mode: Some(desired.mode),
            retention_period_hours: desired.retention_period_hours,
            tags: desired.tags.clone(),
            shards: (0..open_shards)
                .map(|i| ObservedShard {
                    shard_id: format!("shardId-{i:012}"),
                    ..ObservedShard::default()
                })
                .collect(),
        }
    }

    #[test]
    fn desired_defaults_and_owner_tag() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(2))).ok_or("no desired state")?;
        assert_eq!(d.name, "orders");
        assert_eq!(d.owner, "shop/orders");
        assert_eq!(d.retention_period_hours, 24);
        assert_eq!(d.fixed_shard_count, Some(2));
        assert_eq!(d.tags.get(OWNER_TAG).map(String::as_str), Some("shop/orders"));
        assert!(d.unsupported.is_empty());
        Ok(())
    }

    #[test]
    fn spec_name_overrides_metadata_name() -> Result<(), String> {
        let mut spec = provisioned(1);
        spec.name = Some("orders-v2".into());
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        assert_eq!(d.name, "orders-v2");
        assert_eq!(d.owner, "shop/orders");
        Ok(())
    }

    #[test]
    fn absent_stream_is_created() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(3))).ok_or("no desired state")?;
        match plan(&d, None) {
            Plan::Create(c) => {
                assert_eq!(c.shard_count, Some(3));
                assert_eq!(c.mode, StreamMode::Provisioned);
                assert_eq!(c.tags.get(OWNER_TAG).map(String::as_str), Some("shop/orders"));
            }
            other => return Err(format!("unexpected plan {other:?}")),
        }
        Ok(())
    }

    #[test]
    fn on_demand_starts_with_min_shards_or_four() -> Result<(), String> {
        let mut spec = StreamSpec {
            stream_mode_details: Some(StreamModeDetails {
                stream_mode: StreamMode::OnDemand,
            }),
            ..StreamSpec::default()
        };
        let d = Desired::from_stream(&stream(spec.clone())).ok_or("no desired state")?;
        assert_eq!(d.initial_shard_count, Some(4));
        assert_eq!(d.fixed_shard_count, None);
        assert!(d.unsupported.contains(&Drift::Autoscaling));
        spec.autoscaling = Some(Autoscaling {
            min_shards: Some(6),
            ..Autoscaling::default()
        });
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        assert_eq!(d.initial_shard_count, Some(6));
        Ok(())
    }

    #[test]
    fn stream_without_owner_tag_is_a_conflict() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(1))).ok_or("no desired state")?;
        let mut o = observed(&d, 1);
        o.tags.clear();
        assert_eq!(plan(&d, Some(&o)), Plan::Conflict { owner: None });
        o.tags.insert(OWNER_TAG.into(), "other/orders".into());
        assert_eq!(
            plan(&d, Some(&o)),
            Plan::Conflict {
                owner: Some("other/orders".into())
            }
        );
        Ok(())
    }

    #[test]
    fn transitions_wait() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(1))).ok_or("no desired state")?;
        let mut o = observed(&d, 1);
        o.status = Some(StreamLifecycle::Creating);
        assert_eq!(plan(&d, Some(&o)), Plan::Wait(StreamLifecycle::Creating));
        o.status = Some(StreamLifecycle::Deleting);
        assert_eq!(plan(&d, Some(&o)), Plan::Wait(StreamLifecycle::Deleting));
        Ok(())
    }

    #[test]
    fn matching_stream_needs_nothing() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(2))).ok_or("no desired state")?;
        let o = observed(&d, 2);
        assert_eq!(
            plan(&d, Some(&o)),
            Plan::Converge {
                update_retention: None,
                drift: vec![]
            }
        );
        Ok(())
    }

    #[test]
    fn retention_change_is_applied() -> Result<(), String> {
        let mut spec = provisioned(2);
        spec.retention_period_hours = Some(72);
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.retention_period_hours = 24;
        assert_eq!(
            plan(&d, Some(&o)),
            Plan::Converge {
                update_retention: Some(72),
                drift: vec![]
            }
        );
        Ok(())
    }

    #[test]
    fn unsupported_changes_are_drift_not_actions() -> Result<(), String> {
        let mut spec = provisioned(4);
        spec.tags.insert("team".into(), "payments".into());
        spec.consumers = vec!["fraud".into()];
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.tags.remove("team");
        o.mode = Some(StreamMode::OnDemand);
        let Plan::Converge {
            update_retention,
            drift,
        } = plan(&d, Some(&o))
        else {
            return Err("expected Converge".into());
        };
        assert_eq!(update_retention, None);
        assert_eq!(
            drift,
            vec![
                Drift::Mode {
                    desired: StreamMode::Provisioned,
                    observed: Some(StreamMode::OnDemand)
                },
                Drift::ShardCount {
                    desired: 4,
                    observed: 2
                },
                Drift::Tags,
                Drift::Consumers { count: 1 },
            ]
        );
        assert!(drift[0].is_scaling() && drift[1].is_scaling() && !drift[2].is_scaling());
        Ok(())
    }

    #[test]
    fn closed_shards_do_not_count() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(1))).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.shards[0].closed = true;
        assert_eq!(drift(&d, &o), vec![]);
        Ok(())
    }
}
