//! Enhanced fan-out consumers of a stream: their catalog records, the catalog commands that
//! change them (pure, like the rest of [`Catalog::apply`]) and consumer ARNs.

use std::collections::BTreeMap;

use super::Catalog;
use super::CatalogReply;
use super::StreamStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConsumerStatus {
    Creating,
    Active,
    Deleting,
}

impl ConsumerStatus {
    pub fn aws_name(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Active => "ACTIVE",
            ConsumerStatus::Deleting => "DELETING",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsumerRecord {
    pub name: String,
    pub status: ConsumerStatus,
    pub created_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl ConsumerRecord {
    /// The creation time as the consumer ARN carries it (epoch seconds).
    pub fn created_secs(&self) -> i64 {
        self.created_ms.div_euclid(1000)
    }
}

/// The parts of `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<secs>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerArn {
    pub region: String,
    pub account: String,
    pub stream: String,
    pub consumer: String,
    pub created_secs: i64,
}

impl ConsumerArn {
    pub fn format(region: &str, account: &str, stream: &str, consumer: &str, created_secs: i64) -> String {
        format!("arn:aws:kinesis:{region}:{account}:stream/{stream}/consumer/{consumer}:{created_secs}")
    }

    /// Parses a consumer ARN; `None` when it is not one.
    pub fn parse(arn: &str) -> Option<ConsumerArn> {
        let rest = arn.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        let partition = parts.next()?;
        let service = parts.next()?;
        let region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        if !partition.starts_with("aws") || service != "kinesis" {
            return None;
        }
        let resource = resource.strip_prefix("stream/")?;
        let (stream, consumer) = resource.split_once("/consumer/")?;
        let (consumer, secs) = consumer.rsplit_once(':')?;
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        };
        if !name_ok(stream)
            || !name_ok(consumer)
            || secs.is_empty()
            || !secs.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(ConsumerArn {
            region: region.to_owned(),
            account: account.to_owned(),
            stream: stream.to_owned(),
            consumer: consumer.to_owned(),
            created_secs: secs.parse().ok()?,
        })
    }
}

impl Catalog {
    /// RegisterStreamConsumer: adds `name` as CREATING, unless it exists (AlreadyExists), the
    /// stream is gone or not ACTIVE/UPDATING, or the stream has `limit` consumers already.
    pub(super) fn register_consumer(
        &mut self,
        stream: &str,
        name: &str,
        tags: BTreeMap<String, String>,
        limit: u32,
        now_ms: i64,
    ) -> CatalogReply {
        let Some(s) = self.streams.get_mut(stream) else {
            return CatalogReply::NotFound;
        };
        if !matches!(s.status, StreamStatus::Active | StreamStatus::Updating) {
            return CatalogReply::Conflict(format!("stream is {:?}", s.status));
        }
        if s.consumers.contains_key(name) {
            return CatalogReply::AlreadyExists;
        }
        if s.consumers.len() >= limit as usize {
            return CatalogReply::Conflict("consumer limit".into());
        }
        s.consumers.insert(
            name.to_owned(),
            ConsumerRecord {
                name: name.to_owned(),
                status: ConsumerStatus::Creating,
                created_ms: now_ms,
                tags,
            },
        );
        CatalogReply::Done
    }

    /// Moves a consumer (created at `created_ms`, so that a newer namesake is left alone) to
    /// `status`.
    pub(super) fn set_consumer_status(
        &mut self,
        stream: &str,
        name: &str,
        created_ms: i64,
        status: ConsumerStatus,
    ) -> CatalogReply {
        match self
            .streams
            .get_mut(stream)
            .and_then(|s| s.consumers.get_mut(name))
            .filter(|c| c.created_ms == created_ms)
        {
            Some(c) => {
                c.status = status;
                CatalogReply::Done
            }
            None => CatalogReply::NotFound,
        }
    }

    pub(super) fn remove_consumer(&mut self, stream: &str, name: &str, created_ms: i64) -> CatalogReply {
        let Some(s) = self.streams.get_mut(stream) else {
            return CatalogReply::NotFound;
        };
        match s.consumers.get(name) {
            Some(c) if c.created_ms == created_ms => {
                s.consumers.remove(name);
                CatalogReply::Done
            }
            _ => CatalogReply::NotFound,
        }
    }

    pub(super) fn set_consumer_tags(
        &mut self,
        stream: &str,
        name: &str,
        add: BTreeMap<String, String>,
        remove: Vec<String>,
    ) -> CatalogReply {
        match self
            .streams
            .get_mut(stream)
            .and_then(|s| s.consumers.get_mut(name))
        {
            Some(c) => {
                super::change_tags(&mut c.tags, add, remove);
                CatalogReply::Done
            }
            None => CatalogReply::NotFound,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::catalog::CatalogCommand;
    use crate::catalog::StreamMode;

    #[test]
    fn arns_round_trip_and_reject_other_resources() {
        let arn = ConsumerArn::format("us-east-1", "000000000000", "s1", "app.v-2", 1_700_000_000);
        assert_eq!(
            arn,
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/app.v-2:1700000000"
        );
        let p = ConsumerArn::parse(&arn).unwrap();
        assert_eq!(
            (
                p.region.as_str(),
                p.account.as_str(),
                p.stream.as_str(),
                p.consumer.as_str(),
                p.created_secs
            ),
            ("us-east-1", "000000000000", "s1", "app.v-2", 1_700_000_000)
        );
        for bad in [
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/c",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/c:x1",
            "arn:aws:s3:us-east-1:000000000000:stream/s1/consumer/c:1",
            "arn:aws:kinesis:us-east-1:000000000000:stream//consumer/c:1",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/c d:1",
            "nonsense",
        ] {
            assert_eq!(ConsumerArn::parse(bad), None, "{bad}");
        }
    }

    fn active_stream(c: &mut Catalog) {
        c.apply(CatalogCommand::CreateStream {
            name: "s".into(),
            mode: StreamMode::Provisioned,
            shard_count: 1,
            retention_hours: 24,
            tags: BTreeMap::new(),
            placement: vec![vec![1]],
            now_ms: 1,
            max_record_size_kib: None,
        });
        c.apply(CatalogCommand::SetStatus {
            name: "s".into(),
            status: StreamStatus::Active,
            now_ms: 2,
        });
    }

    fn register(name: &str, now_ms: i64) -> CatalogCommand {
        CatalogCommand::RegisterConsumer {
            stream: "s".into(),
            name: name.into(),
            tags: BTreeMap::new(),
            limit: 2,
            now_ms,
        }
    }

    #[test]
    fn register_activate_limit_and_remove() {
        let mut c = Catalog::default();
        assert_eq!(c.apply(register("a", 10)), CatalogReply::NotFound);
        active_stream(&mut c);
        assert_eq!(c.apply(register("a", 10)), CatalogReply::Done);
        assert_eq!(c.apply(register("a", 11)), CatalogReply::AlreadyExists);
        assert_eq!(c.apply(register("b", 12)), CatalogReply::Done);
        assert!(matches!(c.apply(register("c", 13)), CatalogReply::Conflict(_)));
        let activate = |created_ms| CatalogCommand::SetConsumerStatus {
            stream: "s".into(),
            name: "a".into(),
            created_ms,
            status: ConsumerStatus::Active,
        };
        // A command for an older namesake changes nothing.
        assert_eq!(c.apply(activate(9)), CatalogReply::NotFound);
        assert_eq!(c.apply(activate(10)), CatalogReply::Done);
        let s = c.stream("s").unwrap();
        assert_eq!(s.consumers["a"].status, ConsumerStatus::Active);
        assert_eq!(s.consumers["b"].status, ConsumerStatus::Creating);
        let remove = CatalogCommand::RemoveConsumer {
            stream: "s".into(),
            name: "a".into(),
            created_ms: 10,
        };
        assert_eq!(c.apply(remove.clone()), CatalogReply::Done);
        assert_eq!(c.apply(remove), CatalogReply::NotFound);
        assert_eq!(c.apply(register("c", 14)), CatalogReply::Done);
        assert_eq!(c.stream("s").unwrap().consumers.len(), 2);
    }

    #[test]
    fn old_records_without_consumers_still_load() {
        let mut c = Catalog::default();
        active_stream(&mut c);
        // (Through text: hash keys are u128, which serde_json's Value cannot hold.)
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains(",\"consumers\":{}"));
        let json = json.replace(",\"consumers\":{}", "");
        let back: Catalog = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
