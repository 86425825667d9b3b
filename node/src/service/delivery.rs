//! Delivery streams (Firehose) in the catalog: put (create or replace the spec), describe,
//! list, delete. No delivery engine runs them yet; they are stored as declared.

use super::ServiceError;
use super::StreamService;
use super::admin::page_after;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::DeliveryStreamRecord;
use crate::catalog::DeliveryStreamStatus;
use crate::clock;

/// Firehose's bound on delivery stream names.
pub const MAX_DELIVERY_STREAM_NAME_LEN: usize = 64;
/// Largest spec document kept in the catalog (every catalog replica holds it in memory).
pub const MAX_DELIVERY_SPEC_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryStreamDescription {
    pub name: String,
    /// `arn:aws:firehose:<region>:<account>:deliverystream/<name>`.
    pub arn: String,
    pub status: DeliveryStreamStatus,
    pub spec_json: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Clone, Debug)]
pub struct ListDeliveryStreamsOutput {
    pub names: Vec<String>,
    pub has_more: bool,
}

/// A delivery stream name as Firehose accepts it: 1-64 of `[a-zA-Z0-9_.-]`.
pub fn check_delivery_stream_name(name: &str) -> Result<(), ServiceError> {
    let ok = (1..=MAX_DELIVERY_STREAM_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidArgument(format!(
            "Delivery stream name {name:?} is not valid: use 1 to {MAX_DELIVERY_STREAM_NAME_LEN} characters from [a-zA-Z0-9_.-]."
        )))
    }
}

/// A spec the catalog keeps: a JSON object of at most [`MAX_DELIVERY_SPEC_BYTES`].
pub fn check_delivery_spec(spec_json: &str) -> Result<(), ServiceError> {
    if spec_json.len() > MAX_DELIVERY_SPEC_BYTES {
        return Err(ServiceError::InvalidArgument(format!(
            "The delivery stream spec is {} bytes; at most {MAX_DELIVERY_SPEC_BYTES} are allowed.",
            spec_json.len()
        )));
    }
    match serde_json::from_str::<serde_json::Value>(spec_json) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(ServiceError::InvalidArgument(
            "The delivery stream spec must be a JSON object.".into(),
        )),
        Err(e) => Err(ServiceError::InvalidArgument(format!(
            "The delivery stream spec is not valid JSON: {e}."
        ))),
    }
}

impl StreamService {
    fn delivery_arn(&self, name: &str) -> String {
        let cfg = self.config();
        format!(
            "arn:aws:firehose:{}:{}:deliverystream/{name}",
            cfg.region, cfg.account
        )
    }

    fn describe_delivery(&self, d: &DeliveryStreamRecord) -> DeliveryStreamDescription {
        DeliveryStreamDescription {
            name: d.name.clone(),
            arn: self.delivery_arn(&d.name),
            status: d.status,
            spec_json: d.spec_json.clone(),
            created_ms: d.created_ms,
            updated_ms: d.updated_ms,
        }
    }

    fn delivery_not_found(&self, name: &str) -> ServiceError {
        ServiceError::ResourceNotFound(format!(
            "Delivery stream {name} under account {} not found.",
            self.config().account
        ))
    }

    /// Creates the delivery stream or replaces its spec. Putting the spec it already has
    /// proposes nothing.
    pub async fn put_delivery_stream(
        &self,
        name: &str,
        spec_json: String,
    ) -> Result<DeliveryStreamDescription, ServiceError> {
        check_delivery_stream_name(name)?;
        check_delivery_spec(&spec_json)?;
        let unchanged = self.inner.view.read(|c| {
            c.delivery_stream(name)
                .filter(|d| d.spec_json == spec_json)
                .map(|d| self.describe_delivery(d))
        });
        if let Some(d) = unchanged {
            return Ok(d);
        }
        let cmd = CatalogCommand::PutDeliveryStream {
            name: name.to_owned(),
            spec_json,
            now_ms: clock::now_ms(),
        };
        match self.propose(cmd).await? {
            CatalogReply::Done => self.describe_delivery_stream(name),
            other => Err(ServiceError::internal(format!(
                "unexpected catalog reply to PutDeliveryStream: {other:?}"
            ))),
        }
    }

    pub fn describe_delivery_stream(&self, name: &str) -> Result<DeliveryStreamDescription, ServiceError> {
        check_delivery_stream_name(name)?;
        self.inner
            .view
            .read(|c| c.delivery_stream(name).map(|d| self.describe_delivery(d)))
            .ok_or_else(|| self.delivery_not_found(name))
    }

    /// Names in order, strictly after `exclusive_start`; `limit` 1-10000 (default 100).
    pub fn list_delivery_streams(
        &self,
        exclusive_start: Option<&str>,
        limit: Option<u32>,
    ) -> Result<ListDeliveryStreamsOutput, ServiceError> {
        if let Some(l) = limit
            && !(1..=10_000).contains(&l)
        {
            return Err(ServiceError::InvalidArgument(format!(
                "limit {l} is out of range: use 1 to 10000."
            )));
        }
        if let Some(s) = exclusive_start {
            check_delivery_stream_name(s)?;
        }
        let limit = limit.unwrap_or(100) as usize;
        let (names, has_more) = self
            .inner
            .view
            .read(|c| page_after(c.delivery_streams.keys(), exclusive_start, limit));
        Ok(ListDeliveryStreamsOutput { names, has_more })
    }

    /// Removes the delivery stream from the catalog; NotFound when there is none.
    pub async fn delete_delivery_stream(&self, name: &str) -> Result<(), ServiceError> {
        check_delivery_stream_name(name)?;
        let cmd = CatalogCommand::RemoveDeliveryStream {
            name: name.to_owned(),
        };
        match self.propose(cmd).await? {
            CatalogReply::Done => Ok(()),
            CatalogReply::NotFound => Err(self.delivery_not_found(name)),
            other => Err(ServiceError::internal(format!(
                "unexpected catalog reply to DeleteDeliveryStream: {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_start_name() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            page_after(names.iter(), None, 2),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(page_after(names.iter(), Some("b"), 2), (vec!["c".into()], false));
        assert_eq!(page_after(names.iter(), Some("c"), 2), (vec![], false));
        assert!(!page_after(names.iter(), None, 3).1);
    }

    #[test]
    fn names_follow_firehose() {
        for ok in ["a", "to-s3", "A.b_c-9", &"x".repeat(64)] {
            assert_eq!(check_delivery_stream_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "has space", "slash/name", "ünïcode", &"x".repeat(65)] {
            assert!(
                matches!(
                    check_delivery_stream_name(bad),
                    Err(ServiceError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn specs_are_json_objects_of_bounded_size() {
        assert_eq!(check_delivery_spec(r#"{"source":{"streamName":"s"}}"#), Ok(()));
        assert_eq!(check_delivery_spec("{}"), Ok(()));
        for bad in ["", "[]", "\"s\"", "{", "null"] {
            assert!(
                matches!(check_delivery_spec(bad), Err(ServiceError::InvalidArgument(_))),
                "{bad}"
            );
        }
        let big = format!(r#"{{"k":"{}"}}"#, "x".repeat(MAX_DELIVERY_SPEC_BYTES));
        assert!(matches!(
            check_delivery_spec(&big),
            Err(ServiceError::InvalidArgument(_))
        ));
    }
}
