//! Stream names, ARNs and shard ids.

use std::fmt;

/// A validated stream name: 1-128 characters of `[a-zA-Z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct StreamName(String);

impl StreamName {
    pub const PATTERN: &'static str = "[a-zA-Z0-9_.-]+";

    pub fn parse(s: &str) -> Option<StreamName> {
        let ok = (1..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        ok.then(|| StreamName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn arn(&self, region: &str, account: &str) -> String {
        format!("arn:aws:kinesis:{region}:{account}:stream/{}", self.0)
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A shard's index within its stream; displayed as `shardId-000000000000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ShardId(pub u32);

impl ShardId {
    const PREFIX: &'static str = "shardId-";

    /// Accepts `shardId-000000000001` and, as Kinesis does, the bare number part.
    pub fn parse(s: &str) -> Option<ShardId> {
        let digits = s.strip_prefix(Self::PREFIX).unwrap_or(s);
        if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u32>().ok().map(ShardId)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:012}", Self::PREFIX, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert!(StreamName::parse("my-stream_1.x").is_some());
        assert!(StreamName::parse("").is_none());
        assert!(StreamName::parse("has space").is_none());
        assert!(StreamName::parse(&"a".repeat(128)).is_some());
        assert!(StreamName::parse(&"a".repeat(129)).is_none());
    }

    #[test]
    fn arn_format() {
        let n = StreamName::parse("s").unwrap();
        assert_eq!(
            n.arn("us-east-1", "000000000000"),
            "arn:aws:kinesis:us-east-1:000000000000:stream/s"
        );
    }

    #[test]
    fn shard_ids() {
        assert_eq!(ShardId(7).to_string(), "shardId-000000000007");
        assert_eq!(ShardId::parse("shardId-000000000007"), Some(ShardId(7)));
        assert_eq!(ShardId::parse("7"), Some(ShardId(7)));
        assert_eq!(ShardId::parse("shardId-x"), None);
        assert_eq!(ShardId::parse("shardId-0000000000001"), None);
    }
}
