//! SigV4: every request must carry a well-formed `Authorization` header or presigned query, as
//! AWS requires. Signatures are not verified yet (any key is accepted); [`Signature`] holds what
//! a verifier against configured credentials will need, and [`Verifier`] is where it plugs in.

use axum::http::HeaderMap;

use super::protocol::ApiError;

/// The parts of a SigV4 signature a verifier needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// `AKID/20130524/us-east-1/kinesis/aws4_request`.
    pub credential: String,
    pub signed_headers: String,
    pub signature: String,
    /// From the header (`Authorization`) or the query (`X-Amz-Signature`).
    pub presigned: bool,
}

impl Signature {
    /// The access key id of the credential scope.
    pub fn access_key(&self) -> &str {
        self.credential.split('/').next().unwrap_or_default()
    }
}

/// Decides whether a well-formed signature is accepted.
pub trait Verifier: Send + Sync {
    fn verify(&self, sig: &Signature) -> Result<(), ApiError>;
}

/// Accepts every well-formed signature, whatever the key (until credentials are configurable).
pub struct AcceptAnyKey;

impl Verifier for AcceptAnyKey {
    fn verify(&self, _sig: &Signature) -> Result<(), ApiError> {
        Ok(())
    }
}

fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Checks that the request is signed in a well-formed way, with AWS's error types and messages.
pub fn check(headers: &HeaderMap, query: Option<&str>) -> Result<Signature, ApiError> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty());
    let params = query_params(query);
    let q = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let presigned = q("X-Amz-Algorithm").is_some();
    match (auth, presigned) {
        (Some(_), true) => Err(ApiError::new(
            "InvalidSignatureException",
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        (None, false) => Err(ApiError::new(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        )),
        (Some(auth), false) => {
            let mut msg = String::new();
            let mut fields = std::collections::HashMap::new();
            let mut parts = auth.split([',', ' ']).filter(|s| !s.is_empty());
            let algorithm = parts.next().unwrap_or_default();
            for p in parts {
                if let Some((k, v)) = p.trim().split_once('=') {
                    fields.insert(k.to_string(), v.to_string());
                }
            }
            if algorithm != "AWS4-HMAC-SHA256" {
                return Err(ApiError::new(
                    "IncompleteSignatureException",
                    format!("Unsupported AWS 'algorithm': '{algorithm}'"),
                ));
            }
            for p in ["Credential", "Signature", "SignedHeaders"] {
                if fields.get(p).is_none_or(|v| v.is_empty()) {
                    msg.push_str(&format!("Authorization header requires '{p}' parameter. "));
                }
            }
            if !headers.contains_key("x-amz-date") && !headers.contains_key("date") {
                msg.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
                );
            }
            if !msg.is_empty() {
                msg.push_str(&format!("Authorization={auth}"));
                return Err(ApiError::new("IncompleteSignatureException", msg));
            }
            let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
            Ok(Signature {
                credential: get("Credential"),
                signed_headers: get("SignedHeaders"),
                signature: get("Signature"),
                presigned: false,
            })
        }
        (None, true) => {
            let mut msg = String::new();
            for p in [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Signature",
                "X-Amz-SignedHeaders",
                "X-Amz-Date",
            ] {
                if q(p).is_none() {
                    msg.push_str(&format!("AWS query-string parameters must include '{p}'. "));
                }
            }
            if !msg.is_empty() {
                msg.push_str("Re-examine the query-string parameters.");
                return Err(ApiError::new("IncompleteSignatureException", msg));
            }
            let get = |k: &str| q(k).unwrap_or_default().replace("%2F", "/");
            Ok(Signature {
                credential: get("X-Amz-Credential"),
                signed_headers: get("X-Amz-SignedHeaders"),
                signature: get("X-Amz-Signature"),
                presigned: true,
            })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(auth: Option<&str>, date: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert("authorization", HeaderValue::from_str(a).unwrap());
        }
        if date {
            h.insert("x-amz-date", HeaderValue::from_static("20240101T000000Z"));
        }
        h
    }

    #[test]
    fn well_formed_header() {
        let sig = check(
            &headers(
                Some("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
                true,
            ),
            None,
        )
        .unwrap();
        assert_eq!(sig.access_key(), "AKID");
        assert_eq!(sig.signed_headers, "host;x-amz-date");
    }

    #[test]
    fn aws_error_shapes() {
        let e = check(&headers(None, true), None).unwrap_err();
        assert_eq!(e.error_type, "MissingAuthenticationTokenException");
        let e = check(&headers(Some("AWS4-HMAC-SHA256 Credential=a"), false), None).unwrap_err();
        assert_eq!(e.error_type, "IncompleteSignatureException");
        let m = e.message.unwrap();
        assert!(m.starts_with("Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either"), "{m}");
        let e = check(
            &headers(Some("x"), true),
            Some("X-Amz-Algorithm=AWS4-HMAC-SHA256"),
        )
        .unwrap_err();
        assert_eq!(e.error_type, "InvalidSignatureException");
        let e = check(
            &headers(None, false),
            Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=1"),
        )
        .unwrap_err();
        assert_eq!(
            e.message.unwrap(),
            "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."
        );
        let ok = check(
            &headers(None, false),
            Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=K%2Fx&X-Amz-Signature=s&X-Amz-SignedHeaders=host&X-Amz-Date=1"),
        )
        .unwrap();
        assert!(ok.presigned);
        assert_eq!(ok.access_key(), "K");
    }
}
