//! Errors returned by the client, with messages meant for people.

use std::error::Error as _;

/// What a failed call was about, used to turn a gRPC status into a precise error.
#[derive(Debug, Clone)]
pub(crate) enum Subject<'a> {
    None,
    Stream(&'a str),
    Shard(&'a str, &'a str),
}

/// An error from the client library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid endpoint '{endpoint}': {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("stream '{0}' not found")]
    StreamNotFound(String),
    #[error("shard '{shard}' not found in stream '{stream}'")]
    ShardNotFound { stream: String, shard: String },
    #[error("stream '{0}' already exists")]
    StreamExists(String),
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("throughput exceeded: {0}")]
    Throttled(String),
    #[error("server unavailable: {0}")]
    Unavailable(String),
    #[error("server error ({code:?}): {message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("invalid position '{input}': {reason}")]
    InvalidPosition { input: String, reason: String },
    #[error("malformed response from server: {0}")]
    Protocol(String),
    /// A lease change refused because its condition no longer held (another worker took the
    /// lease, or its counter moved).
    #[error("lease conflict: {0}")]
    LeaseConflict(String),
    /// The consumer no longer holds the lease of the shard a delivery came from.
    #[error("the lease of shard '{0}' is no longer held by this worker")]
    LeaseLost(String),
}

impl Error {
    /// The error for a gRPC status returned by a call about `subject`.
    pub(crate) fn from_status(status: tonic::Status, subject: Subject<'_>) -> Self {
        let message = status.message().to_string();
        match status.code() {
            tonic::Code::NotFound => match subject {
                Subject::Shard(stream, shard) if message.to_lowercase().contains("shard") => {
                    Error::ShardNotFound {
                        stream: stream.to_string(),
                        shard: shard.to_string(),
                    }
                }
                Subject::Stream(stream) | Subject::Shard(stream, _) => {
                    Error::StreamNotFound(stream.to_string())
                }
                Subject::None => Error::Rpc {
                    code: status.code(),
                    message,
                },
            },
            tonic::Code::AlreadyExists => match subject {
                Subject::Stream(stream) => Error::StreamExists(stream.to_string()),
                _ => Error::Rpc {
                    code: status.code(),
                    message,
                },
            },
            tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::FailedPrecondition => {
                Error::InvalidArgument(message)
            }
            tonic::Code::ResourceExhausted => Error::Throttled(message),
            tonic::Code::Aborted => Error::LeaseConflict(message),
            tonic::Code::Unavailable => Error::Unavailable(describe_unavailable(&status)),
            code => Error::Rpc { code, message },
        }
    }

    /// True when retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Throttled(_) | Error::Unavailable(_))
    }
}

fn describe_unavailable(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut source = status.source();
    while let Some(err) = source {
        let part = err.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = err.source();
    }
    text
}

/// The message of an error and all its sources, joined by ": ".
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_names_the_stream() {
        let err = Error::from_status(tonic::Status::not_found("no such stream"), Subject::Stream("x"));
        assert_eq!(err.to_string(), "stream 'x' not found");
    }

    #[test]
    fn not_found_names_the_shard_when_the_server_says_shard() {
        let err = Error::from_status(
            tonic::Status::not_found("shard shardId-000000000009 does not exist"),
            Subject::Shard("s", "shardId-000000000009"),
        );
        assert_eq!(
            err.to_string(),
            "shard 'shardId-000000000009' not found in stream 's'"
        );
        let err = Error::from_status(tonic::Status::not_found("stream"), Subject::Shard("s", "x"));
        assert_eq!(err.to_string(), "stream 's' not found");
    }

    #[test]
    fn invalid_argument_keeps_the_server_message() {
        let err = Error::from_status(tonic::Status::invalid_argument("too big"), Subject::Stream("x"));
        assert_eq!(err.to_string(), "invalid request: too big");
        assert!(!err.is_retryable());
        let err = Error::from_status(tonic::Status::resource_exhausted("slow down"), Subject::None);
        assert!(err.is_retryable());
    }
}
