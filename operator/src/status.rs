//! Pure construction of the `status` subresources from what the reconciler observed. The
//! reconciler writes the result with server-side apply; nothing here does I/O.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use std::collections::BTreeMap;

use crate::cluster::topology::NodeZones;
use crate::crd::AutoscalingStatus;
use crate::crd::ConditionType;
use crate::crd::ObservedRates;
use crate::crd::ShardStatus;
use crate::crd::StreamLifecycle;
use crate::crd::StreamStatus;
use crate::load::Rates;
use crate::observed::ObservedShard;
use crate::observed::ObservedStream;
use crate::plan::Drift;
use crate::plan::ScalingState;

/// Condition reasons the operator writes.
pub mod reason {
    pub const ACTIVE: &str = "Active";
    pub const CREATING: &str = "Creating";
    pub const UPDATING: &str = "Updating";
    pub const DELETING: &str = "Deleting";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const NAME_CONFLICT: &str = "NameConflict";
    pub const CATALOG_UNAVAILABLE: &str = "CatalogUnavailable";
    pub const ENCRYPTION_REFUSED: &str = "EncryptionRefused";
    pub const CONSUMER_REFUSED: &str = "ConsumerRefused";
    pub const NO_DELIVERY_ENGINE: &str = "NoDeliveryEngine";
    pub const STORED: &str = "Stored";
    pub const STABLE: &str = "Stable";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const NO_LEADER: &str = "NoLeader";
    pub const RESHARDING: &str = "Resharding";
    pub const SCALING_BLOCKED: &str = "ScalingBlocked";
}

/// Load measured from the nodes' metrics (empty when the operator reads no metrics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// Latest write rates of open shards, by shard id.
    pub shard_rates: BTreeMap<String, Rates>,
    pub stream_rates: Option<ObservedRates>,
}

/// What the operator did to the layout, carried from status to status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Activity {
    pub last_scaling_time: Option<Time>,
    pub autoscaling: Option<AutoscalingStatus>,
}

/// What the reconciler learnt about one `Stream` in this pass.
#[derive(Clone, Copy, Debug)]
pub enum Observation<'a> {
    /// Validation failed; the catalog was not called.
    InvalidSpec(&'a [String]),
    /// No node answered the admin API.
    CatalogUnavailable(&'a str),
    /// A stream of that name exists in the catalog and is not this resource's.
    Conflict { name: &'a str, owner: Option<&'a str> },
    /// The stream as the catalog describes it, what of the spec cannot be applied, where
    /// scaling stands, the measured load, the operator's scaling activity and the nodes' zones.
    Observed {
        stream: &'a ObservedStream,
        drift: &'a [Drift],
        scaling: &'a ScalingState,
        measured: &'a Measured,
        activity: &'a Activity,
        zones: &'a NodeZones,
    },
}

/// Builds a `Stream`'s status. `previous` keeps condition transition times stable and, when
/// nothing new was observed (invalid spec, catalog unreachable), the last known shards.
pub fn stream_status(
    generation: Option<i64>,
    previous: Option<&StreamStatus>,
    observation: Observation<'_>,
    now: &Time,
) -> StreamStatus {
    let prev_conditions = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let cond = |t: ConditionType, status: &str, reason: &str, message: String| {
        condition(t, status, reason, message, generation, prev_conditions, now)
    };
    let mut status = match observation {
        Observation::Observed {
            stream,
            measured,
            activity,
            zones,
            ..
        } => observed_fields(stream, measured, activity, zones),
        Observation::Conflict { .. } => StreamStatus::default(),
        Observation::InvalidSpec(_) | Observation::CatalogUnavailable(_) => {
            let mut kept = previous.cloned().unwrap_or_default();
            kept.conditions.clear();
            kept
        }
    };
    status.observed_generation = generation;
    status.conditions = match observation {
        Observation::InvalidSpec(errors) => {
            let message = errors.join("; ");
            vec![
                cond(
                    ConditionType::Ready,
                    "False",
                    reason::INVALID_SPEC,
                    message.clone(),
                ),
                cond(
                    ConditionType::Scaling,
                    "False",
                    reason::INVALID_SPEC,
                    "the spec is invalid".into(),
                ),
                cond(ConditionType::Degraded, "True", reason::INVALID_SPEC, message),
            ]
        }
        Observation::CatalogUnavailable(error) => vec![
            cond(
                ConditionType::Ready,
                "Unknown",
                reason::CATALOG_UNAVAILABLE,
                error.to_string(),
            ),
            cond(
                ConditionType::Scaling,
                "Unknown",
                reason::CATALOG_UNAVAILABLE,
                error.to_string(),
            ),
            cond(
                ConditionType::Degraded,
                "Unknown",
                reason::CATALOG_UNAVAILABLE,
                error.to_string(),
            ),
        ],
        Observation::Conflict { name, owner } => {
            let message = match owner {
                Some(owner) => format!(
                    "stream {name:?} already exists in the catalog and belongs to the resource {owner}; it is left alone"
                ),
                None => format!(
                    "stream {name:?} already exists in the catalog and was not created by this operator; it is left alone"
                ),
            };
            vec![
                cond(
                    ConditionType::Ready,
                    "False",
                    reason::NAME_CONFLICT,
                    message.clone(),
                ),
                cond(
                    ConditionType::Scaling,
                    "False",
                    reason::NAME_CONFLICT,
                    "not managing the stream".into(),
                ),
                cond(ConditionType::Degraded, "True", reason::NAME_CONFLICT, message),
            ]
        }
        Observation::Observed {
            stream,
            drift,
            scaling,
            ..
        } => observed_conditions(stream, drift, scaling, &cond),
    };
    status
}

fn observed_fields(
    stream: &ObservedStream,
    measured: &Measured,
    activity: &Activity,
    zones: &NodeZones,
) -> StreamStatus {
    StreamStatus {
        stream_arn: (!stream.arn.is_empty()).then(|| stream.arn.clone()),
        stream_status: stream.status,
        shards: listed_shards(stream)
            .map(|s| {
                let rates = measured.shard_rates.get(&s.shard_id).filter(|_| !s.closed);
                ShardStatus {
                    shard_id: s.shard_id.clone(),
                    parent_shard_id: s.parent_shard_id.clone(),
                    adjacent_parent_shard_id: s.adjacent_parent_shard_id.clone(),
                    starting_hash_key: s.starting_hash_key.clone(),
                    ending_hash_key: s.ending_hash_key.clone(),
                    closed: s.closed,
                    replicas: s.replicas.iter().map(u64::to_string).collect(),
                    replica_zones: replica_zones(&s.replicas, zones),
                    leader: s.leader.map(|l| l.to_string()),
                    incoming_bytes_per_second: rates.map(|r| r.write_bytes.round()),
                    incoming_records_per_second: rates.map(|r| r.write_records.round()),
                }
            })
            .collect(),
        open_shard_count: i32::try_from(stream.open_shard_count()).ok(),
        encryption_type: Some(
            if stream.encryption_key_id.is_some() {
                "KMS"
            } else {
                "NONE"
            }
            .to_string(),
        ),
        key_id: stream.encryption_key_id.clone(),
        observed_rates: measured.stream_rates.clone(),
        autoscaling: activity.autoscaling.clone(),
        last_scaling_time: activity.last_scaling_time.clone(),
        ..StreamStatus::default()
    }
}

/// The zone of each replica, in their order (`""` where unknown); nothing when none is known,
/// so a cluster without zone labels shows no zones at all.
fn replica_zones(replicas: &[u64], zones: &NodeZones) -> Vec<String> {
    if !replicas.iter().any(|id| zones.contains_key(id)) {
        return Vec::new();
    }
    replicas
        .iter()
        .map(|id| zones.get(id).cloned().unwrap_or_default())
        .collect()
}

/// The node zones a status shows (each replica's node id with its zone): what the reconciler
/// uses while the nodes' zones have not been read yet, so a restarted operator does not drop
/// them from the status meanwhile.
pub fn zones_shown(status: &StreamStatus) -> NodeZones {
    status
        .shards
        .iter()
        .flat_map(|s| s.replicas.iter().zip(&s.replica_zones))
        .filter(|(_, zone)| !zone.is_empty())
        .filter_map(|(id, zone)| Some((id.parse().ok()?, zone.clone())))
        .collect()
}

/// Open shards and the closed shards they came from (their parents), in catalog order. Older
/// ancestors stay in the catalog (DescribeStream) but not in the status.
fn listed_shards(stream: &ObservedStream) -> impl Iterator<Item = &ObservedShard> {
    let is_parent_of_open = |id: &str| {
        stream.shards.iter().any(|s| {
            !s.closed
                && (s.parent_shard_id.as_deref() == Some(id)
                    || s.adjacent_parent_shard_id.as_deref() == Some(id))
        })
    };
    stream
        .shards
        .iter()
        .filter(move |s| !s.closed || is_parent_of_open(&s.shard_id))
}

fn observed_conditions(
    stream: &ObservedStream,
    drift: &[Drift],
    scaling: &ScalingState,
    cond: &dyn Fn(ConditionType, &str, &str, String) -> Condition,
) -> Vec<Condition> {
    let open = stream.open_shard_count();
    let not_applied: Vec<String> = drift.iter().map(Drift::to_string).collect();
    let ready = match stream.status {
        Some(StreamLifecycle::Active) => {
            let mut message = format!("stream {:?} is ACTIVE with {open} open shards", stream.name);
            if !drift.is_empty() {
                message.push_str("; part of the spec is not applied (see Degraded)");
            }
            cond(ConditionType::Ready, "True", reason::ACTIVE, message)
        }
        Some(StreamLifecycle::Creating) | None => cond(
            ConditionType::Ready,
            "False",
            reason::CREATING,
            format!("stream {:?} is being created", stream.name),
        ),
        // An UPDATING stream keeps serving reads and writes, as on AWS.
        Some(StreamLifecycle::Updating) => cond(
            ConditionType::Ready,
            "True",
            reason::UPDATING,
            format!(
                "stream {:?} is being updated (resharding or changing mode) and serves reads and writes meanwhile",
                stream.name
            ),
        ),
        Some(StreamLifecycle::Deleting) => cond(
            ConditionType::Ready,
            "False",
            reason::DELETING,
            format!(
                "stream {:?} is being deleted in the catalog; it will be created again once gone",
                stream.name
            ),
        ),
    };
    let scaling = match scaling {
        ScalingState::Stable => cond(
            ConditionType::Scaling,
            "False",
            reason::STABLE,
            format!("{open} open shards, no resharding in progress"),
        ),
        ScalingState::InProgress(message) => cond(
            ConditionType::Scaling,
            "True",
            reason::RESHARDING,
            message.clone(),
        ),
        ScalingState::Blocked(message) => cond(
            ConditionType::Scaling,
            "False",
            reason::SCALING_BLOCKED,
            message.clone(),
        ),
    };
    let leaderless: Vec<&str> = stream
        .shards
        .iter()
        .filter(|s| !s.closed && !s.replicas.is_empty() && s.leader.is_none())
        .map(|s| s.shard_id.as_str())
        .collect();
    let degraded = if !not_applied.is_empty() {
        // The node refused part of the spec: the first refusal names the reason.
        let refused = match drift.first() {
            Some(Drift::EncryptionRefused { .. }) => reason::ENCRYPTION_REFUSED,
            _ => reason::CONSUMER_REFUSED,
        };
        cond(ConditionType::Degraded, "True", refused, not_applied.join("; "))
    } else if stream.status == Some(StreamLifecycle::Active) && !leaderless.is_empty() {
        cond(
            ConditionType::Degraded,
            "True",
            reason::NO_LEADER,
            format!("shards without a Raft leader: {}", leaderless.join(", ")),
        )
    } else {
        cond(
            ConditionType::Degraded,
            "False",
            reason::AS_EXPECTED,
            "no problem reported".into(),
        )
    };
    vec![ready, scaling, degraded]
}

/// One condition; `lastTransitionTime` stays that of the previous condition of the same type
/// when its status did not change.
pub fn condition(
    type_: ConditionType,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_.as_str() && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.as_str().to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// The condition of this type, if present.
pub fn find(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// True when the condition differs from the previous one in status or reason: the moment to
/// emit an Event.
pub fn changed(previous: &[Condition], current: &[Condition], type_: ConditionType) -> bool {
    match (find(previous, type_), find(current, type_)) {
        (Some(p), Some(c)) => p.status != c.status || p.reason != c.reason,
        (None, Some(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::crd::StreamMode;

    fn observed(o: &ObservedStream) -> Observation<'_> {
        Observation::Observed {
            stream: o,
            drift: &[],
            scaling: &ScalingState::Stable,
            measured: &NO_MEASUREMENT,
            activity: &NO_ACTIVITY,
            zones: &NO_ZONES,
        }
    }

    static NO_ZONES: NodeZones = BTreeMap::new();

    static NO_MEASUREMENT: Measured = Measured {
        shard_rates: BTreeMap::new(),
        stream_rates: None,
    };
    static NO_ACTIVITY: Activity = Activity {
        last_scaling_time: None,
        autoscaling: None,
    };

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn active(shards: usize) -> ObservedStream {
        ObservedStream {
            name: "orders".into(),
            arn: "arn:aws:kinesis:us-east-1:000000000000:stream/orders".into(),
            status: Some(StreamLifecycle::Active),
            mode: Some(StreamMode::Provisioned),
            retention_period_hours: 24,
            tags: Default::default(),
            max_record_size_kib: 1024,
            encryption_key_id: None,
            shards: (0..shards)
                .map(|i| ObservedShard {
                    shard_id: format!("shardId-{i:012}"),
                    starting_hash_key: format!("{i}0"),
                    ending_hash_key: format!("{i}9"),
                    replicas: vec![1],
                    leader: Some(1),
                    ..ObservedShard::default()
                })
                .collect(),
        }
    }

    fn get(s: &StreamStatus, t: ConditionType) -> &Condition {
        find(&s.conditions, t).unwrap_or_else(|| panic!("no {t} condition"))
    }

    #[test]
    fn active_stream_is_ready_with_shards() {
        let o = active(2);
        let s = stream_status(Some(3), None, observed(&o), &at(10));
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.open_shard_count, Some(2));
        assert_eq!(s.stream_status, Some(StreamLifecycle::Active));
        assert_eq!(s.stream_arn.as_deref(), Some(o.arn.as_str()));
        assert_eq!(s.shards.len(), 2);
        assert_eq!(s.shards[1].shard_id, "shardId-000000000001");
        assert_eq!(s.shards[1].starting_hash_key, "10");
        assert_eq!(s.shards[1].replicas, vec!["1".to_string()]);
        assert_eq!(s.shards[1].leader.as_deref(), Some("1"));
        assert_eq!(
            (s.encryption_type.as_deref(), s.key_id.as_deref()),
            (Some("NONE"), None)
        );
        let mut encrypted = active(2);
        encrypted.encryption_key_id = Some("alias/aws/kinesis".into());
        let e = stream_status(Some(3), None, observed(&encrypted), &at(10));
        assert_eq!(
            (e.encryption_type.as_deref(), e.key_id.as_deref()),
            (Some("KMS"), Some("alias/aws/kinesis"))
        );
        let ready = get(&s, ConditionType::Ready);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", reason::ACTIVE)
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(get(&s, ConditionType::Scaling).status, "False");
        assert_eq!(get(&s, ConditionType::Degraded).status, "False");
    }

    #[test]
    fn creating_stream_is_not_ready() {
        let mut o = active(1);
        o.status = Some(StreamLifecycle::Creating);
        let s = stream_status(Some(1), None, observed(&o), &at(10));
        let ready = get(&s, ConditionType::Ready);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason::CREATING)
        );
    }

    #[test]
    fn invalid_spec_is_reported_and_keeps_last_shards() {
        let o = active(2);
        let before = stream_status(Some(1), None, observed(&o), &at(10));
        let errors = vec!["spec.shardCount must be at least 1, got 0".to_string()];
        let s = stream_status(Some(2), Some(&before), Observation::InvalidSpec(&errors), &at(20));
        let ready = get(&s, ConditionType::Ready);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason::INVALID_SPEC)
        );
        assert!(ready.message.contains("shardCount"));
        assert_eq!(ready.last_transition_time, at(20));
        assert_eq!(get(&s, ConditionType::Degraded).status, "True");
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.shards.len(), 2);
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let o = active(1);
        let first = stream_status(Some(1), None, observed(&o), &at(10));
        let second = stream_status(Some(1), Some(&first), observed(&o), &at(99));
        assert_eq!(get(&second, ConditionType::Ready).last_transition_time, at(10));
        assert!(!changed(
            &first.conditions,
            &second.conditions,
            ConditionType::Ready
        ));
    }

    #[test]
    fn drift_goes_to_degraded_and_scaling_follows_the_state() {
        let o = active(2);
        let drift = vec![Drift::EncryptionRefused {
            change: "StartStreamEncryption with alias/missing".into(),
            message: "Alias alias/missing is not found.".into(),
        }];
        let scaling = ScalingState::InProgress("UpdateShardCount 2 -> 4 requested".into());
        let s = stream_status(
            Some(2),
            None,
            Observation::Observed {
                stream: &o,
                drift: &drift,
                scaling: &scaling,
                measured: &Measured::default(),
                activity: &Activity::default(),
                zones: &NO_ZONES,
            },
            &at(10),
        );
        let c = get(&s, ConditionType::Scaling);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", reason::RESHARDING)
        );
        assert!(c.message.contains("2 -> 4"));
        let degraded = get(&s, ConditionType::Degraded);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", reason::ENCRYPTION_REFUSED)
        );
        assert!(degraded.message.contains("spec.encryption"));
        assert_eq!(get(&s, ConditionType::Ready).status, "True");
        let blocked = ScalingState::Blocked("limit reached".into());
        let s = stream_status(
            Some(2),
            Some(&s),
            Observation::Observed {
                stream: &o,
                drift: &[],
                scaling: &blocked,
                measured: &Measured::default(),
                activity: &Activity::default(),
                zones: &NO_ZONES,
            },
            &at(20),
        );
        let c = get(&s, ConditionType::Scaling);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            ("False", reason::SCALING_BLOCKED, "limit reached")
        );
    }

    #[test]
    fn updating_stream_stays_ready_and_lists_lineage_with_rates() {
        let mut o = active(2);
        o.status = Some(StreamLifecycle::Updating);
        // shard 0 was split into 2 and 3; shard 1 is open; an older closed shard 9 is no parent.
        o.shards[0].closed = true;
        for (id, parent) in [
            ("shardId-000000000002", "shardId-000000000000"),
            ("shardId-000000000003", "shardId-000000000000"),
        ] {
            o.shards.push(ObservedShard {
                shard_id: id.into(),
                parent_shard_id: Some(parent.into()),
                ..ObservedShard::default()
            });
        }
        o.shards.push(ObservedShard {
            shard_id: "shardId-000000000009".into(),
            closed: true,
            ..ObservedShard::default()
        });
        let measured = Measured {
            shard_rates: [(
                "shardId-000000000002".to_string(),
                Rates {
                    write_bytes: 1234.4,
                    write_records: 9.6,
                    read_bytes: 0.0,
                },
            )]
            .into_iter()
            .collect(),
            stream_rates: Some(ObservedRates {
                incoming_bytes_per_second: 1234.0,
                incoming_records_per_second: 10.0,
                outgoing_bytes_per_second: 0.0,
            }),
        };
        let activity = Activity {
            last_scaling_time: Some(at(5)),
            autoscaling: Some(AutoscalingStatus {
                last_action: Some("SplitShard shardId-000000000000".into()),
                ..AutoscalingStatus::default()
            }),
        };
        let s = stream_status(
            Some(1),
            None,
            Observation::Observed {
                stream: &o,
                drift: &[],
                scaling: &ScalingState::InProgress("UPDATING".into()),
                measured: &measured,
                activity: &activity,
                zones: &NO_ZONES,
            },
            &at(10),
        );
        let ready = get(&s, ConditionType::Ready);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", reason::UPDATING)
        );
        let ids: Vec<&str> = s.shards.iter().map(|s| s.shard_id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "shardId-000000000000",
                "shardId-000000000001",
                "shardId-000000000002",
                "shardId-000000000003"
            ]
        );
        assert_eq!(s.open_shard_count, Some(3));
        assert_eq!(s.shards[2].incoming_bytes_per_second, Some(1234.0));
        assert_eq!(s.shards[2].incoming_records_per_second, Some(10.0));
        assert_eq!(s.shards[1].incoming_bytes_per_second, None);
        assert_eq!(s.observed_rates, measured.stream_rates);
        assert_eq!(s.last_scaling_time, Some(at(5)));
        assert_eq!(s.autoscaling, activity.autoscaling);
    }

    #[test]
    fn replicas_are_listed_with_their_zones() {
        let zones: NodeZones = [(1, "zone-a"), (2, "zone-a"), (3, "zone-b")]
            .into_iter()
            .map(|(id, z)| (id, z.to_string()))
            .collect();
        let status = |o: &ObservedStream| {
            stream_status(
                Some(1),
                None,
                Observation::Observed {
                    stream: o,
                    drift: &[],
                    scaling: &ScalingState::Stable,
                    measured: &Measured::default(),
                    activity: &Activity::default(),
                    zones: &zones,
                },
                &at(10),
            )
        };
        let mut o = active(2);
        o.shards[0].replicas = vec![1, 2, 3];
        o.shards[1].replicas = vec![4, 5];
        let s = status(&o);
        assert_eq!(s.shards[0].replicas, ["1", "2", "3"]);
        assert_eq!(s.shards[0].replica_zones, ["zone-a", "zone-a", "zone-b"]);
        assert!(
            s.shards[1].replica_zones.is_empty(),
            "no replica with a known zone: no zones listed"
        );

        // A node whose zone is unknown is listed as "", keeping the lists parallel.
        o.shards[1].replicas = vec![4, 3];
        let s = status(&o);
        assert_eq!(s.shards[1].replica_zones, ["", "zone-b"]);
        let json = serde_json::to_value(&s.shards[0]).unwrap();
        assert_eq!(
            json["replicaZones"],
            serde_json::json!(["zone-a", "zone-a", "zone-b"])
        );

        // Read back from that status: the zones of the nodes it names, unknown ones left out.
        assert_eq!(
            zones_shown(&s),
            zones,
            "nodes 1-3 with their zones, node 4 without one"
        );
        let zoneless = stream_status(Some(1), None, observed(&o), &at(10));
        assert_eq!(zones_shown(&zoneless), NodeZones::new());
    }

    #[test]
    fn leaderless_shard_is_degraded() {
        let mut o = active(2);
        o.shards[1].leader = None;
        let s = stream_status(Some(1), None, observed(&o), &at(10));
        let degraded = get(&s, ConditionType::Degraded);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", reason::NO_LEADER)
        );
    }

    #[test]
    fn conflict_reports_owner_and_no_shards() {
        let s = stream_status(
            Some(1),
            None,
            Observation::Conflict {
                name: "orders",
                owner: Some("other/orders"),
            },
            &at(10),
        );
        let ready = get(&s, ConditionType::Ready);
        assert_eq!(ready.reason, reason::NAME_CONFLICT);
        assert!(ready.message.contains("other/orders"));
        assert!(s.shards.is_empty());
    }

    #[test]
    fn catalog_unavailable_is_unknown() {
        let s = stream_status(Some(1), None, Observation::CatalogUnavailable("no node"), &at(10));
        let ready = get(&s, ConditionType::Ready);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("Unknown", reason::CATALOG_UNAVAILABLE)
        );
    }
}
