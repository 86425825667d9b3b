//! The unit stored in the log: one Raft log entry (one producer batch).

use bytes::Bytes;

/// One log entry. The log interprets only `index` and `timestamp_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Raft log index; contiguous, strictly increasing by 1.
    pub index: u64,
    /// Raft term.
    pub term: u64,
    /// Leader-assigned arrival time of the batch (ms since the Unix epoch).
    pub timestamp_ms: i64,
    /// Opaque to the log (the node uses it for blank / membership / records).
    pub kind: u8,
    /// The entry body.
    pub payload: Bytes,
}
