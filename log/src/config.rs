//! User-facing options of a shard log.

/// How a [`crate::Log`] lays out its segments and indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this many bytes.
    pub segment_bytes: u64,
    /// Roll when the active segment's first entry is older than this, judged against the
    /// timestamp of the entry being appended.
    pub segment_max_age_ms: i64,
    /// Sparse offset index: one index point every this many bytes of segment data.
    pub index_interval_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 128 * 1024 * 1024,
            segment_max_age_ms: 60 * 60 * 1000,
            index_interval_bytes: 4096,
        }
    }
}
