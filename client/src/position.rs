//! Where a read starts in a shard.

use std::fmt;
use std::str::FromStr;

use runnel_proto::v1 as proto;
use runnel_proto::v1::position::Kind;

use crate::Error;

/// A position in a shard, as in Kinesis shard iterator types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Position {
    /// The oldest record still retained.
    TrimHorizon,
    /// Just after the newest record: only records added from now on.
    Latest,
    /// The record with this sequence number.
    AtSequenceNumber(String),
    /// The record after the one with this sequence number.
    AfterSequenceNumber(String),
    /// The first record that arrived at or after this time (milliseconds since the Unix epoch).
    AtTimestamp(i64),
}

impl Position {
    /// The sequence number this position names, if any.
    pub fn sequence_number(&self) -> Option<&str> {
        match self {
            Position::AtSequenceNumber(seq) | Position::AfterSequenceNumber(seq) => Some(seq),
            _ => None,
        }
    }

    /// Converts a position received from the server.
    pub fn from_proto(position: proto::Position) -> Result<Self, Error> {
        match position.kind {
            Some(Kind::TrimHorizon(_)) => Ok(Position::TrimHorizon),
            Some(Kind::Latest(_)) => Ok(Position::Latest),
            Some(Kind::AtSequenceNumber(seq)) => Ok(Position::AtSequenceNumber(seq)),
            Some(Kind::AfterSequenceNumber(seq)) => Ok(Position::AfterSequenceNumber(seq)),
            Some(Kind::AtTimestampMs(ms)) => Ok(Position::AtTimestamp(ms)),
            None => Err(Error::Protocol("position without a kind".to_string())),
        }
    }
}

impl From<Position> for proto::Position {
    fn from(position: Position) -> Self {
        let kind = match position {
            Position::TrimHorizon => Kind::TrimHorizon(proto::Empty {}),
            Position::Latest => Kind::Latest(proto::Empty {}),
            Position::AtSequenceNumber(seq) => Kind::AtSequenceNumber(seq),
            Position::AfterSequenceNumber(seq) => Kind::AfterSequenceNumber(seq),
            Position::AtTimestamp(ms) => Kind::AtTimestampMs(ms),
        };
        proto::Position { kind: Some(kind) }
    }
}

impl TryFrom<proto::Position> for Position {
    type Error = Error;

    fn try_from(position: proto::Position) -> Result<Self, Error> {
        Position::from_proto(position)
    }
}

/// Parses the command-line form: `trim-horizon`, `latest`, `at-seq:N`, `after-seq:N`,
/// `timestamp:RFC3339` or `timestamp:EPOCH_MS`.
impl FromStr for Position {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidPosition {
            input: input.to_string(),
            reason: reason.into(),
        };
        let lower = input.trim().to_ascii_lowercase();
        match lower.as_str() {
            "trim-horizon" | "trim_horizon" | "earliest" => return Ok(Position::TrimHorizon),
            "latest" => return Ok(Position::Latest),
            _ => {}
        }
        let Some((kind, value)) = input.trim().split_once(':') else {
            return Err(invalid(
                "expected trim-horizon, latest, at-seq:N, after-seq:N, timestamp:RFC3339 or timestamp:EPOCH_MS",
            ));
        };
        match kind.to_ascii_lowercase().as_str() {
            "at-seq" | "at-sequence-number" => {
                Ok(Position::AtSequenceNumber(sequence_number(value, &invalid)?))
            }
            "after-seq" | "after-sequence-number" => {
                Ok(Position::AfterSequenceNumber(sequence_number(value, &invalid)?))
            }
            "timestamp" | "at-timestamp" => Ok(Position::AtTimestamp(timestamp_ms(value, &invalid)?)),
            _ => Err(invalid("unknown kind; expected at-seq, after-seq or timestamp")),
        }
    }
}

fn sequence_number(value: &str, invalid: &dyn Fn(&str) -> Error) -> Result<String, Error> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("a sequence number is a decimal number"));
    }
    Ok(value.to_string())
}

fn timestamp_ms(value: &str, invalid: &dyn Fn(&str) -> Error) -> Result<i64, Error> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .map_err(|_| invalid("epoch milliseconds out of range"));
    }
    value
        .parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .map_err(|err| invalid(&format!("not an RFC 3339 time or epoch milliseconds ({err})")))
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::TrimHorizon => write!(f, "trim-horizon"),
            Position::Latest => write!(f, "latest"),
            Position::AtSequenceNumber(seq) => write!(f, "at-seq:{seq}"),
            Position::AfterSequenceNumber(seq) => write!(f, "after-seq:{seq}"),
            Position::AtTimestamp(ms) => write!(f, "timestamp:{ms}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Position {
        match s.parse() {
            Ok(p) => p,
            Err(err) => panic!("{s}: {err}"),
        }
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(parse("trim-horizon"), Position::TrimHorizon);
        assert_eq!(parse("TRIM_HORIZON"), Position::TrimHorizon);
        assert_eq!(parse("latest"), Position::Latest);
        assert_eq!(parse("at-seq:123"), Position::AtSequenceNumber("123".into()));
        assert_eq!(
            parse("after-seq:456"),
            Position::AfterSequenceNumber("456".into())
        );
        assert_eq!(
            parse("timestamp:1700000000123"),
            Position::AtTimestamp(1_700_000_000_123)
        );
        assert_eq!(
            parse("timestamp:2026-11-26T14:00:00.123Z"),
            Position::AtTimestamp(1_795_701_600_123)
        );
        assert_eq!(
            parse("timestamp:2026-11-26T15:00:00.123+01:00"),
            Position::AtTimestamp(1_795_701_600_123)
        );
    }

    #[test]
    fn rejects_bad_input_with_a_reason() {
        for bad in [
            "",
            "oldest",
            "at-seq:",
            "at-seq:12a",
            "after-seq:-1",
            "timestamp:yesterday",
            "foo:1",
        ] {
            let err = bad.parse::<Position>().err();
            assert!(matches!(err, Some(Error::InvalidPosition { .. })), "{bad} parsed");
        }
    }

    #[test]
    fn display_round_trips() {
        for p in [
            Position::TrimHorizon,
            Position::Latest,
            Position::AtSequenceNumber("1".into()),
            Position::AfterSequenceNumber("2".into()),
            Position::AtTimestamp(3),
        ] {
            assert_eq!(parse(&p.to_string()), p);
        }
    }

    #[test]
    fn converts_to_and_from_proto() {
        for p in [
            Position::TrimHorizon,
            Position::Latest,
            Position::AtSequenceNumber("49590338271490256608559692538361571095921575989136588898".into()),
            Position::AfterSequenceNumber("7".into()),
            Position::AtTimestamp(-5),
        ] {
            let wire: proto::Position = p.clone().into();
            assert_eq!(Position::try_from(wire).ok(), Some(p));
        }
        assert!(Position::from_proto(proto::Position { kind: None }).is_err());
        let wire: proto::Position = Position::Latest.into();
        assert_eq!(wire.kind, Some(Kind::Latest(proto::Empty {})));
    }
}
