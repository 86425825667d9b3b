//! The AWS JSON 1.1 and CBOR 1.1 wire formats: request bodies to [`Doc`], [`Doc`] to response
//! bodies, and error responses (`{"__type": ..., "message": ...}` plus `x-amzn-ErrorType`).

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;

use crate::service::ServiceError;
use crate::service::document::Doc;

pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";
pub const CBOR_CONTENT_TYPE: &str = "application/x-amz-cbor-1.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    /// The format of a request's `Content-Type`; `None` when it is neither.
    pub fn from_content_type(ct: Option<&str>) -> Option<Format> {
        let ct = ct?.split(';').next()?.trim().to_ascii_lowercase();
        match ct.as_str() {
            JSON_CONTENT_TYPE | "application/json" => Some(Format::Json),
            CBOR_CONTENT_TYPE => Some(Format::Cbor),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_CONTENT_TYPE,
            Format::Cbor => CBOR_CONTENT_TYPE,
        }
    }

    /// Decodes a request body; `None` when it is not a well-formed object.
    pub fn decode(self, body: &[u8]) -> Option<Doc> {
        let doc = match self {
            Format::Json => json_to_doc(serde_json::from_slice(body).ok()?),
            Format::Cbor => cbor_to_doc(ciborium::de::from_reader(body).ok()?)?,
        };
        matches!(doc, Doc::Map(_)).then_some(doc)
    }

    pub fn encode(self, doc: &Doc) -> Vec<u8> {
        match self {
            Format::Json => serde_json::to_vec(&doc_to_json(doc)).unwrap_or_default(),
            Format::Cbor => {
                let mut out = Vec::new();
                if ciborium::ser::into_writer(&doc_to_cbor(doc), &mut out).is_err() {
                    out.clear();
                }
                out
            }
        }
    }
}

fn json_to_doc(v: serde_json::Value) -> Doc {
    use serde_json::Value;
    match v {
        Value::Null => Doc::Null,
        Value::Bool(b) => Doc::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Doc::Int(i),
            None => Doc::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Doc::Str(s),
        Value::Array(a) => Doc::List(a.into_iter().map(json_to_doc).collect()),
        Value::Object(o) => Doc::Map(o.into_iter().map(|(k, v)| (k, json_to_doc(v))).collect()),
    }
}

fn doc_to_json(d: &Doc) -> serde_json::Value {
    use serde_json::Value;
    match d {
        Doc::Null => Value::Null,
        Doc::Bool(b) => Value::Bool(*b),
        Doc::Int(i) => Value::from(*i),
        Doc::Float(f) | Doc::Timestamp(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Doc::Str(s) => Value::String(s.clone()),
        Doc::Blob(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Doc::List(l) => Value::Array(l.iter().map(doc_to_json).collect()),
        Doc::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), doc_to_json(v))).collect()),
    }
}

fn cbor_to_doc(v: ciborium::Value) -> Option<Doc> {
    use ciborium::Value;
    Some(match v {
        Value::Null => Doc::Null,
        Value::Bool(b) => Doc::Bool(b),
        Value::Integer(i) => Doc::Int(i64::try_from(i128::from(i)).ok()?),
        Value::Float(f) => Doc::Float(f),
        Value::Text(s) => Doc::Str(s),
        Value::Bytes(b) => Doc::Blob(Bytes::from(b)),
        // AWS CBOR 1.1 timestamps are tag 1 + epoch *milliseconds* (not RFC 8949's seconds):
        // what the Java SDK (v1 and v2) and the KCL write and read.
        Value::Tag(1, inner) => match *inner {
            Value::Integer(i) => Doc::Timestamp(i128::from(i) as f64 / 1000.0),
            Value::Float(f) => Doc::Timestamp(f / 1000.0),
            _ => return None,
        },
        Value::Tag(_, inner) => cbor_to_doc(*inner)?,
        Value::Array(a) => Doc::List(a.into_iter().map(cbor_to_doc).collect::<Option<_>>()?),
        Value::Map(m) => Doc::Map(
            m.into_iter()
                .map(|(k, v)| match k {
                    Value::Text(k) => Some((k, cbor_to_doc(v)?)),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

fn doc_to_cbor(d: &Doc) -> ciborium::Value {
    use ciborium::Value;
    match d {
        Doc::Null => Value::Null,
        Doc::Bool(b) => Value::Bool(*b),
        Doc::Int(i) => Value::Integer((*i).into()),
        Doc::Float(f) => Value::Float(*f),
        Doc::Timestamp(t) => Value::Tag(1, Box::new(Value::Integer(epoch_millis(*t).into()))),
        Doc::Str(s) => Value::Text(s.clone()),
        Doc::Blob(b) => Value::Bytes(b.to_vec()),
        Doc::List(l) => Value::Array(l.iter().map(doc_to_cbor).collect()),
        Doc::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| (Value::Text(k.clone()), doc_to_cbor(v)))
                .collect(),
        ),
    }
}

/// Epoch seconds as whole epoch milliseconds (the Java SDK reads CBOR timestamps with
/// `getLongValue()`, so a fraction would be dropped or refused).
fn epoch_millis(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

/// A failed request, as AWS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: Option<String>,
}

impl ApiError {
    pub fn new(error_type: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type,
            message: Some(message.into()),
        }
    }

    /// An error whose body carries only `__type`, as AWS sends for unknown operations and
    /// unparseable bodies.
    pub fn bare(error_type: &'static str) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type,
            message: None,
        }
    }

    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new("SerializationException", message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let status = match e {
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            error_type: e.aws_type(),
            message: Some(e.to_string()),
        }
    }
}

/// A new request id (a UUID, as AWS sends).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn with_headers(mut resp: Response, content_type: &str, request_id: &str) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    resp
}

pub fn ok_response(format: Format, doc: &Doc, request_id: &str) -> Response {
    let body = format.encode(doc);
    with_headers(Response::new(Body::from(body)), format.content_type(), request_id)
}

pub fn error_response(format: Format, err: &ApiError, request_id: &str) -> Response {
    let mut fields = vec![("__type".to_string(), Doc::Str(err.error_type.to_string()))];
    if let Some(m) = &err.message {
        fields.push(("message".to_string(), Doc::Str(m.clone())));
    }
    let body = format.encode(&Doc::Map(fields));
    let mut resp = with_headers(Response::new(Body::from(body)), format.content_type(), request_id);
    *resp.status_mut() = err.status;
    if let Ok(v) = HeaderValue::from_str(err.error_type) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

/// The XML-ish error AWS answers to requests it cannot even attribute to an operation.
pub fn unattributed_response(
    status: StatusCode,
    error_type: &str,
    message: Option<&str>,
    request_id: &str,
) -> Response {
    let body = match message {
        Some(m) => format!("<{error_type}>\n  <Message>{m}</Message>\n</{error_type}>\n"),
        None => format!("<{error_type}/>\n"),
    };
    let mut resp = with_headers(Response::new(Body::from(body)), "application/xml", request_id);
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(error_type) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

/// Builds a response map, leaving out absent members.
#[derive(Default)]
pub struct Out(Vec<(String, Doc)>);

impl Out {
    pub fn new() -> Out {
        Out::default()
    }
    pub fn put(mut self, key: &str, v: impl Into<Doc>) -> Out {
        self.0.push((key.to_string(), v.into()));
        self
    }
    pub fn opt(self, key: &str, v: Option<impl Into<Doc>>) -> Out {
        match v {
            Some(v) => self.put(key, v),
            None => self,
        }
    }
    pub fn doc(self) -> Doc {
        Doc::Map(self.0)
    }
}

impl From<Out> for Doc {
    fn from(o: Out) -> Doc {
        o.doc()
    }
}
impl From<String> for Doc {
    fn from(s: String) -> Doc {
        Doc::Str(s)
    }
}
impl From<&str> for Doc {
    fn from(s: &str) -> Doc {
        Doc::Str(s.to_string())
    }
}
impl From<i64> for Doc {
    fn from(i: i64) -> Doc {
        Doc::Int(i)
    }
}
impl From<u32> for Doc {
    fn from(i: u32) -> Doc {
        Doc::Int(i64::from(i))
    }
}
impl From<bool> for Doc {
    fn from(b: bool) -> Doc {
        Doc::Bool(b)
    }
}
impl From<Vec<Doc>> for Doc {
    fn from(l: Vec<Doc>) -> Doc {
        Doc::List(l)
    }
}

/// Milliseconds since the epoch as an AWS timestamp.
pub fn timestamp(ms: i64) -> Doc {
    Doc::Timestamp(ms as f64 / 1000.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn json_and_cbor_round_trip() {
        let doc = Out::new()
            .put("S", "x")
            .put("N", 5i64)
            .put("B", Doc::Blob(Bytes::from_static(b"hi")))
            .put("T", timestamp(1_500))
            .put("L", vec![Doc::Bool(true)])
            .doc();
        let json: serde_json::Value = serde_json::from_slice(&Format::Json.encode(&doc)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"S": "x", "N": 5, "B": "aGk=", "T": 1.5, "L": [true]})
        );
        assert_eq!(Format::Cbor.decode(&Format::Cbor.encode(&doc)), Some(doc.clone()));
        let cbor: ciborium::Value = ciborium::de::from_reader(&Format::Cbor.encode(&doc)[..]).unwrap();
        let cbor = cbor.into_map().unwrap();
        let get = |k: &str| {
            cbor.iter()
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("B"), ciborium::Value::Bytes(b"hi".to_vec()));
        assert_eq!(
            get("T"),
            ciborium::Value::Tag(1, Box::new(ciborium::Value::Integer(1500.into())))
        );
        assert_eq!(Format::Json.decode(b"[1]"), None);
        assert_eq!(Format::Json.decode(b"{"), None);
    }

    /// Timestamps as the Java SDK sends them: tag 1 + integer (or float) epoch milliseconds.
    #[test]
    fn cbor_timestamps_are_epoch_milliseconds() {
        use ciborium::Value;
        let body = |ts: Value| {
            let mut out = Vec::new();
            let map = Value::Map(vec![(
                Value::Text("Timestamp".into()),
                Value::Tag(1, Box::new(ts)),
            )]);
            ciborium::ser::into_writer(&map, &mut out).unwrap();
            out
        };
        let ts = |doc: Doc| match doc {
            Doc::Map(m) => m.into_iter().next().unwrap().1,
            other => panic!("{other:?}"),
        };
        let got = Format::Cbor.decode(&body(Value::Integer(1_700_000_000_123i64.into())));
        assert_eq!(ts(got.unwrap()), Doc::Timestamp(1_700_000_000.123));
        let got = Format::Cbor.decode(&body(Value::Float(1_500.0)));
        assert_eq!(ts(got.unwrap()), Doc::Timestamp(1.5));
        // A tagged string is not a timestamp.
        assert_eq!(Format::Cbor.decode(&body(Value::Text("x".into()))), None);
        // Sub-millisecond fractions round to the nearest millisecond on the way out.
        let out = Format::Cbor.encode(&Out::new().put("T", Doc::Timestamp(1.0006)).doc());
        let v: Value = ciborium::de::from_reader(&out[..]).unwrap();
        assert_eq!(
            v,
            Value::Map(vec![(
                Value::Text("T".into()),
                Value::Tag(1, Box::new(Value::Integer(1001.into())))
            )])
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/x-amz-json-1.1; charset=utf-8")),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type(Some(CBOR_CONTENT_TYPE)),
            Some(Format::Cbor)
        );
        assert_eq!(Format::from_content_type(Some("text/plain")), None);
        assert_eq!(Format::from_content_type(None), None);
    }
}
