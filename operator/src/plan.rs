//! Pure diffing of a `Stream`'s spec against the catalog's description into the changes the
//! reconciler makes, plus the differences the data plane cannot apply yet.

use std::collections::BTreeMap;
use std::fmt;

use crate::catalog_client::CreateStream;
use crate::crd::EncryptionType;
use crate::crd::Stream;
use crate::crd::StreamLifecycle;
use crate::crd::StreamMode;
use crate::observed::ObservedStream;
use crate::policy::autoscaling::AutoscalingConfig;

/// Tag the operator puts on streams it creates: `<namespace>/<name>` of the owning resource. A
/// stream without it (created through the API) or with another owner is never modified.
pub const OWNER_TAG: &str = "runnel.dev/owner";
/// Retention when the spec leaves it unset, as in AWS.
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// MaxRecordSizeInKiB when the spec leaves it unset (and when a node does not report it), as in AWS.
pub const DEFAULT_MAX_RECORD_SIZE_KIB: u32 = 1024;
/// Initial shard count of an ON_DEMAND stream, as AWS starts, unless autoscaling.minShards says more.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;

/// The catalog state a valid `Stream` asks for.
#[derive(Clone, Debug, PartialEq)]
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
    /// The autoscaler's tunables, when autoscaling is on.
    pub autoscaling: Option<AutoscalingConfig>,
    /// MaxRecordSizeInKiB (1024 when the spec leaves it unset).
    pub max_record_size_kib: u32,
    /// The `KeyId` of server-side encryption (`spec.encryption` KMS); None: not encrypted.
    pub encryption_key_id: Option<String>,
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
        let autoscaling = AutoscalingConfig::from_spec(spec);
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
        let encryption_key_id = spec
            .encryption
            .as_ref()
            .filter(|e| e.type_ == EncryptionType::Kms)
            .and_then(|e| e.key_id.clone());
        let mut tags = spec.tags.clone();
        tags.insert(OWNER_TAG.to_string(), owner.clone());
        Some(Desired {
            name,
            owner,
            mode,
            fixed_shard_count: if mode == StreamMode::Provisioned && autoscaling.is_none() {
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
            autoscaling,
            max_record_size_kib: spec
                .max_record_size_kib
                .and_then(|k| u32::try_from(k).ok())
                .unwrap_or(DEFAULT_MAX_RECORD_SIZE_KIB),
            encryption_key_id,
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
            max_record_size_kib: self.max_record_size_kib,
        }
    }
}

/// A difference between spec and catalog that the data plane refused to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// The node refused StartStreamEncryption (a key its keyring lacks, the 24-hour limit).
    EncryptionRefused { change: String, message: String },
    /// The node refused a consumer registration or deregistration (e.g. the stream's consumer
    /// limit, counting consumers registered through the API).
    ConsumerRefused { change: String, message: String },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::EncryptionRefused { change, message } => {
                write!(f, "spec.encryption: {change} was refused: {message}")
            }
            Drift::ConsumerRefused { change, message } => {
                write!(f, "spec.consumers: {change} was refused: {message}")
            }
        }
    }
}

/// The name of a mode in the Kinesis API.
pub fn mode_name(mode: Option<StreamMode>) -> &'static str {
    match mode {
        Some(StreamMode::Provisioned) => "PROVISIONED",
        Some(StreamMode::OnDemand) => "ON_DEMAND",
        None => "unknown",
    }
}

/// One admin call that brings the stream closer to its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// UpdateRetention.
    UpdateRetention(u32),
    /// UpdateMaxRecordSize (KiB).
    UpdateMaxRecordSize(u32),
    /// UpdateTags: add or overwrite `add`, then remove `remove`.
    UpdateTags {
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    /// UpdateStreamMode (the stream is UPDATING for a moment).
    UpdateStreamMode(StreamMode),
    /// StartStreamEncryption with the key, or StopStreamEncryption (the stream is UPDATING for
    /// a moment).
    UpdateEncryption(Option<String>),
    /// One UpdateShardCount call to `target`, a step towards `desired`: a call may at most
    /// double or halve the open shard count, as on AWS.
    UpdateShardCount { from: u32, target: u32, desired: u32 },
}

impl Change {
    /// True for changes of the stream's capacity (reported on the Scaling condition).
    pub fn is_scaling(&self) -> bool {
        matches!(
            self,
            Change::UpdateStreamMode(_) | Change::UpdateShardCount { .. }
        )
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::UpdateRetention(hours) => write!(f, "UpdateRetention to {hours} h"),
            Change::UpdateMaxRecordSize(kib) => write!(f, "UpdateMaxRecordSize to {kib} KiB"),
            Change::UpdateTags { add, remove } => write!(
                f,
                "UpdateTags (set {}, remove {})",
                join(add.keys()),
                join(remove.iter())
            ),
            Change::UpdateStreamMode(mode) => write!(f, "UpdateStreamMode to {}", mode_name(Some(*mode))),
            Change::UpdateEncryption(Some(key)) => write!(f, "StartStreamEncryption with {key}"),
            Change::UpdateEncryption(None) => f.write_str("StopStreamEncryption"),
            Change::UpdateShardCount {
                from,
                target,
                desired,
            } if target == desired => write!(f, "UpdateShardCount {from} -> {target}"),
            Change::UpdateShardCount {
                from,
                target,
                desired,
            } => write!(
                f,
                "UpdateShardCount {from} -> {target} (a step towards spec.shardCount {desired}: one call may at most double or halve the shards)"
            ),
        }
    }
}

fn join<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// What the reconciler does next for one stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// The catalog has no such stream: create it.
    Create(CreateStream),
    /// A stream of that name exists and belongs to someone else (no or another owner tag).
    Conflict { owner: Option<String> },
    /// The stream is in a transition (CREATING, UPDATING, DELETING): look again shortly.
    Wait(StreamLifecycle),
    /// The stream is ACTIVE: make `changes` in order; when `autoscale` is set the layout is
    /// settled and the autoscaler may split or merge.
    Converge { changes: Vec<Change>, autoscale: bool },
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
    let mut changes = Vec::new();
    if observed.retention_period_hours != desired.retention_period_hours {
        changes.push(Change::UpdateRetention(desired.retention_period_hours));
    }
    if observed.max_record_size_kib != desired.max_record_size_kib {
        changes.push(Change::UpdateMaxRecordSize(desired.max_record_size_kib));
    }
    if let Some(tags) = tag_change(&desired.tags, &observed.tags) {
        changes.push(tags);
    }
    // Last, at most one per pass, as each puts the stream in UPDATING: encryption, then
    // capacity.
    let encryption_change = (observed.encryption_key_id != desired.encryption_key_id)
        .then(|| Change::UpdateEncryption(desired.encryption_key_id.clone()));
    let layout_change = if observed.mode != Some(desired.mode) {
        Some(Change::UpdateStreamMode(desired.mode))
    } else {
        shard_count_change(desired, observed)
    };
    let autoscale = encryption_change.is_none() && layout_change.is_none() && desired.autoscaling.is_some();
    changes.extend(encryption_change.or(layout_change));
    Plan::Converge { changes, autoscale }
}

/// UpdateTags to turn `observed` into `desired`, or None when they are equal.
pub fn tag_change(desired: &BTreeMap<String, String>, observed: &BTreeMap<String, String>) -> Option<Change> {
    let add: BTreeMap<String, String> = desired
        .iter()
        .filter(|(k, v)| observed.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let remove: Vec<String> = observed
        .keys()
        .filter(|k| !desired.contains_key(*k))
        .cloned()
        .collect();
    (!add.is_empty() || !remove.is_empty()).then_some(Change::UpdateTags { add, remove })
}

fn shard_count_change(desired: &Desired, observed: &ObservedStream) -> Option<Change> {
    let want = desired.fixed_shard_count?;
    let open = u32::try_from(observed.open_shard_count()).unwrap_or(u32::MAX);
    (open != want).then(|| Change::UpdateShardCount {
        from: open,
        target: shard_count_step(open, want),
        desired: want,
    })
}

/// The shard count one UpdateShardCount call may reach from `open` towards `want`: at most
/// double, at least half (rounded up), as AWS allows.
pub fn shard_count_step(open: u32, want: u32) -> u32 {
    let open = open.max(1);
    want.clamp(open.div_ceil(2), open.saturating_mul(2))
}

/// How the Scaling condition reads for an observed stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScalingState {
    /// Nothing to change in the layout.
    Stable,
    /// A reshard or mode change is running or still to be made (message says which).
    InProgress(String),
    /// The node refused the change (limit reached, invalid for the stream): message is its answer.
    Blocked(String),
}

/// The Scaling state of an observed stream the reconciler made `made` changes to (pure).
pub fn scaling_state(desired: &Desired, observed: &ObservedStream, made: &[Change]) -> ScalingState {
    let open = observed.open_shard_count();
    if let Some(change) = made.iter().rev().find(|c| c.is_scaling()) {
        return ScalingState::InProgress(format!("{change} requested"));
    }
    if observed.status == Some(StreamLifecycle::Updating) {
        return ScalingState::InProgress(format!(
            "stream is UPDATING (resharding or changing mode); {open} open shards"
        ));
    }
    if observed.status != Some(StreamLifecycle::Active) {
        return ScalingState::Stable;
    }
    if observed.mode != Some(desired.mode) {
        return ScalingState::InProgress(format!(
            "mode is {}, spec asks for {}",
            mode_name(observed.mode),
            mode_name(Some(desired.mode))
        ));
    }
    match desired.fixed_shard_count {
        Some(want) if usize::try_from(want).ok() != Some(open) => {
            ScalingState::InProgress(format!("{open} open shards, spec.shardCount is {want}"))
        }
        _ => ScalingState::Stable,
    }
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
            max_record_size_kib: desired.max_record_size_kib,
            encryption_key_id: desired.encryption_key_id.clone(),
            shards: (0..open_shards)
                .map(|i| ObservedShard {
                    shard_id: format!("shardId-{i:012}"),
                    ..ObservedShard::default()
                })
                .collect(),
        }
    }

    #[test]
    fn a_changed_max_record_size_is_updated() -> Result<(), String> {
        let mut spec = provisioned(2);
        spec.max_record_size_kib = Some(4096);
        let d = Desired::from_stream(&stream(spec)).ok_or("desired")?;
        assert_eq!(d.create_request().max_record_size_kib, 4096);
        let mut o = observed(&d, 2);
        assert!(converge(&d, &o)?.0.is_empty());
        o.max_record_size_kib = 1024;
        assert_eq!(converge(&d, &o)?.0, vec![Change::UpdateMaxRecordSize(4096)]);
        Ok(())
    }

    #[test]
    fn desired_defaults_and_owner_tag() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(2))).ok_or("no desired state")?;
        assert_eq!(d.name, "orders");
        assert_eq!(d.owner, "shop/orders");
        assert_eq!(d.retention_period_hours, 24);
        assert_eq!(d.fixed_shard_count, Some(2));
        assert_eq!(d.tags.get(OWNER_TAG).map(String::as_str), Some("shop/orders"));
        assert_eq!(d.encryption_key_id, None);
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
        assert!(d.autoscaling.is_some());
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

    fn converge(d: &Desired, o: &ObservedStream) -> Result<(Vec<Change>, bool), String> {
        match plan(d, Some(o)) {
            Plan::Converge { changes, autoscale } => Ok((changes, autoscale)),
            other => Err(format!("expected Converge, got {other:?}")),
        }
    }

    #[test]
    fn encryption_starts_and_stops_one_updating_change_at_a_time() -> Result<(), String> {
        let mut spec = provisioned(4);
        spec.encryption = Some(crate::crd::Encryption {
            type_: EncryptionType::Kms,
            key_id: Some("alias/orders".into()),
        });
        let d = Desired::from_stream(&stream(spec.clone())).ok_or("desired")?;
        assert_eq!(d.encryption_key_id.as_deref(), Some("alias/orders"));
        let mut o = observed(&d, 2);
        o.encryption_key_id = None;
        // Encryption first; the shard count waits for the next pass (both make it UPDATING).
        let start = Change::UpdateEncryption(Some("alias/orders".into()));
        assert_eq!(converge(&d, &o)?, (vec![start.clone()], false));
        assert_eq!(start.to_string(), "StartStreamEncryption with alias/orders");
        assert!(!start.is_scaling());
        o.encryption_key_id = Some("alias/orders".into());
        assert_eq!(converge(&d, &o)?.0.len(), 1);
        assert!(matches!(converge(&d, &o)?.0[0], Change::UpdateShardCount { .. }));
        // Another key in the spec: StartStreamEncryption with it; NONE: StopStreamEncryption.
        o.encryption_key_id = Some("alias/old".into());
        assert_eq!(converge(&d, &o)?.0, vec![start]);
        spec.encryption = Some(crate::crd::Encryption {
            type_: EncryptionType::None,
            key_id: None,
        });
        let plain = Desired::from_stream(&stream(spec)).ok_or("desired")?;
        let mut o = observed(&plain, 4);
        o.encryption_key_id = Some("alias/orders".into());
        assert_eq!(converge(&plain, &o)?.0, vec![Change::UpdateEncryption(None)]);
        assert_eq!(Change::UpdateEncryption(None).to_string(), "StopStreamEncryption");
        Ok(())
    }

    #[test]
    fn matching_stream_needs_nothing() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(2))).ok_or("no desired state")?;
        let o = observed(&d, 2);
        assert_eq!(converge(&d, &o)?, (vec![], false));
        assert_eq!(scaling_state(&d, &o, &[]), ScalingState::Stable);
        Ok(())
    }

    #[test]
    fn retention_change_is_applied() -> Result<(), String> {
        let mut spec = provisioned(2);
        spec.retention_period_hours = Some(72);
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.retention_period_hours = 24;
        assert_eq!(converge(&d, &o)?.0, vec![Change::UpdateRetention(72)]);
        Ok(())
    }

    #[test]
    fn shard_count_change_steps_by_at_most_double_or_half() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(4))).ok_or("no desired state")?;
        let o = observed(&d, 2);
        assert_eq!(
            converge(&d, &o)?.0,
            vec![Change::UpdateShardCount {
                from: 2,
                target: 4,
                desired: 4
            }]
        );
        assert!(
            matches!(scaling_state(&d, &o, &[]), ScalingState::InProgress(m) if m.contains("spec.shardCount is 4"))
        );
        assert_eq!(shard_count_step(2, 9), 4);
        assert_eq!(shard_count_step(4, 9), 8);
        assert_eq!(shard_count_step(8, 9), 9);
        assert_eq!(shard_count_step(4, 1), 2);
        assert_eq!(shard_count_step(5, 1), 3);
        assert_eq!(shard_count_step(3, 1), 2);
        assert_eq!(shard_count_step(2, 1), 1);
        assert_eq!(shard_count_step(0, 3), 2);
        // Stepping always ends at the target.
        for (from, to) in [(1u32, 200u32), (200, 1), (7, 13), (13, 7)] {
            let mut n = from;
            let mut calls = 0;
            while n != to {
                n = shard_count_step(n, to);
                calls += 1;
                assert!(calls < 20, "{from} -> {to} does not converge");
            }
        }
        Ok(())
    }

    #[test]
    fn tags_are_added_changed_and_removed_but_the_owner_tag_stays() -> Result<(), String> {
        let mut spec = provisioned(1);
        spec.tags.insert("team".into(), "payments".into());
        spec.tags.insert("tier".into(), "gold".into());
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        let mut o = observed(&d, 1);
        o.tags.insert("tier".into(), "silver".into());
        o.tags.remove("team");
        o.tags.insert("old".into(), "x".into());
        let (changes, _) = converge(&d, &o)?;
        let expected_add: BTreeMap<String, String> = [("team", "payments"), ("tier", "gold")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            changes,
            vec![Change::UpdateTags {
                add: expected_add,
                remove: vec!["old".into()]
            }]
        );
        assert!(!changes[0].is_scaling());
        Ok(())
    }

    #[test]
    fn mode_change_comes_before_any_shard_count_change() -> Result<(), String> {
        let mut spec = provisioned(4);
        spec.consumers = vec!["fraud".into()];
        spec.retention_period_hours = Some(48);
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.mode = Some(StreamMode::OnDemand);
        o.retention_period_hours = 24;
        let (changes, autoscale) = converge(&d, &o)?;
        assert_eq!(
            changes,
            vec![
                Change::UpdateRetention(48),
                Change::UpdateStreamMode(StreamMode::Provisioned)
            ]
        );
        assert!(!autoscale);
        // Once the mode matches, the shard count follows.
        o.mode = Some(StreamMode::Provisioned);
        o.retention_period_hours = 48;
        assert_eq!(
            converge(&d, &o)?.0,
            vec![Change::UpdateShardCount {
                from: 2,
                target: 4,
                desired: 4
            }]
        );
        Ok(())
    }

    #[test]
    fn autoscaled_streams_leave_the_count_to_the_autoscaler() -> Result<(), String> {
        let mut spec = provisioned(2);
        spec.autoscaling = Some(Autoscaling {
            enabled: Some(true),
            ..Autoscaling::default()
        });
        let d = Desired::from_stream(&stream(spec)).ok_or("no desired state")?;
        assert_eq!(d.fixed_shard_count, None);
        let o = observed(&d, 5);
        assert_eq!(converge(&d, &o)?, (vec![], true));
        let mut changing = o.clone();
        changing.mode = Some(StreamMode::OnDemand);
        assert!(
            !converge(&d, &changing)?.1,
            "no autoscaling while the mode changes"
        );
        Ok(())
    }

    #[test]
    fn scaling_state_follows_the_stream() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(2))).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.status = Some(StreamLifecycle::Updating);
        assert!(matches!(scaling_state(&d, &o, &[]), ScalingState::InProgress(m) if m.contains("UPDATING")));
        o.status = Some(StreamLifecycle::Active);
        let made = [Change::UpdateShardCount {
            from: 1,
            target: 2,
            desired: 2,
        }];
        assert!(
            matches!(scaling_state(&d, &o, &made), ScalingState::InProgress(m) if m.contains("UpdateShardCount 1 -> 2"))
        );
        Ok(())
    }

    #[test]
    fn closed_shards_do_not_count() -> Result<(), String> {
        let d = Desired::from_stream(&stream(provisioned(1))).ok_or("no desired state")?;
        let mut o = observed(&d, 2);
        o.shards[0].closed = true;
        assert_eq!(converge(&d, &o)?.0, vec![]);
        Ok(())
    }
}
