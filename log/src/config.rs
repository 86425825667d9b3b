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
    /// Drop-behind: once fsynced, only the newest this many bytes of the log stay in the OS
    /// page cache; older pages are dropped (`posix_fadvise(DONTNEED)`), so the cache a shard
    /// holds stays bounded instead of growing with everything written. Reads of older entries
    /// then come from disk. `None` leaves the page cache to the OS.
    pub cache_window_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 128 * 1024 * 1024,
            segment_max_age_ms: 60 * 60 * 1000,
            index_interval_bytes: 4096,
            cache_window_bytes: None,
        }
    }
}
