//! Pure reconciliation of a `Stream`'s `spec.consumers` with the stream's registered enhanced
//! fan-out consumers.
//!
//! A resource manages the consumers its spec lists and those it registered earlier (its status
//! lists them) until they are gone. It registers what the spec lists and the stream lacks, and
//! deregisters what it managed and the spec no longer lists. Consumers registered through the
//! API (a KCL application registers its own) are neither listed in status nor ever touched.

use std::collections::BTreeSet;
use std::fmt;

use crate::crd::ConsumerStatus;
use crate::observed::ObservedConsumer;

const DELETING: &str = "DELETING";
const ACTIVE: &str = "ACTIVE";

/// One admin call towards the declared consumers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsumerChange {
    Register(String),
    Deregister(String),
}

impl fmt::Display for ConsumerChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConsumerChange::Register(name) => write!(f, "RegisterStreamConsumer {name}"),
            ConsumerChange::Deregister(name) => write!(f, "DeregisterStreamConsumer {name}"),
        }
    }
}

/// The names a resource manages: its spec's, and those its last status listed.
pub fn managed(spec: &[String], previous: &[ConsumerStatus]) -> BTreeSet<String> {
    spec.iter()
        .cloned()
        .chain(previous.iter().map(|c| c.consumer_name.clone()))
        .collect()
}

/// The calls that bring `listed` to `spec`. A consumer still DELETING under a name the spec
/// lists is registered again once it is gone; one already DELETING is not deregistered twice.
pub fn changes(
    spec: &[String],
    previous: &[ConsumerStatus],
    listed: &[ObservedConsumer],
) -> Vec<ConsumerChange> {
    let wanted: BTreeSet<&str> = spec.iter().map(String::as_str).collect();
    let register = wanted
        .iter()
        .filter(|name| !listed.iter().any(|c| c.name == **name))
        .map(|name| ConsumerChange::Register((*name).to_string()));
    let deregister = previous
        .iter()
        .map(|c| c.consumer_name.as_str())
        .filter(|name| !wanted.contains(name))
        .filter(|name| listed.iter().any(|c| c.name == *name && c.status != DELETING))
        .map(|name| ConsumerChange::Deregister(name.to_string()));
    register.chain(deregister).collect()
}

/// The status list: every listed consumer the resource manages, by name.
pub fn status(
    spec: &[String],
    previous: &[ConsumerStatus],
    listed: &[ObservedConsumer],
) -> Vec<ConsumerStatus> {
    let managed = managed(spec, previous);
    let mut out: Vec<ConsumerStatus> = listed
        .iter()
        .filter(|c| managed.contains(&c.name))
        .map(|c| ConsumerStatus {
            consumer_name: c.name.clone(),
            consumer_arn: c.arn.clone(),
            consumer_status: c.status.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.consumer_name.cmp(&b.consumer_name));
    out
}

/// True when every declared consumer is ACTIVE and no managed one is still going away.
pub fn settled(spec: &[String], status: &[ConsumerStatus]) -> bool {
    spec.iter().all(|name| {
        status
            .iter()
            .any(|c| &c.consumer_name == name && c.consumer_status == ACTIVE)
    }) && status.iter().all(|c| spec.contains(&c.consumer_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(items: &[(&str, &str)]) -> Vec<ObservedConsumer> {
        items
            .iter()
            .map(|(name, status)| ObservedConsumer {
                name: (*name).into(),
                arn: format!("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/{name}:1"),
                status: (*status).into(),
            })
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn registers_what_the_spec_lists_and_the_stream_lacks() {
        let spec = names(&["fraud", "audit"]);
        let got = changes(&spec, &[], &listed(&[("audit", ACTIVE)]));
        assert_eq!(got, vec![ConsumerChange::Register("fraud".into())]);
    }

    #[test]
    fn consumers_registered_through_the_api_are_left_alone() {
        // "kcl-app" was never in this resource's spec or status.
        let got = changes(
            &names(&["fraud"]),
            &[],
            &listed(&[("fraud", ACTIVE), ("kcl-app", ACTIVE)]),
        );
        assert!(got.is_empty());
        let st = status(
            &names(&["fraud"]),
            &[],
            &listed(&[("fraud", ACTIVE), ("kcl-app", ACTIVE)]),
        );
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].consumer_name, "fraud");
    }

    #[test]
    fn a_consumer_dropped_from_the_spec_is_deregistered_once_and_listed_until_gone() {
        let before = status(
            &names(&["fraud", "audit"]),
            &[],
            &listed(&[("fraud", ACTIVE), ("audit", ACTIVE)]),
        );
        let spec = names(&["fraud"]);
        let now = listed(&[("fraud", ACTIVE), ("audit", ACTIVE)]);
        assert_eq!(
            changes(&spec, &before, &now),
            vec![ConsumerChange::Deregister("audit".into())]
        );
        // While it is DELETING: no second call, still in status, not settled.
        let deleting = listed(&[("fraud", ACTIVE), ("audit", DELETING)]);
        assert!(changes(&spec, &before, &deleting).is_empty());
        let st = status(&spec, &before, &deleting);
        assert_eq!(st.len(), 2);
        assert!(!settled(&spec, &st));
        // Gone: no longer managed.
        let gone = listed(&[("fraud", ACTIVE)]);
        let st = status(&spec, &st, &gone);
        assert_eq!(st.len(), 1);
        assert!(settled(&spec, &st));
        assert!(changes(&spec, &st, &gone).is_empty());
    }

    #[test]
    fn a_name_still_deleting_is_registered_again_once_gone() {
        let spec = names(&["fraud"]);
        assert!(changes(&spec, &[], &listed(&[("fraud", DELETING)])).is_empty());
        assert_eq!(
            changes(&spec, &[], &listed(&[])),
            vec![ConsumerChange::Register("fraud".into())]
        );
    }

    #[test]
    fn creating_consumers_are_not_settled() {
        let spec = names(&["fraud"]);
        let st = status(&spec, &[], &listed(&[("fraud", "CREATING")]));
        assert!(!settled(&spec, &st));
    }
}
