//! `DeliveryStream` → catalog, the pure parts: the spec document the operator stores (with the
//! owner tag that marks it as this resource's), whose it is, and the status the reconciler
//! writes. Runnel has no delivery engine yet, so a stored delivery stream is `Stored=True` and
//! `Ready=False` (reason `NoDeliveryEngine`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::crd::ConditionType;
use crate::crd::DeliveryStream;
use crate::crd::DeliveryStreamStatus;
use crate::plan::OWNER_TAG;
use crate::status::condition;
use crate::status::reason;

/// What the catalog is sent for a delivery stream: its name and its spec as JSON, the owner
/// tag (`runnel.dev/owner: <namespace>/<name>`) added to the spec's tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogDeliveryStream {
    pub name: String,
    pub owner: String,
    pub spec_json: String,
}

impl CatalogDeliveryStream {
    /// None when the resource has no name or namespace.
    pub fn from_resource(ds: &DeliveryStream) -> Result<Option<CatalogDeliveryStream>, serde_json::Error> {
        let (Some(name), Some(ns)) = (ds.delivery_stream_name(), ds.namespace()) else {
            return Ok(None);
        };
        let owner = format!("{ns}/{}", ds.name_any());
        let mut spec = ds.spec.clone();
        // The catalog name is the resolved one, whether or not the spec named it.
        spec.delivery_stream_name = Some(name.to_string());
        spec.tags.insert(OWNER_TAG.to_string(), owner.clone());
        Ok(Some(CatalogDeliveryStream {
            name: name.to_string(),
            owner,
            spec_json: serde_json::to_string(&spec)?,
        }))
    }
}

/// The owner tag of a stored spec (None for a delivery stream not put by the operator).
pub fn owner_of(spec_json: &str) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_str(spec_json).ok()?;
    spec.get("tags")?.get(OWNER_TAG)?.as_str().map(str::to_string)
}

/// The name this resource stored its delivery stream under before, when `spec.deliveryStreamName`
/// changed since (from the ARN in its status): the entry to remove once the new one is stored.
pub fn renamed_from(previous: Option<&DeliveryStreamStatus>, name: &str) -> Option<String> {
    let arn = previous?.delivery_stream_arn.as_deref()?;
    let (_, old) = arn.rsplit_once(":deliverystream/")?;
    (!old.is_empty() && old != name).then(|| old.to_string())
}

/// What the reconciler learnt about one `DeliveryStream` in this pass.
#[derive(Clone, Copy, Debug)]
pub enum DeliveryObservation<'a> {
    /// Validation failed; the catalog was not called.
    InvalidSpec(&'a [String]),
    /// No node answered the admin API.
    CatalogUnavailable(&'a str),
    /// A delivery stream of that name is in the catalog and is not this resource's.
    Conflict { name: &'a str, owner: Option<&'a str> },
    /// The catalog holds the spec.
    Stored {
        arn: &'a str,
        /// As the catalog reports it (`DECLARED`).
        status: &'a str,
    },
}

/// The status to write for this observation (conditions Ready, Stored, Degraded).
pub fn delivery_status(
    generation: Option<i64>,
    previous: Option<&DeliveryStreamStatus>,
    observation: DeliveryObservation<'_>,
    now: &Time,
) -> DeliveryStreamStatus {
    let prev = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let c = |type_, status: &str, reason: &str, message: String| {
        condition(type_, status, reason, message, generation, prev, now)
    };
    let mut out = DeliveryStreamStatus {
        observed_generation: generation,
        ..previous.cloned().unwrap_or_default()
    };
    out.conditions = match observation {
        DeliveryObservation::InvalidSpec(errors) => {
            let message = errors.join("; ");
            vec![
                c(
                    ConditionType::Ready,
                    "False",
                    reason::INVALID_SPEC,
                    message.clone(),
                ),
                c(
                    ConditionType::Stored,
                    "False",
                    reason::INVALID_SPEC,
                    "the spec is invalid and was not stored (the catalog keeps any earlier version)".into(),
                ),
                c(ConditionType::Degraded, "True", reason::INVALID_SPEC, message),
            ]
        }
        DeliveryObservation::CatalogUnavailable(message) => {
            let message = format!("the catalog could not be reached: {message}");
            vec![
                c(
                    ConditionType::Ready,
                    "False",
                    reason::CATALOG_UNAVAILABLE,
                    message.clone(),
                ),
                c(
                    ConditionType::Stored,
                    "Unknown",
                    reason::CATALOG_UNAVAILABLE,
                    message.clone(),
                ),
                c(
                    ConditionType::Degraded,
                    "True",
                    reason::CATALOG_UNAVAILABLE,
                    message,
                ),
            ]
        }
        DeliveryObservation::Conflict { name, owner } => {
            let message = match owner {
                Some(o) => format!("delivery stream {name:?} in the catalog belongs to {o}"),
                None => format!(
                    "delivery stream {name:?} in the catalog is not managed by a DeliveryStream resource"
                ),
            };
            out.delivery_stream_arn = None;
            out.delivery_stream_status = None;
            vec![
                c(
                    ConditionType::Ready,
                    "False",
                    reason::NAME_CONFLICT,
                    message.clone(),
                ),
                c(
                    ConditionType::Stored,
                    "False",
                    reason::NAME_CONFLICT,
                    message.clone(),
                ),
                c(ConditionType::Degraded, "True", reason::NAME_CONFLICT, message),
            ]
        }
        DeliveryObservation::Stored { arn, status } => {
            out.delivery_stream_arn = Some(arn.to_string());
            out.delivery_stream_status = Some(status.to_string());
            vec![
                c(
                    ConditionType::Ready,
                    "False",
                    reason::NO_DELIVERY_ENGINE,
                    format!(
                        "stored in the catalog as {status}; Runnel has no delivery engine yet, so nothing is delivered"
                    ),
                ),
                c(
                    ConditionType::Stored,
                    "True",
                    reason::STORED,
                    "the spec is stored in the catalog".into(),
                ),
                c(
                    ConditionType::Degraded,
                    "False",
                    reason::AS_EXPECTED,
                    "spec is valid".into(),
                ),
            ]
        }
    };
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::crd::DeliveryDestination;
    use crate::crd::DeliverySource;
    use crate::crd::DeliveryStreamSpec;
    use crate::crd::S3Destination;
    use crate::status::find;

    fn resource(name: &str, spec_name: Option<&str>) -> DeliveryStream {
        let mut ds = DeliveryStream::new(
            name,
            DeliveryStreamSpec {
                delivery_stream_name: spec_name.map(str::to_string),
                source: DeliverySource {
                    stream_name: "orders".into(),
                },
                destination: DeliveryDestination {
                    s3: Some(S3Destination {
                        bucket: "archive".into(),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            },
        );
        ds.metadata.namespace = Some("shop".into());
        ds
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn the_catalog_spec_names_the_stream_and_its_owner() {
        let c = CatalogDeliveryStream::from_resource(&resource("to-s3", None))
            .unwrap()
            .unwrap();
        assert_eq!((c.name.as_str(), c.owner.as_str()), ("to-s3", "shop/to-s3"));
        assert_eq!(owner_of(&c.spec_json).as_deref(), Some("shop/to-s3"));
        let v: serde_json::Value = serde_json::from_str(&c.spec_json).unwrap();
        assert_eq!(v["deliveryStreamName"], "to-s3");
        assert_eq!(v["destination"]["s3"]["bucket"], "archive");
        // Deterministic: the same resource gives the same document (so puts are idempotent).
        let again = CatalogDeliveryStream::from_resource(&resource("to-s3", None))
            .unwrap()
            .unwrap();
        assert_eq!(again, c);

        let named = CatalogDeliveryStream::from_resource(&resource("r", Some("Archive.v2")))
            .unwrap()
            .unwrap();
        assert_eq!(
            (named.name.as_str(), named.owner.as_str()),
            ("Archive.v2", "shop/r")
        );

        let mut no_ns = resource("to-s3", None);
        no_ns.metadata.namespace = None;
        assert_eq!(CatalogDeliveryStream::from_resource(&no_ns).unwrap(), None);

        assert_eq!(owner_of("{}"), None);
        assert_eq!(owner_of("not json"), None);
        assert_eq!(owner_of(r#"{"tags":{"runnel.dev/owner":7}}"#), None);
    }

    #[test]
    fn stored_is_reported_and_not_ready() {
        let s = delivery_status(
            Some(3),
            None,
            DeliveryObservation::Stored {
                arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/d",
                status: "DECLARED",
            },
            &at(100),
        );
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(s.delivery_stream_status.as_deref(), Some("DECLARED"));
        assert!(s.delivery_stream_arn.is_some());
        let stored = find(&s.conditions, ConditionType::Stored).unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.reason.as_str()),
            ("True", "Stored")
        );
        let ready = find(&s.conditions, ConditionType::Ready).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "NoDeliveryEngine")
        );
        assert_eq!(ready.observed_generation, Some(3));

        // The same observation later: nothing changes (no status write), transition times kept.
        let again = delivery_status(
            Some(3),
            Some(&s),
            DeliveryObservation::Stored {
                arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/d",
                status: "DECLARED",
            },
            &at(200),
        );
        assert_eq!(again, s);
    }

    #[test]
    fn invalid_conflict_and_unavailable_are_not_stored() {
        let errors = vec!["bad".to_string()];
        let s = delivery_status(Some(1), None, DeliveryObservation::InvalidSpec(&errors), &at(1));
        let stored = find(&s.conditions, ConditionType::Stored).unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            find(&s.conditions, ConditionType::Degraded).unwrap().status,
            "True"
        );

        let s = delivery_status(
            Some(1),
            None,
            DeliveryObservation::Conflict {
                name: "d",
                owner: Some("other/d"),
            },
            &at(1),
        );
        let ready = find(&s.conditions, ConditionType::Ready).unwrap();
        assert_eq!(ready.reason, "NameConflict");
        assert!(ready.message.contains("other/d"), "{}", ready.message);

        let s = delivery_status(
            Some(1),
            None,
            DeliveryObservation::CatalogUnavailable("down"),
            &at(1),
        );
        let stored = find(&s.conditions, ConditionType::Stored).unwrap();
        assert_eq!(
            (stored.status.as_str(), stored.reason.as_str()),
            ("Unknown", "CatalogUnavailable")
        );
    }

    #[test]
    fn a_renamed_delivery_stream_names_its_old_entry() {
        let status = |arn: Option<&str>| DeliveryStreamStatus {
            delivery_stream_arn: arn.map(str::to_string),
            ..Default::default()
        };
        let arn = "arn:aws:firehose:us-east-1:000000000000:deliverystream/archive-v1";
        assert_eq!(
            renamed_from(Some(&status(Some(arn))), "archive-v2").as_deref(),
            Some("archive-v1")
        );
        assert_eq!(renamed_from(Some(&status(Some(arn))), "archive-v1"), None);
        assert_eq!(renamed_from(Some(&status(None)), "archive-v2"), None);
        assert_eq!(renamed_from(None, "archive-v2"), None);
        assert_eq!(renamed_from(Some(&status(Some("not an arn"))), "x"), None);
    }
}
