//! Shared helpers of the integration tests: deterministic entries and a brute-force model.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use runnel_log::Entry;
use runnel_log::LogConfig;
use runnel_log::LogReader;

/// Small segments (8 KiB) with dense index points: many segments from few entries.
pub fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        segment_max_age_ms: 3_600_000,
        index_interval_bytes: 512,
        cache_window_bytes: None,
    }
}

/// An entry whose every field is derived from its index, so content can be checked after a crash.
pub fn entry_for(index: u64) -> Entry {
    let len = (index.wrapping_mul(7919) % 3000) as usize;
    let payload: Vec<u8> = (0..len)
        .map(|j| (index as u8).wrapping_mul(31).wrapping_add(j as u8))
        .collect();
    Entry {
        index,
        term: 1 + index / 1000,
        timestamp_ms: 1_000_000 + index as i64 * 3 - (index % 7) as i64,
        kind: (index % 3) as u8,
        payload: Bytes::from(payload),
    }
}

/// Entries with explicit payload sizes and timestamps.
pub fn entries_from(start: u64, specs: &[(usize, i64)]) -> Vec<Entry> {
    specs
        .iter()
        .enumerate()
        .map(|(i, &(len, ts))| {
            let index = start + i as u64;
            Entry {
                index,
                term: 1 + index / 10,
                timestamp_ms: ts,
                kind: (index % 4) as u8,
                payload: Bytes::from(vec![(index % 251) as u8; len]),
            }
        })
        .collect()
}

/// Everything readable.
pub fn read_all(reader: &LogReader) -> Vec<Entry> {
    match reader.first_index() {
        Some(first) => reader.read(first, usize::MAX, usize::MAX).unwrap(),
        None => Vec::new(),
    }
}

/// Brute force: first entry whose running-maximum timestamp is `>= ts`.
pub fn model_find_by_timestamp(entries: &[Entry], ts: i64) -> Option<u64> {
    let mut max = i64::MIN;
    for e in entries {
        max = max.max(e.timestamp_ms);
        if max >= ts {
            return Some(e.index);
        }
    }
    None
}
