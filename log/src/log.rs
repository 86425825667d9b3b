//! The single writer of one log directory.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::RwLock;

use tracing::debug;

use crate::Entry;
use crate::LogConfig;
use crate::LogError;
use crate::LogReader;
use crate::frame;
use crate::frame::MAX_PAYLOAD;
use crate::index;
use crate::index::IndexPoint;
use crate::install;
use crate::meta;
use crate::recovery;
use crate::segment;
use crate::segment::FrameScanner;
use crate::segment::Scanned;
use crate::state;
use crate::state::SegmentView;
use crate::state::SharedState;
use crate::sync::SyncHandle;
use crate::sync::SyncState;

/// Write buffers larger than this are released after use.
const MAX_RETAINED_BUFFER: usize = 16 << 20;

/// Size and bounds of a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStats {
    pub segments: usize,
    /// Sum of the segment file sizes.
    pub bytes: u64,
    pub first_index: Option<u64>,
    pub next_index: u64,
}

/// A segmented append-only log of [`Entry`]s; the single writer of its directory.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    state: SharedState,
    sync: Arc<SyncState>,
    buf: Vec<u8>,
    new_points: Vec<IndexPoint>,
}

impl Log {
    /// Opens (creating if missing) the log in `dir`, truncating a torn tail.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, LogError> {
        if dir.exists() {
            install::resume(dir)?;
        }
        let state = recovery::recover(dir, &config)?;
        let active = state.segments.last().map(|s| s.file.clone());
        let cache_window = config.cache_window_bytes;
        debug!(
            dir = %dir.display(),
            segments = state.segments.len(),
            first_index = ?state.first_index(),
            next_index = state.next_index,
            "opened log"
        );
        Ok(Log {
            dir: dir.to_path_buf(),
            config,
            state: Arc::new(RwLock::new(state)),
            sync: Arc::new(SyncState::new(dir, active, cache_window)?),
            buf: Vec::new(),
            new_points: Vec::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Appends `entries` (buffered in the OS, not fsynced). The first index must be
    /// `next_index()`, except on an empty log (fresh or fully purged), which accepts any.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        for e in entries {
            if e.payload.len() > MAX_PAYLOAD {
                return Err(LogError::EntryTooLarge {
                    index: e.index,
                    len: e.payload.len(),
                    max: MAX_PAYLOAD,
                });
            }
        }
        for w in entries.windows(2) {
            if w[0].index.checked_add(1) != Some(w[1].index) {
                return Err(LogError::NonContiguous {
                    expected: w[0].index.wrapping_add(1),
                    got: w[1].index,
                });
            }
        }
        let (next, empty) = {
            let st = state::read(&self.state);
            (st.next_index, st.first_index().is_none())
        };
        if first.index != next {
            if !empty {
                return Err(LogError::NonContiguous {
                    expected: next,
                    got: first.index,
                });
            }
            self.reset_to(first.index)?;
        }
        let mut rest = entries;
        while let Some(head) = rest.first() {
            if state::read(&self.state).segments.is_empty() {
                self.create_segment(head.index)?;
            }
            let written = self.append_to_active(rest)?;
            if written == 0 {
                self.roll(head.index)?;
            }
            rest = &rest[written..];
        }
        Ok(())
    }

    fn should_roll(&self, base: u64, end_after: u64, first_ts: Option<i64>, e: &Entry) -> bool {
        end_after > self.config.segment_bytes
            || first_ts.is_some_and(|f| e.timestamp_ms.saturating_sub(f) > self.config.segment_max_age_ms)
            || e.index - base >= u64::from(u32::MAX)
    }

    /// Writes as many of `entries` as fit in the active segment with one positioned write;
    /// returns how many (0 when the segment must roll first).
    fn append_to_active(&mut self, entries: &[Entry]) -> Result<usize, LogError> {
        let (file, base, size, seg_next, mut last_point, mut max_ts, mut first_ts) = {
            let st = state::read(&self.state);
            let Some(seg) = st.segments.last() else {
                return Ok(0);
            };
            let last_point = seg.points.last().map(|p| p.pos);
            (
                seg.file.clone(),
                seg.base,
                seg.size,
                seg.next_index,
                last_point,
                seg.max_ts,
                seg.first_ts,
            )
        };
        self.buf.clear();
        self.new_points.clear();
        let interval = u64::from(self.config.index_interval_bytes);
        let mut written = 0;
        for e in entries {
            let pos = size + self.buf.len() as u64;
            let nonempty = seg_next > base || written > 0;
            let end_after = pos + frame::frame_len(e.payload.len()) as u64;
            if nonempty && self.should_roll(base, end_after, first_ts, e) {
                break;
            }
            if last_point.is_none_or(|p| pos - p >= interval) {
                self.new_points.push(IndexPoint {
                    index: e.index,
                    pos,
                    max_ts_before: max_ts,
                });
                last_point = Some(pos);
            }
            first_ts.get_or_insert(e.timestamp_ms);
            max_ts = max_ts.max(e.timestamp_ms);
            frame::encode_into(&mut self.buf, e);
            written += 1;
        }
        if written > 0 {
            file.write_all_at(&self.buf, size)?;
            let mut st = state::write(&self.state);
            let next_index = entries[written - 1].index + 1;
            if let Some(seg) = st.segments.last_mut() {
                seg.size = size + self.buf.len() as u64;
                seg.next_index = next_index;
                seg.points.extend_from_slice(&self.new_points);
                seg.max_ts = max_ts;
                seg.first_ts = first_ts;
                seg.last_term = entries[written - 1].term;
            }
            st.next_index = next_index;
        }
        if self.buf.capacity() > MAX_RETAINED_BUFFER {
            self.buf = Vec::new();
        }
        Ok(written)
    }

    fn create_segment(&mut self, base: u64) -> Result<(), LogError> {
        let file = Arc::new(segment::create(&self.dir, base)?);
        {
            let mut st = state::write(&self.state);
            let carry = st.segments.last().map_or(i64::MIN, |s| s.max_ts);
            st.segments.push(SegmentView {
                base,
                file: file.clone(),
                size: 0,
                next_index: base,
                points: Vec::new(),
                max_ts: carry,
                first_ts: None,
                last_term: 0,
            });
            st.next_index = base;
        }
        self.sync.set_active(Some(file), true);
        debug!(dir = %self.dir.display(), base, "created segment");
        Ok(())
    }

    /// Seals the active segment (fsync, index files) and starts a new one at `next_base`.
    fn roll(&mut self, next_base: u64) -> Result<(), LogError> {
        let sealed = {
            let st = state::read(&self.state);
            st.segments
                .last()
                .map(|s| (s.file.clone(), s.base, s.points.clone()))
        };
        if let Some((file, base, points)) = sealed {
            file.sync_data()?;
            segment::write_indexes(&self.dir, base, &points)?;
        }
        self.create_segment(next_base)
    }

    /// Empties the log (all of it is purged) so that it restarts at `index`.
    fn reset_to(&mut self, index: u64) -> Result<(), LogError> {
        let bases: Vec<u64> = {
            let mut st = state::write(&self.state);
            st.next_index = index;
            st.segments.drain(..).map(|s| s.base).collect()
        };
        self.sync.set_active(None, false);
        for base in bases.iter().rev() {
            segment::remove(&self.dir, *base)?;
        }
        let purged = state::read(&self.state).purged;
        if purged.is_some_and(|p| p >= index) {
            let purged = index.checked_sub(1);
            meta::write(&self.dir, purged)?;
            state::write(&self.state).purged = purged;
        } else if !bases.is_empty() {
            meta::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// fsyncs everything appended so far.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.sync.sync()
    }

    /// A handle that fsyncs what was appended so far without `&mut Log`.
    pub fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            state: self.sync.clone(),
        }
    }

    pub fn next_index(&self) -> u64 {
        state::read(&self.state).next_index
    }

    pub fn first_index(&self) -> Option<u64> {
        state::read(&self.state).first_index()
    }

    /// The entries `<= purged_through()` are no longer readable.
    pub fn purged_through(&self) -> Option<u64> {
        state::read(&self.state).purged
    }

    /// Index and term of the last entry, `None` when the log is empty.
    pub fn last_entry_id(&self) -> Option<(u64, u64)> {
        state::read(&self.state).last_entry_id()
    }

    pub fn reader(&self) -> LogReader {
        LogReader::new(self.state.clone(), &self.dir)
    }

    pub fn stats(&self) -> LogStats {
        let st = state::read(&self.state);
        LogStats {
            segments: st.segments.len(),
            bytes: st.segments.iter().map(|s| s.size).sum(),
            first_index: st.first_index(),
            next_index: st.next_index,
        }
    }

    /// Removes every entry after `index` (all of them for `None`); durable when it returns.
    pub fn truncate_after(&mut self, index: Option<u64>) -> Result<(), LogError> {
        let (keep, cut) = {
            let st = state::read(&self.state);
            let Some(keep) = index else {
                let next = st.first_index().unwrap_or(st.next_index);
                drop(st);
                return self.remove_all(next);
            };
            if keep.saturating_add(1) >= st.next_index {
                return Ok(());
            }
            let k = st.segments.partition_point(|s| s.base <= keep);
            let Some(seg) = k.checked_sub(1).map(|i| &st.segments[i]) else {
                drop(st);
                return self.remove_all(keep + 1);
            };
            (keep, self.cut_point(seg, keep)?)
        };
        let (cut_pos, max_ts, last_term) = cut;
        let cut_index = keep + 1;
        let (file, base, later) = {
            let mut st = state::write(&self.state);
            let k = st.segments.partition_point(|s| s.base <= keep);
            let later: Vec<u64> = st.segments.drain(k..).map(|s| s.base).collect();
            st.next_index = cut_index;
            let Some(seg) = st.segments.last_mut() else {
                return Ok(());
            };
            seg.size = cut_pos;
            seg.next_index = cut_index;
            seg.points.retain(|p| p.index < cut_index);
            seg.max_ts = max_ts;
            seg.last_term = last_term;
            (seg.file.clone(), seg.base, later)
        };
        self.sync.set_active(Some(file.clone()), false);
        for b in later.iter().rev() {
            segment::remove(&self.dir, *b)?;
        }
        segment::remove_indexes(&self.dir, base)?;
        // Later segments must be gone for good before this one is cut, or a crash could
        // leave a gap between them.
        meta::sync_dir(&self.dir)?;
        file.set_len(cut_pos)?;
        file.sync_all()?;
        debug!(dir = %self.dir.display(), keep, removed_segments = later.len(), "truncated log");
        Ok(())
    }

    /// End position of entry `keep` in `seg`, with the running maximum timestamp and the
    /// term at that entry.
    fn cut_point(&self, seg: &SegmentView, keep: u64) -> Result<(u64, i64, u64), LogError> {
        if keep.saturating_add(1) >= seg.next_index {
            return Ok((seg.size, seg.max_ts, seg.last_term));
        }
        let path = || segment::log_path(&self.dir, seg.base);
        let Some(start) = index::point_at_or_before(&seg.points, keep) else {
            return Err(LogError::corrupt(path(), 0, "no index point"));
        };
        let mut scanner = FrameScanner::new(&seg.file, start.pos, seg.size, false);
        let mut max_ts = start.max_ts_before;
        loop {
            match scanner.next_frame()? {
                Scanned::Frame { pos, header } => {
                    max_ts = max_ts.max(header.timestamp_ms);
                    if header.index == keep {
                        return Ok((pos + header.frame_len(), max_ts, header.term));
                    }
                }
                Scanned::End => return Err(LogError::corrupt(path(), seg.size, "entry not found")),
                Scanned::Invalid { pos, reason } => return Err(LogError::corrupt(path(), pos, reason)),
            }
        }
    }

    /// Deletes every segment; the log becomes empty with `next_index` as its next index.
    fn remove_all(&mut self, next_index: u64) -> Result<(), LogError> {
        let bases: Vec<u64> = {
            let mut st = state::write(&self.state);
            st.next_index = next_index;
            st.segments.drain(..).map(|s| s.base).collect()
        };
        self.sync.set_active(None, false);
        for b in bases.iter().rev() {
            segment::remove(&self.dir, *b)?;
        }
        meta::sync_dir(&self.dir)?;
        Ok(())
    }

    /// Makes entries `<= index` unreadable (durably) and deletes the segments holding only such
    /// entries. Purging past the end empties the log, which then accepts any next index.
    pub fn purge_through(&mut self, index: u64) -> Result<(), LogError> {
        if state::read(&self.state).purged.is_some_and(|p| p >= index) {
            return Ok(());
        }
        meta::write(&self.dir, Some(index))?;
        let (removed, emptied) = {
            let mut st = state::write(&self.state);
            st.purged = Some(index);
            let n = st
                .segments
                .iter()
                .take_while(|s| s.next_index <= index.saturating_add(1))
                .count();
            let removed: Vec<u64> = st.segments.drain(..n).map(|s| s.base).collect();
            let emptied = st.segments.is_empty();
            if emptied {
                st.next_index = st.next_index.max(index.saturating_add(1));
            }
            (removed, emptied)
        };
        if emptied {
            self.sync.set_active(None, false);
        }
        self.remove_segments(&removed)
    }

    /// Retention: the last index of the oldest sealed segments whose newest entry is older than
    /// `cutoff_ms` (what [`Log::delete_expired`] would delete), `None` when none has expired.
    pub fn expired_through(&self, cutoff_ms: i64) -> Option<u64> {
        let st = state::read(&self.state);
        let sealed = st.segments.len().saturating_sub(1);
        st.segments[..sealed]
            .iter()
            .take_while(|s| s.max_ts < cutoff_ms)
            .last()
            .map(|s| s.next_index.saturating_sub(1))
    }

    /// Replaces every entry with those of the log in the subdirectory `staged` (written by
    /// another [`Log`], which must be closed), crash-atomically: after a crash, [`Log::open`]
    /// finishes the install. Readers see the new entries when it returns; the staged
    /// directory is gone.
    pub fn install(&mut self, staged: &str) -> Result<(), LogError> {
        install::install(&self.dir, staged)?;
        let fresh = recovery::recover(&self.dir, &self.config)?;
        let active = fresh.segments.last().map(|s| s.file.clone());
        *state::write(&self.state) = fresh;
        self.sync.set_active(active, true);
        debug!(dir = %self.dir.display(), staged, "installed a log");
        Ok(())
    }

    /// Retention: deletes sealed segments whose newest entry is older than `cutoff_ms`, oldest
    /// first, stopping at the first that is not expired. Returns how many were deleted.
    pub fn delete_expired(&mut self, cutoff_ms: i64) -> Result<usize, LogError> {
        let removed: Vec<u64> = {
            let mut st = state::write(&self.state);
            let sealed = st.segments.len().saturating_sub(1);
            let n = st.segments[..sealed]
                .iter()
                .take_while(|s| s.max_ts < cutoff_ms)
                .count();
            st.segments.drain(..n).map(|s| s.base).collect()
        };
        self.remove_segments(&removed)?;
        Ok(removed.len())
    }

    fn remove_segments(&mut self, bases: &[u64]) -> Result<(), LogError> {
        if bases.is_empty() {
            return Ok(());
        }
        for b in bases {
            segment::remove(&self.dir, *b)?;
        }
        meta::sync_dir(&self.dir)?;
        debug!(dir = %self.dir.display(), segments = bases.len(), "removed segments");
        Ok(())
    }
}
