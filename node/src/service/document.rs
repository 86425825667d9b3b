//! Request documents checked against the Kinesis service model.
//!
//! The AWS front end decodes a request body (JSON 1.1 or CBOR 1.1) into a [`Doc`]; this module
//! checks it against the operation's input shape ([`super::shapes`], derived from botocore):
//! [`coerce`] gives wrong JSON types as SerializationException messages and turns base64
//! strings and epoch numbers into blobs and timestamps; [`validate`] gives the constraint
//! violations (required members, lengths, ranges, patterns, enums) in AWS's order and format.

use std::sync::OnceLock;

use base64::Engine;
use bytes::Bytes;
use regex::Regex;

use super::ServiceError;
use super::error::FieldViolation;
use super::shapes;

/// A protocol-neutral request or response value.
#[derive(Clone, Debug, PartialEq)]
pub enum Doc {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Blob(Bytes),
    /// Seconds since the epoch.
    Timestamp(f64),
    List(Vec<Doc>),
    Map(Vec<(String, Doc)>),
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    String,
    Integer,
    Long,
    Double,
    Boolean,
    Blob,
    Timestamp,
    List(&'static str),
    Map(&'static str, &'static str),
    Structure(&'static [Member]),
}

#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub name: &'static str,
    pub shape: &'static str,
    pub required: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub name: &'static str,
    pub kind: Kind,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub pattern: Option<&'static str>,
    pub enums: &'static [&'static str],
}

pub fn shape(name: &str) -> Option<&'static Shape> {
    shapes::SHAPES
        .binary_search_by(|s| s.name.cmp(name))
        .ok()
        .map(|i| &shapes::SHAPES[i])
}

/// The input shape of an operation Runnel serves; `None` for an operation it does not serve.
pub fn operation_input(op: &str) -> Option<Option<&'static Shape>> {
    shapes::OPERATIONS
        .binary_search_by(|(n, _)| (*n).cmp(op))
        .ok()
        .map(|i| shapes::OPERATIONS[i].1.and_then(shape))
}

impl Doc {
    pub fn get(&self, key: &str) -> Option<&Doc> {
        match self {
            Doc::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
        .filter(|v| !matches!(v, Doc::Null))
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Doc::Str(s)) => Some(s),
            _ => None,
        }
    }
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Doc::Int(i)) => Some(*i),
            Some(Doc::Float(f)) => Some(f.floor() as i64),
            _ => None,
        }
    }
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Doc::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    pub fn blob(&self, key: &str) -> Option<&Bytes> {
        match self.get(key) {
            Some(Doc::Blob(b)) => Some(b),
            _ => None,
        }
    }
    /// Milliseconds since the epoch.
    pub fn timestamp_ms(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Doc::Timestamp(t)) => Some((t * 1000.0).round() as i64),
            _ => None,
        }
    }
    pub fn list(&self, key: &str) -> &[Doc] {
        match self.get(key) {
            Some(Doc::List(l)) => l,
            _ => &[],
        }
    }
    pub fn entries(&self, key: &str) -> &[(String, Doc)] {
        match self.get(key) {
            Some(Doc::Map(m)) => m,
            _ => &[],
        }
    }
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.list(key)
            .iter()
            .filter_map(|d| match d {
                Doc::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }
}

/// A request body whose types do not match the model (AWS's SerializationException).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerializationError(pub String);

fn ser(msg: impl Into<String>) -> SerializationError {
    SerializationError(msg.into())
}

fn type_name(d: &Doc) -> &'static str {
    match d {
        Doc::Bool(_) => "java.lang.Boolean",
        Doc::Int(_) | Doc::Float(_) | Doc::Timestamp(_) => "java.math.BigDecimal",
        Doc::Str(_) => "java.lang.String",
        _ => "",
    }
}

fn structural(d: &Doc) -> Option<SerializationError> {
    match d {
        Doc::List(_) => Some(ser("Start of list found where not expected")),
        Doc::Map(_) => Some(ser("Start of structure or map found where not expected.")),
        _ => None,
    }
}

/// Checks the types of `doc` against `shape`, dropping members the shape does not have and
/// decoding base64 blobs and epoch timestamps.
pub fn coerce(doc: Doc, shape: &Shape) -> Result<Doc, SerializationError> {
    if matches!(doc, Doc::Null) {
        return Ok(Doc::Null);
    }
    match shape.kind {
        Kind::String => match doc {
            Doc::Str(_) => Ok(doc),
            d => Err(structural(&d).unwrap_or_else(|| {
                ser(format!(
                    "class {} can not be converted to an String",
                    type_name(&d)
                ))
            })),
        },
        Kind::Integer | Kind::Long | Kind::Double => {
            let what = match shape.kind {
                Kind::Integer => "Integer",
                Kind::Long => "Long",
                _ => "Double",
            };
            match doc {
                Doc::Int(_) => Ok(doc),
                Doc::Float(f) if what == "Double" => Ok(Doc::Float(f)),
                Doc::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(Doc::Int(f.floor() as i64)),
                Doc::Float(_) => Err(ser(format!("Numeric value out of range of {what}"))),
                d => Err(structural(&d).unwrap_or_else(|| {
                    ser(format!(
                        "class {} can not be converted to an {what}",
                        type_name(&d)
                    ))
                })),
            }
        }
        Kind::Boolean => match doc {
            Doc::Bool(_) => Ok(doc),
            Doc::Str(s) => Err(ser(format!(
                "'{}' can not be converted to an Boolean",
                s.to_uppercase()
            ))),
            d => Err(structural(&d).unwrap_or_else(|| {
                ser(format!(
                    "class {} can not be converted to an Boolean",
                    type_name(&d)
                ))
            })),
        },
        Kind::Blob => match doc {
            Doc::Blob(_) => Ok(doc),
            Doc::Str(s) => decode_base64(&s).map(Doc::Blob),
            d => Err(structural(&d)
                .unwrap_or_else(|| ser(format!("class {} can not be converted to a Blob", type_name(&d))))),
        },
        Kind::Timestamp => match doc {
            Doc::Timestamp(_) => Ok(doc),
            Doc::Int(i) => Ok(Doc::Timestamp(i as f64)),
            Doc::Float(f) => Ok(Doc::Timestamp(f)),
            Doc::Str(s) => s
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .or_else(|| parse_iso8601(&s))
                .map(Doc::Timestamp)
                .ok_or_else(|| ser(format!("'{s}' can not be converted to a Timestamp"))),
            d => Err(structural(&d).unwrap_or_else(|| {
                ser(format!(
                    "class {} can not be converted to a Timestamp",
                    type_name(&d)
                ))
            })),
        },
        Kind::List(member) => match doc {
            Doc::List(items) => {
                let Some(m) = self::shape(member) else {
                    return Ok(Doc::Null);
                };
                items
                    .into_iter()
                    .map(|i| coerce(i, m))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Doc::List)
            }
            Doc::Map(_) => Err(ser("Start of structure or map found where not expected.")),
            _ => Err(ser("Expected list or null")),
        },
        Kind::Map(_, value) => match doc {
            Doc::Map(entries) => {
                let Some(v) = self::shape(value) else {
                    return Ok(Doc::Null);
                };
                entries
                    .into_iter()
                    .map(|(k, d)| coerce(d, v).map(|d| (k, d)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Doc::Map)
            }
            Doc::List(_) => Err(ser("Start of list found where not expected")),
            _ => Err(ser("Expected map or null")),
        },
        Kind::Structure(members) => match doc {
            Doc::Map(entries) => {
                let mut out = Vec::new();
                for (k, d) in entries {
                    let Some(m) = members.iter().find(|m| m.name == k) else {
                        continue;
                    };
                    let Some(s) = self::shape(m.shape) else {
                        continue;
                    };
                    out.push((k, coerce(d, s)?));
                }
                Ok(Doc::Map(out))
            }
            Doc::List(_) => Err(ser("Start of list found where not expected")),
            _ => Err(ser("Expected null")),
        },
    }
}

fn decode_base64(s: &str) -> Result<Bytes, SerializationError> {
    let prefix = format!("'{s}' can not be converted to a Blob: ");
    if !s.len().is_multiple_of(4) {
        return Err(ser(format!(
            "{prefix}Base64 encoded length is expected a multiple of 4 bytes but found: {}",
            s.len()
        )));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
    {
        return Err(ser(format!("{prefix}Invalid Base64 character: '{c}'")));
    }
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Bytes::from)
        .map_err(|_| ser(format!("{prefix}Invalid last non-pad Base64 character dectected")))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` to epoch seconds.
fn parse_iso8601(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
        frac = format!("0.{digits}").parse().ok()?;
        rest = &r[digits.len()..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        o if o.len() == 6 && matches!(&o[..1], "+" | "-") => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3600 + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn pattern_regex(pattern: &'static str) -> Option<Regex> {
    static CACHE: OnceLock<std::sync::Mutex<Vec<(&'static str, Regex)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().ok()?;
    if let Some((_, r)) = c.iter().find(|(p, _)| *p == pattern) {
        return Some(r.clone());
    }
    let r = Regex::new(&format!("^(?:{pattern})$")).ok()?;
    c.push((pattern, r.clone()));
    Some(r)
}

fn value_str(d: &Doc) -> String {
    match d {
        Doc::Null => "null".into(),
        Doc::Bool(b) => b.to_string(),
        Doc::Int(i) => i.to_string(),
        Doc::Float(f) => f.to_string(),
        Doc::Timestamp(t) => t.to_string(),
        Doc::Str(s) => s.clone(),
        Doc::Blob(b) => format!("java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]", b.len()),
        Doc::List(items) => format!("[{}]", items.iter().map(value_str).collect::<Vec<_>>().join(", ")),
        Doc::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{k}={}", value_str(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// AWS reports at most this many violations.
const MAX_VIOLATIONS: usize = 10;

struct Checker {
    out: Vec<FieldViolation>,
}

impl Checker {
    fn push(&mut self, d: &Doc, path: &str, constraint: String) {
        if self.out.len() < MAX_VIOLATIONS {
            self.out.push(FieldViolation {
                value: value_str(d),
                path: path.to_string(),
                constraint,
            });
        }
    }

    fn check(&mut self, d: &Doc, shape: &Shape, required: bool, path: &str) {
        if matches!(d, Doc::Null) {
            if required {
                self.push(d, path, super::error::MUST_NOT_BE_NULL.into());
            }
            return;
        }
        let numeric = match d {
            Doc::Int(i) => Some(*i),
            _ => None,
        };
        if let Some(n) = numeric {
            if let Some(min) = shape.min.filter(|m| n < *m) {
                self.push(
                    d,
                    path,
                    format!("Member must have value greater than or equal to {min}"),
                );
            }
            if let Some(max) = shape.max.filter(|m| n > *m) {
                self.push(
                    d,
                    path,
                    format!("Member must have value less than or equal to {max}"),
                );
            }
        }
        if let (Some(p), Doc::Str(s)) = (shape.pattern, d)
            && pattern_regex(p).is_some_and(|r| !r.is_match(s))
        {
            {
                self.push(
                    d,
                    path,
                    format!("Member must satisfy regular expression pattern: {p}"),
                );
            }
        }
        let len = match d {
            Doc::Str(s) => Some(s.chars().count() as i64),
            Doc::Blob(b) => Some(b.len() as i64),
            Doc::List(l) => Some(l.len() as i64),
            Doc::Map(m) if !matches!(shape.kind, Kind::Structure(_)) => Some(m.len() as i64),
            _ => None,
        };
        if let Some(len) = len {
            if let Some(min) = shape.min.filter(|m| len < *m) {
                self.push(
                    d,
                    path,
                    format!("Member must have length greater than or equal to {min}"),
                );
            }
            if let Some(max) = shape.max.filter(|m| len > *m) {
                self.push(
                    d,
                    path,
                    format!("Member must have length less than or equal to {max}"),
                );
            }
        }
        if let Doc::Str(s) = d
            && !shape.enums.is_empty()
            && !shape.enums.contains(&s.as_str())
        {
            {
                self.push(
                    d,
                    path,
                    format!("Member must satisfy enum value set: [{}]", shape.enums.join(", ")),
                );
            }
        }
        match (shape.kind, d) {
            (Kind::Structure(members), Doc::Map(_)) => {
                for m in members {
                    let Some(s) = self::shape(m.shape) else {
                        continue;
                    };
                    let child = d.get(m.name).unwrap_or(&Doc::Null);
                    let p = if path.is_empty() {
                        lower_first(m.name)
                    } else {
                        format!("{path}.{}", lower_first(m.name))
                    };
                    self.check(child, s, m.required, &p);
                }
            }
            (Kind::List(member), Doc::List(items)) => {
                if let Some(s) = self::shape(member) {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, s, true, &format!("{path}.{}.member", i + 1));
                    }
                }
            }
            (Kind::Map(key, value), Doc::Map(entries)) => {
                let (Some(ks), Some(vs)) = (self::shape(key), self::shape(value)) else {
                    return;
                };
                let key_bad = entries.iter().any(|(k, _)| {
                    let mut c = Checker { out: Vec::new() };
                    c.check(&Doc::Str(k.clone()), ks, true, "");
                    !c.out.is_empty()
                });
                if key_bad {
                    self.push(
                        d,
                        path,
                        format!(
                            "Map keys must satisfy constraint: [Member must have length less than or equal to {}, Member must have length greater than or equal to {}]",
                            ks.max.unwrap_or(i64::MAX),
                            ks.min.unwrap_or(0)
                        ),
                    );
                }
                let value_bad = entries.iter().any(|(_, v)| {
                    let mut c = Checker { out: Vec::new() };
                    c.check(v, vs, true, "");
                    !c.out.is_empty()
                });
                if value_bad {
                    self.push(
                        d,
                        path,
                        format!(
                            "Map value must satisfy constraint: [Member must have length less than or equal to {}, Member must have length greater than or equal to {}]",
                            vs.max.unwrap_or(i64::MAX),
                            vs.min.unwrap_or(0)
                        ),
                    );
                }
            }
            _ => {}
        }
    }
}

/// Checks `doc` (already [`coerce`]d) against the constraints of `shape`.
pub fn validate(doc: &Doc, shape: &Shape) -> Result<(), ServiceError> {
    let mut c = Checker { out: Vec::new() };
    c.check(doc, shape, false, "");
    if c.out.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Validation(c.out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, Doc)]) -> Doc {
        Doc::Map(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn check(op: &str, doc: Doc) -> Result<Doc, String> {
        let shape = operation_input(op).flatten().ok_or("no shape")?;
        let doc = coerce(doc, shape).map_err(|e| format!("SER {}", e.0))?;
        validate(&doc, shape).map_err(|e| e.to_string())?;
        Ok(doc)
    }

    #[test]
    fn tables_are_sorted_for_lookup() {
        assert!(shapes::SHAPES.windows(2).all(|w| w[0].name < w[1].name));
        assert!(shapes::OPERATIONS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(operation_input("CreateStream").is_some());
        assert!(operation_input("StartStreamEncryption").is_none());
    }

    #[test]
    fn violations_in_aws_order_and_format() {
        let err = check(
            "CreateStream",
            map(&[
                ("StreamName", Doc::Str(String::new())),
                ("ShardCount", Doc::Int(0)),
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "3 validation errors detected: Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1; \
             Value '' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; \
             Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
        let err = check("GetRecords", map(&[])).unwrap_err();
        assert_eq!(
            err,
            "1 validation error detected: Value null at 'shardIterator' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn nested_members_and_enums() {
        let err = check(
            "PutRecords",
            map(&[(
                "Records",
                Doc::List(vec![map(&[
                    ("Data", Doc::Str("AAAA".into())),
                    ("ExplicitHashKey", Doc::Str("x".into())),
                ])]),
            )]),
        )
        .unwrap_err();
        assert!(err.contains("at 'records.1.member.explicitHashKey'"), "{err}");
        let err = check(
            "GetShardIterator",
            map(&[
                ("ShardId", Doc::Str("0".into())),
                ("ShardIteratorType", Doc::Str("NOPE".into())),
            ]),
        )
        .unwrap_err();
        assert!(
            err.ends_with("Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"),
            "{err}"
        );
    }

    #[test]
    fn serialization_errors() {
        assert_eq!(
            check("CreateStream", map(&[("StreamName", Doc::Bool(true))])).unwrap_err(),
            "SER class java.lang.Boolean can not be converted to an String"
        );
        assert_eq!(
            check("CreateStream", map(&[("ShardCount", Doc::Str("1".into()))])).unwrap_err(),
            "SER class java.lang.String can not be converted to an Integer"
        );
        assert!(
            check("PutRecord", map(&[("Data", Doc::Str("abc".into()))]))
                .unwrap_err()
                .contains("multiple of 4")
        );
        let ok = check(
            "PutRecord",
            map(&[
                ("Data", Doc::Str("aGk=".into())),
                ("PartitionKey", Doc::Str("k".into())),
                ("Unknown", Doc::Int(1)),
            ]),
        )
        .unwrap();
        assert_eq!(ok.blob("Data").map(|b| b.to_vec()), Some(b"hi".to_vec()));
        assert!(ok.get("Unknown").is_none());
    }

    #[test]
    fn iso_timestamps() {
        assert_eq!(parse_iso8601("1970-01-02T00:00:00Z"), Some(86_400.0));
        assert_eq!(
            parse_iso8601("2016-04-04T19:58:46.480-00:00"),
            Some(1_459_799_926.48)
        );
        assert_eq!(parse_iso8601("nope"), None);
    }
}
