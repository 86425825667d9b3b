//! Delivery streams (Firehose): their catalog records and the catalog commands that change them
//! (pure, like the rest of [`Catalog::apply`]). There is no delivery engine yet: a record is
//! the declared spec, kept so that the engine (and users) find it in the catalog.

use super::Catalog;
use super::CatalogReply;

/// Where a delivery stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeliveryStreamStatus {
    /// Stored in the catalog; no delivery engine runs it yet.
    Declared,
}

impl DeliveryStreamStatus {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryStreamStatus::Declared => "DECLARED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryStreamRecord {
    pub name: String,
    /// The spec as its declarer sent it: a JSON object, kept verbatim.
    pub spec_json: String,
    pub status: DeliveryStreamStatus,
    pub created_ms: i64,
    /// When the spec last changed (`created_ms` until it does).
    pub updated_ms: i64,
}

impl Catalog {
    pub fn delivery_stream(&self, name: &str) -> Option<&DeliveryStreamRecord> {
        self.delivery_streams.get(name)
    }

    /// Creates the delivery stream, or replaces its spec. The same spec again changes nothing
    /// (not even `updated_ms`).
    pub(super) fn put_delivery_stream(&mut self, name: &str, spec_json: String, now_ms: i64) -> CatalogReply {
        match self.delivery_streams.get_mut(name) {
            Some(d) if d.spec_json == spec_json => {}
            Some(d) => {
                d.spec_json = spec_json;
                d.updated_ms = now_ms;
            }
            None => {
                self.delivery_streams.insert(
                    name.to_owned(),
                    DeliveryStreamRecord {
                        name: name.to_owned(),
                        spec_json,
                        status: DeliveryStreamStatus::Declared,
                        created_ms: now_ms,
                        updated_ms: now_ms,
                    },
                );
            }
        }
        CatalogReply::Done
    }

    pub(super) fn remove_delivery_stream(&mut self, name: &str) -> CatalogReply {
        match self.delivery_streams.remove(name) {
            Some(_) => CatalogReply::Done,
            None => CatalogReply::NotFound,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::catalog::CatalogCommand;

    fn put(name: &str, spec: &str, now_ms: i64) -> CatalogCommand {
        CatalogCommand::PutDeliveryStream {
            name: name.into(),
            spec_json: spec.into(),
            now_ms,
        }
    }

    #[test]
    fn put_creates_replaces_and_is_idempotent() {
        let mut c = Catalog::default();
        assert_eq!(c.apply(put("d", r#"{"a":1}"#, 10)), CatalogReply::Done);
        assert_eq!(c.apply(put("d", r#"{"a":1}"#, 20)), CatalogReply::Done);
        let d = c.delivery_stream("d").unwrap();
        assert_eq!(
            (d.status, d.created_ms, d.updated_ms),
            (DeliveryStreamStatus::Declared, 10, 10)
        );
        assert_eq!(c.apply(put("d", r#"{"a":2}"#, 30)), CatalogReply::Done);
        let d = c.delivery_stream("d").unwrap();
        assert_eq!(
            (d.spec_json.as_str(), d.created_ms, d.updated_ms),
            (r#"{"a":2}"#, 10, 30)
        );
        let remove = CatalogCommand::RemoveDeliveryStream { name: "d".into() };
        assert_eq!(c.apply(remove.clone()), CatalogReply::Done);
        assert_eq!(c.apply(remove), CatalogReply::NotFound);
        assert!(c.delivery_streams.is_empty());
    }

    #[test]
    fn catalogs_written_before_delivery_streams_still_load() {
        // A catalog as the previous build wrote it: no `delivery_streams` member.
        let old = r#"{"streams":{},"next_group":7,"draining":[]}"#;
        let c: Catalog = serde_json::from_str(old).unwrap();
        assert_eq!((c.next_group, c.delivery_streams.len()), (7, 0));
        // And one with delivery streams round-trips.
        let mut c = c;
        c.apply(put("d", r#"{"x":"y"}"#, 1));
        let back: Catalog = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
