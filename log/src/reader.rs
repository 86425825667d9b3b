//! Concurrent readers of a log: positioned reads on segment files, with the shared state
//! locked only to pick the segment and file range.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::Entry;
use crate::LogError;
use crate::frame;
use crate::frame::FrameError;
use crate::frame::HEADER_LEN;
use crate::index;
use crate::segment;
use crate::segment::FrameScanner;
use crate::segment::Scanned;
use crate::state;
use crate::state::LogState;
use crate::state::SharedState;
use crate::time_index;

/// Extra bytes read beyond the payload budget, to cover frame headers and the skip from the
/// index point to the first wanted entry.
const READ_SLACK: u64 = 64 << 10;

/// A clonable, `Send + Sync` reader of one log, usable concurrently with its writer.
#[derive(Clone, Debug)]
pub struct LogReader {
    state: SharedState,
    dir: Arc<Path>,
}

/// Where to read in one segment, captured under the lock.
struct Target {
    base: u64,
    file: Arc<File>,
    /// Index and position of the index point at or before the first wanted entry.
    start_index: u64,
    start_pos: u64,
    /// Position before which the first wanted entry starts.
    skip_end: u64,
    /// Position before which every wanted entry ends.
    hard_end: u64,
    next_index: u64,
}

/// How a read in one segment ended.
enum SegmentRead {
    Done,
    Continue,
}

fn check_not_purged(st: &LogState, index: u64) -> Result<(), LogError> {
    match st.first_index() {
        Some(first) if index < first => Err(LogError::Purged {
            index,
            first_index: Some(first),
        }),
        None if index < st.next_index => Err(LogError::Purged {
            index,
            first_index: None,
        }),
        _ => Ok(()),
    }
}

impl LogReader {
    pub(crate) fn new(state: SharedState, dir: &Path) -> Self {
        LogReader {
            state,
            dir: Arc::from(dir),
        }
    }

    fn path(&self, base: u64) -> PathBuf {
        segment::log_path(&self.dir, base)
    }

    pub fn first_index(&self) -> Option<u64> {
        state::read(&self.state).first_index()
    }

    pub fn next_index(&self) -> u64 {
        state::read(&self.state).next_index
    }

    /// Entries from `from_index` on, at most `max_entries`, stopping before an entry that
    /// would take the payload total past `max_bytes` (but always at least one entry when one
    /// exists). Empty beyond the end; `Purged` below the first readable index.
    pub fn read(
        &self,
        from_index: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, LogError> {
        let mut out = Vec::new();
        let mut next = from_index;
        let mut bytes = 0usize;
        while out.len() < max_entries {
            let target = {
                let st = state::read(&self.state);
                if out.is_empty() {
                    check_not_purged(&st, next)?;
                }
                let Some(i) = st.segment_of(next) else { break };
                let seg = &st.segments[i];
                let Some(start) = index::point_at_or_before(&seg.points, next) else {
                    return Err(LogError::corrupt(
                        self.path(seg.base),
                        0,
                        "segment has no index point",
                    ));
                };
                let remaining = (max_entries - out.len()) as u64;
                let last_wanted = next.saturating_add(remaining - 1);
                Target {
                    base: seg.base,
                    file: seg.file.clone(),
                    start_index: start.index,
                    start_pos: start.pos,
                    skip_end: index::point_after(&seg.points, next).map_or(seg.size, |p| p.pos),
                    hard_end: index::point_after(&seg.points, last_wanted).map_or(seg.size, |p| p.pos),
                    next_index: seg.next_index,
                }
            };
            match self.read_segment(&target, &mut next, &mut out, &mut bytes, max_entries, max_bytes)? {
                SegmentRead::Done => break,
                SegmentRead::Continue => {}
            }
        }
        Ok(out)
    }

    fn read_segment(
        &self,
        t: &Target,
        next: &mut u64,
        out: &mut Vec<Entry>,
        bytes: &mut usize,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<SegmentRead, LogError> {
        let (mut pos, mut idx) = (t.start_pos, t.start_index);
        let budget = |bytes: usize| (max_bytes.saturating_sub(bytes) as u64).saturating_add(READ_SLACK);
        let mut window_end = t.hard_end.min(t.skip_end.max(pos).saturating_add(budget(*bytes)));
        while idx < t.next_index && pos < t.hard_end {
            let len = window_end.max(pos + HEADER_LEN as u64).min(t.hard_end) - pos;
            let mut buf = vec![0; len as usize];
            match t.file.read_exact_at(&mut buf, pos) {
                // Truncated concurrently (Raft conflict): what was read so far stays valid.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(SegmentRead::Done),
                r => r?,
            }
            let buf = Bytes::from(buf);
            let mut off = 0usize;
            let mut needed = HEADER_LEN as u64;
            while idx < t.next_index {
                let header = match frame::decode_header(&buf[off..]) {
                    Ok(h) => h,
                    Err(FrameError::Incomplete { .. }) => break,
                    Err(e) => {
                        return Err(LogError::corrupt(
                            self.path(t.base),
                            pos + off as u64,
                            e.to_string(),
                        ));
                    }
                };
                let flen = header.frame_len() as usize;
                if off + flen > buf.len() {
                    needed = flen as u64;
                    break;
                }
                let frame_pos = pos + off as u64;
                if let Err(e) = frame::check_crc(&header, &buf[off..off + flen]) {
                    return Err(LogError::corrupt(self.path(t.base), frame_pos, e.to_string()));
                }
                if header.index != idx {
                    let reason = format!("expected index {idx}, found {}", header.index);
                    return Err(LogError::corrupt(self.path(t.base), frame_pos, reason));
                }
                if idx >= *next {
                    let plen = header.payload_len as usize;
                    if !out.is_empty() && bytes.saturating_add(plen) > max_bytes {
                        return Ok(SegmentRead::Done);
                    }
                    out.push(Entry {
                        index: idx,
                        term: header.term,
                        timestamp_ms: header.timestamp_ms,
                        kind: header.kind,
                        payload: buf.slice(off + HEADER_LEN..off + flen),
                    });
                    *bytes = bytes.saturating_add(plen);
                    *next = idx + 1;
                    if out.len() >= max_entries || *bytes >= max_bytes {
                        return Ok(SegmentRead::Done);
                    }
                }
                off += flen;
                idx += 1;
            }
            pos += off as u64;
            if idx < t.next_index && pos < t.hard_end && pos + needed > t.hard_end {
                return Err(LogError::corrupt(
                    self.path(t.base),
                    pos,
                    "frame crosses the end of the segment",
                ));
            }
            window_end = pos.saturating_add(needed.max(budget(*bytes)));
        }
        Ok(if idx >= t.next_index {
            SegmentRead::Continue
        } else {
            SegmentRead::Done
        })
    }

    /// Exactly the entries of `range`; `Purged` if part of it is purged, `OutOfRange` if it
    /// goes beyond the end.
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<Entry>, LogError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let next_index = self.next_index();
        if range.end > next_index {
            return Err(LogError::OutOfRange {
                index: range.end - 1,
                next_index,
            });
        }
        let want = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        let entries = self.read(range.start, want, usize::MAX)?;
        if entries.len() != want {
            let index = range.start + entries.len() as u64;
            return Err(LogError::OutOfRange {
                index,
                next_index: self.next_index(),
            });
        }
        Ok(entries)
    }

    /// Index of the first entry whose effective timestamp (running maximum of all timestamps
    /// up to and including it) is `>= ts_ms`, `None` if there is none.
    pub fn find_by_timestamp(&self, ts_ms: i64) -> Result<Option<u64>, LogError> {
        let (first, base, file, start, end) = {
            let st = state::read(&self.state);
            let Some(first) = st.first_index() else {
                return Ok(None);
            };
            let from = st.segment_of(first).unwrap_or(0);
            let Some(seg) = st.segments[from..]
                .iter()
                .find(|s| !s.is_empty() && s.max_ts >= ts_ms)
            else {
                return Ok(None);
            };
            let Some(start) = time_index::scan_start(&seg.points, ts_ms) else {
                return Ok(Some(seg.base.max(first)));
            };
            (first, seg.base, seg.file.clone(), start, seg.size)
        };
        let mut scanner = FrameScanner::new(&file, start.pos, end, false);
        let mut max_ts = start.max_ts_before;
        loop {
            match scanner.next_frame()? {
                Scanned::Frame { header, .. } => {
                    max_ts = max_ts.max(header.timestamp_ms);
                    if max_ts >= ts_ms {
                        return Ok(Some(header.index.max(first)));
                    }
                }
                Scanned::End => return Ok(None),
                Scanned::Invalid { pos, reason } => {
                    return Err(LogError::corrupt(self.path(base), pos, reason));
                }
            }
        }
    }

    /// The (own, not running-maximum) timestamp of entry `index`, `None` beyond the end.
    pub fn entry_timestamp(&self, index: u64) -> Result<Option<i64>, LogError> {
        let (base, file, start, end) = {
            let st = state::read(&self.state);
            check_not_purged(&st, index)?;
            let Some(i) = st.segment_of(index) else {
                return Ok(None);
            };
            let seg = &st.segments[i];
            let Some(start) = index::point_at_or_before(&seg.points, index) else {
                return Ok(None);
            };
            (seg.base, seg.file.clone(), start, seg.size)
        };
        let mut scanner = FrameScanner::new(&file, start.pos, end, false);
        loop {
            match scanner.next_frame()? {
                Scanned::Frame { header, .. } if header.index == index => {
                    return Ok(Some(header.timestamp_ms));
                }
                Scanned::Frame { .. } => {}
                Scanned::End => return Ok(None),
                Scanned::Invalid { pos, reason } => {
                    return Err(LogError::corrupt(self.path(base), pos, reason));
                }
            }
        }
    }
}
