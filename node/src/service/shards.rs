//! Shard listings (DescribeStream paging, ListShards with its filters and tokens), stream
//! identity by name or ARN, and the positions shard iterators carry.

use base64::Engine;

use super::PositionInput;
use super::ServiceError;
use super::ShardDescription;
use super::StreamDescription;
use super::StreamService;
use super::call_limits::CallTarget;
use super::records::ReadFailure;
use crate::capacity::api_limits::ApiCall;
use crate::capacity::shard_admission::ReadAdmission;
use crate::capacity::throughput::Throttling;
use crate::catalog::StreamStatus;
use crate::clock;
use crate::model::ShardId;
use crate::shard::Cursor;

/// Shards DescribeStream returns when no Limit is given.
pub const DESCRIBE_DEFAULT_LIMIT: usize = 100;
/// Shards ListShards returns when no MaxResults is given.
pub const LIST_SHARDS_DEFAULT_LIMIT: usize = 1000;
/// How long a ListShards NextToken stays valid.
pub const NEXT_TOKEN_TTL_MS: i64 = 300_000;

/// Which shards ListShards returns (its `ShardFilter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardFilter {
    AfterShardId(String),
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    /// Milliseconds since the epoch.
    AtTimestamp(i64),
    FromTimestamp(i64),
}

#[derive(Clone, Debug, Default)]
pub struct ListShardsInput {
    pub stream_name: Option<String>,
    pub next_token: Option<String>,
    pub exclusive_start_shard_id: Option<String>,
    pub max_results: Option<usize>,
    pub stream_creation_ms: Option<i64>,
    pub filter: Option<ShardFilter>,
}

#[derive(Clone, Debug)]
pub struct ListShardsOutput {
    pub shards: Vec<ShardDescription>,
    pub next_token: Option<String>,
}

/// Where a shard iterator points: everything the AWS front end seals into the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IteratorPosition {
    pub stream_name: String,
    pub shard_index: u32,
    /// Creation time of the shard, so that an iterator of a deleted and re-created stream of the
    /// same name is not taken for one of the new stream.
    pub shard_created_ms: i64,
    pub cursor: Cursor,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NextToken {
    s: String,
    c: i64,
    a: u32,
    i: i64,
}

impl StreamService {
    /// The stream a request names by `StreamName`, `StreamARN` or both.
    pub fn stream_identity(&self, name: Option<&str>, arn: Option<&str>) -> Result<String, ServiceError> {
        let from_arn = match arn {
            None => None,
            Some(arn) => {
                let cfg = self.config();
                let rest = arn.strip_prefix("arn:").unwrap_or_default();
                let parts: Vec<&str> = rest.splitn(5, ':').collect();
                let (region, account, resource) = match parts.as_slice() {
                    [_, "kinesis", region, account, resource] => (*region, *account, *resource),
                    _ => {
                        return Err(ServiceError::InvalidArgument(format!("Invalid StreamARN {arn}.")));
                    }
                };
                let Some(stream) = resource.strip_prefix("stream/") else {
                    return Err(ServiceError::InvalidArgument(format!("Invalid StreamARN {arn}.")));
                };
                if region != cfg.region || account != cfg.account {
                    return Err(ServiceError::ResourceNotFound(format!(
                        "Stream {stream} under account {account} not found."
                    )));
                }
                Some(stream.to_owned())
            }
        };
        match (name, from_arn) {
            (Some(n), Some(a)) if n != a => Err(ServiceError::InvalidArgument(format!(
                "StreamARN {} and StreamName {n} do not name the same stream.",
                arn.unwrap_or_default()
            ))),
            (Some(n), _) => Ok(n.to_owned()),
            (None, Some(a)) => Ok(a),
            (None, None) => Err(ServiceError::InvalidArgument(
                "Either StreamName or StreamARN must be provided.".into(),
            )),
        }
    }

    /// DescribeStream with its paging: at most `limit` shards after `exclusive_start`.
    /// Returns the description (with the page of shards) and HasMoreShards.
    pub fn describe_stream_page(
        &self,
        name: &str,
        limit: Option<usize>,
        exclusive_start: Option<&str>,
    ) -> Result<(StreamDescription, bool), ServiceError> {
        self.admit_call(ApiCall::DescribeStream, CallTarget::stream(name))?;
        let mut d = self.describe_stream(name)?;
        let start = exclusive_start.map(|s| ShardId::parse(s).map_or(i64::MAX, |id| i64::from(id.0)));
        let limit = limit.unwrap_or(DESCRIBE_DEFAULT_LIMIT);
        let after: Vec<ShardDescription> = d
            .shards
            .into_iter()
            .filter(|s| start.is_none_or(|st| i64::from(s.shard_id.0) > st))
            .collect();
        let more = after.len() > limit;
        d.shards = after.into_iter().take(limit).collect();
        Ok((d, more))
    }

    pub fn list_shards(&self, input: ListShardsInput) -> Result<ListShardsOutput, ServiceError> {
        let now = clock::now_ms();
        let (name, after, created) = match (&input.next_token, &input.stream_name) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::InvalidArgument(
                    "NextToken and StreamName cannot be provided together.".into(),
                ));
            }
            (Some(t), None) => {
                if input.exclusive_start_shard_id.is_some() || input.filter.is_some() {
                    return Err(ServiceError::InvalidArgument(
                        "NextToken cannot be provided together with ExclusiveStartShardId or ShardFilter."
                            .into(),
                    ));
                }
                let tok = decode_token(t)
                    .ok_or_else(|| ServiceError::InvalidArgument(format!("Invalid NextToken: {t}.")))?;
                if now - tok.i > NEXT_TOKEN_TTL_MS {
                    return Err(ServiceError::ExpiredNextToken(format!(
                        "The NextToken {t} has expired."
                    )));
                }
                (tok.s, Some(i64::from(tok.a)), Some(tok.c))
            }
            (None, Some(n)) => (n.clone(), None, input.stream_creation_ms),
            (None, None) => {
                return Err(ServiceError::InvalidArgument(
                    "Either NextToken or StreamName should be provided.".into(),
                ));
            }
        };
        self.admit_call(ApiCall::ListShards, CallTarget::stream(&name))?;
        let record = self.stream_record(&name)?;
        if created.is_some_and(|c| c / 1000 != record.created_ms / 1000) {
            return Err(self.not_found(&name));
        }
        if record.status != StreamStatus::Active && record.status != StreamStatus::Updating {
            return Err(ServiceError::ResourceInUse(format!(
                "Stream {name} under account {} not ACTIVE, instead in state {}",
                self.config().account,
                record.status.aws_name()
            )));
        }
        let start_id = |s: &str| ShardId::parse(s).map_or(i64::MAX, |id| i64::from(id.0));
        let mut after = after.or(input.exclusive_start_shard_id.as_deref().map(start_id));
        // The oldest time the stream can hold data from.
        let trim_horizon = (now - i64::from(record.retention_hours) * 3_600_000).max(record.created_ms);
        let shards = self.describe_stream(&name)?.shards;
        let keep = |s: &ShardDescription| -> bool {
            let sh = record.shard(s.shard_id.0);
            let open = s.ending_sequence_number.is_none();
            let created = sh.map_or(0, |r| r.created_ms);
            // A closed shard was open until it closed (shards closed before resharding
            // recorded the time count as closed at creation).
            let closed = sh.and_then(|r| r.ending_log_index.map(|_| r.closed_ms.unwrap_or(r.created_ms)));
            let open_at = |t: i64| created <= t && closed.is_none_or(|c| c >= t);
            match &input.filter {
                None | Some(ShardFilter::AfterShardId(_)) => true,
                Some(ShardFilter::AtLatest) => open,
                Some(ShardFilter::AtTrimHorizon) => open_at(trim_horizon),
                Some(ShardFilter::FromTrimHorizon) => closed.is_none_or(|c| c >= trim_horizon),
                Some(ShardFilter::AtTimestamp(ts)) => open_at(*ts),
                Some(ShardFilter::FromTimestamp(ts)) => closed.is_none_or(|c| c >= *ts),
            }
        };
        if let Some(ShardFilter::AfterShardId(id)) = &input.filter {
            after = Some(after.unwrap_or(i64::MIN).max(start_id(id)));
        }
        let limit = input.max_results.unwrap_or(LIST_SHARDS_DEFAULT_LIMIT);
        let selected: Vec<ShardDescription> = shards
            .into_iter()
            .filter(|s| after.is_none_or(|a| i64::from(s.shard_id.0) > a))
            .filter(keep)
            .collect();
        let more = selected.len() > limit;
        let page: Vec<ShardDescription> = selected.into_iter().take(limit).collect();
        let next_token = match (more, page.last()) {
            (true, Some(last)) => Some(encode_token(&NextToken {
                s: name.clone(),
                c: record.created_ms,
                a: last.shard_id.0,
                i: now,
            })),
            _ => None,
        };
        Ok(ListShardsOutput {
            shards: page,
            next_token,
        })
    }

    /// GetShardIterator's parameters as a position, with AWS's checks of which combinations
    /// are allowed.
    pub fn iterator_request(
        kind: &str,
        starting_sequence_number: Option<&str>,
        timestamp_ms: Option<i64>,
    ) -> Result<PositionInput, ServiceError> {
        let combination = |what: &str| {
            ServiceError::InvalidArgument(format!(
                "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} and {what} StartingSequenceNumber."
            ))
        };
        match (kind, starting_sequence_number) {
            ("TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP", Some(_)) => Err(combination("also a")),
            ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => Err(combination("no")),
            ("TRIM_HORIZON", None) => Ok(PositionInput::TrimHorizon),
            ("LATEST", None) => Ok(PositionInput::Latest),
            ("AT_SEQUENCE_NUMBER", Some(s)) => Ok(PositionInput::AtSequenceNumber(s.to_owned())),
            ("AFTER_SEQUENCE_NUMBER", Some(s)) => Ok(PositionInput::AfterSequenceNumber(s.to_owned())),
            ("AT_TIMESTAMP", None) => timestamp_ms.map(PositionInput::AtTimestamp).ok_or_else(|| {
                ServiceError::InvalidArgument(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.".into(),
                )
            }),
            (other, _) => Err(ServiceError::InvalidArgument(format!(
                "Invalid ShardIteratorType {other}."
            ))),
        }
    }

    /// GetShardIterator: resolves the requested position in a shard to a cursor.
    pub async fn shard_iterator_position(
        &self,
        stream_name: &str,
        shard_id: &str,
        position: PositionInput,
    ) -> Result<IteratorPosition, ServiceError> {
        let shard = self.read_target(stream_name, shard_id)?;
        let target = CallTarget {
            stream: Some(stream_name),
            shard: Some(&shard),
            consumer: None,
        };
        if let PositionInput::AtTimestamp(ts) = position {
            let now = clock::now_ms();
            if ts > now {
                return Err(ServiceError::InvalidArgument(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {ts}, currentTimestampInMillis: {now}"
                )));
            }
        }
        // GetShardIterator's per-shard limit is kept by the shard's leader, which resolves
        // the position.
        let admission = if self.config().throttling == Throttling::Off {
            ReadAdmission::Unlimited
        } else {
            ReadAdmission::GetShardIterator
        };
        let cursor = match self.resolve_cursor(&shard, &position, admission).await {
            Ok(cursor) => cursor,
            Err(ReadFailure::Throttled) => return Err(self.call_refused(ApiCall::GetShardIterator, &target)),
            Err(ReadFailure::Service(e)) => return Err(e),
        };
        Ok(IteratorPosition {
            stream_name: stream_name.to_owned(),
            shard_index: shard.index,
            shard_created_ms: shard.created_ms,
            cursor,
        })
    }

    /// Checks that an iterator's shard still exists (and is the same shard) before reading.
    pub fn check_iterator_target(&self, pos: &IteratorPosition) -> Result<(), ServiceError> {
        let record = self.stream_record(&pos.stream_name)?;
        match record.shard(pos.shard_index) {
            Some(s) if s.created_ms == pos.shard_created_ms => Ok(()),
            _ => Err(ServiceError::ResourceNotFound(format!(
                "Shard {} in stream {} under account {} does not exist",
                ShardId(pos.shard_index),
                pos.stream_name,
                self.config().account
            ))),
        }
    }
}

fn encode_token(t: &NextToken) -> String {
    let json = serde_json::to_vec(t).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_token(s: &str) -> Option<NextToken> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl StreamStatus {
    /// The name Kinesis uses (`ACTIVE`, ...).
    pub fn aws_name(&self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let t = NextToken {
            s: "a".into(),
            c: 5,
            a: 3,
            i: 7,
        };
        let d = decode_token(&encode_token(&t)).unwrap();
        assert_eq!((d.s, d.c, d.a, d.i), ("a".to_string(), 5, 3, 7));
        assert!(decode_token("!!").is_none());
    }
}
