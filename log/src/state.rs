//! The in-memory view of a log shared by its writer and its readers.

use std::fs::File;
use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::RwLock;
use std::sync::RwLockReadGuard;
use std::sync::RwLockWriteGuard;

use crate::index::IndexPoint;

/// One segment as readers see it: everything up to `size` / `next_index` is complete.
#[derive(Debug)]
pub struct SegmentView {
    pub base: u64,
    pub file: Arc<File>,
    /// Bytes of complete frames.
    pub size: u64,
    /// One past the last entry (== `base` when empty).
    pub next_index: u64,
    pub points: Vec<IndexPoint>,
    /// Running maximum timestamp after the last entry (carried over from earlier segments).
    pub max_ts: i64,
    /// Own timestamp of the first entry, for age-based rolling.
    pub first_ts: Option<i64>,
    /// Term of the last entry (meaningless when empty).
    pub last_term: u64,
}

impl SegmentView {
    pub fn is_empty(&self) -> bool {
        self.next_index == self.base
    }
}

#[derive(Debug)]
pub struct LogState {
    pub segments: Vec<SegmentView>,
    pub purged: Option<u64>,
    pub next_index: u64,
}

impl LogState {
    pub fn first_index(&self) -> Option<u64> {
        let base = self.segments.first()?.base;
        let first = self.purged.map_or(base, |p| base.max(p.saturating_add(1)));
        (first < self.next_index).then_some(first)
    }

    /// Index and term of the last readable entry.
    pub fn last_entry_id(&self) -> Option<(u64, u64)> {
        self.first_index()?;
        let seg = self.segments.iter().rev().find(|s| !s.is_empty())?;
        Some((seg.next_index - 1, seg.last_term))
    }

    /// Position in `segments` of the segment holding `index`.
    pub fn segment_of(&self, index: u64) -> Option<usize> {
        let n = self.segments.partition_point(|s| s.base <= index);
        n.checked_sub(1).filter(|&i| index < self.segments[i].next_index)
    }
}

pub type SharedState = Arc<RwLock<LogState>>;

pub fn read(state: &RwLock<LogState>) -> RwLockReadGuard<'_, LogState> {
    state.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write(state: &RwLock<LogState>) -> RwLockWriteGuard<'_, LogState> {
    state.write().unwrap_or_else(PoisonError::into_inner)
}
