//! Opening a log directory: validate segments, truncate a torn tail, apply the purge point.

use std::fs;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use tracing::debug;
use tracing::error;
use tracing::warn;

use crate::LogConfig;
use crate::LogError;
use crate::index::IndexPoint;
use crate::meta;
use crate::segment;
use crate::state::LogState;
use crate::state::SegmentView;

/// Reads the segments of `dir` (created if missing) into a consistent state.
pub fn recover(dir: &Path, config: &LogConfig) -> Result<LogState, LogError> {
    fs::create_dir_all(dir)?;
    let mut bases = Vec::new();
    let mut index_bases = Vec::new();
    let mut dir_changed = false;
    for dirent in fs::read_dir(dir)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_log_name(name) {
            bases.push(base);
        } else if let Some(base) = segment::parse_index_name(name) {
            index_bases.push(base);
        } else if name.ends_with(".tmp") {
            fs::remove_file(dirent.path())?;
            dir_changed = true;
        }
    }
    bases.sort_unstable();
    for base in index_bases {
        if bases.binary_search(&base).is_err() {
            segment::remove_indexes(dir, base)?;
            dir_changed = true;
        }
    }
    let purged = meta::read(dir)?;

    let mut segments: Vec<SegmentView> = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        if let (Some(p), Some(next)) = (purged, next_base)
            && next <= p.saturating_add(1)
        {
            debug!(base, purged = p, "removing purged segment");
            segment::remove(dir, base)?;
            dir_changed = true;
            continue;
        }
        let file = segment::open(dir, base)?;
        let len = file.metadata()?.len();
        let carry = segments.last().map_or(i64::MIN, |s| s.max_ts);
        let view = if next_base.is_some() {
            recover_sealed(dir, base, file, len, carry, config)?
        } else {
            recover_last(dir, base, file, len, carry, config)?
        };
        if let Some(prev) = segments.last()
            && prev.next_index != base
        {
            let reason = format!(
                "segment starts at index {base} but the previous one ends at {}",
                prev.next_index
            );
            error!(dir = %dir.display(), %reason, "log is not contiguous");
            return Err(LogError::corrupt(segment::log_path(dir, base), 0, reason));
        }
        segments.push(view);
    }
    if let (Some(p), Some(last)) = (purged, segments.last())
        && last.next_index <= p.saturating_add(1)
    {
        // Everything left is purged (the last segment could not be judged before scanning).
        for seg in segments.drain(..) {
            segment::remove(dir, seg.base)?;
        }
        dir_changed = true;
    }
    if dir_changed {
        meta::sync_dir(dir)?;
    }
    let next_index = match segments.last() {
        Some(s) => s.next_index,
        None => purged.map_or(0, |p| p.saturating_add(1)),
    };
    Ok(LogState {
        segments,
        purged,
        next_index,
    })
}

fn view(base: u64, file: File, out: segment::ScanOutcome, first_ts: Option<i64>) -> SegmentView {
    SegmentView {
        base,
        file: Arc::new(file),
        size: out.valid_len,
        next_index: out.next_index,
        points: out.points,
        max_ts: out.max_ts,
        first_ts,
        last_term: out.last_term.unwrap_or(0),
    }
}

/// A sealed segment was fsynced before the next one was created: it must be whole.
fn recover_sealed(
    dir: &Path,
    base: u64,
    file: File,
    len: u64,
    carry: i64,
    config: &LogConfig,
) -> Result<SegmentView, LogError> {
    if let Some(points) = segment::load_indexes(dir, base, len)
        && let Some(&start) = points.last()
    {
        let out = segment::scan(&file, len, start, points, config.index_interval_bytes)?;
        if out.invalid.is_none() {
            let first_ts = segment::first_timestamp(&file, len)?;
            return Ok(view(base, file, out, first_ts));
        }
        debug!(
            base,
            "index files do not match the sealed segment; rebuilding them"
        );
    }
    let start = IndexPoint {
        index: base,
        pos: 0,
        max_ts_before: carry,
    };
    let out = segment::scan(&file, len, start, Vec::new(), config.index_interval_bytes)?;
    let path = segment::log_path(dir, base);
    if let Some((pos, reason)) = out.invalid {
        error!(path = %path.display(), pos, %reason, "corrupt frame in a sealed segment");
        return Err(LogError::corrupt(path, pos, reason));
    }
    if out.next_index == base {
        error!(path = %path.display(), "sealed segment has no entries");
        return Err(LogError::corrupt(path, 0, "sealed segment has no entries"));
    }
    if let Err(e) = segment::write_indexes(dir, base, &out.points) {
        warn!(base, error = %e, "could not rewrite index files");
    }
    let first_ts = out.first_ts;
    Ok(view(base, file, out, first_ts))
}

/// The last segment may end with a torn write: cut it at the first invalid frame.
fn recover_last(
    dir: &Path,
    base: u64,
    file: File,
    len: u64,
    carry: i64,
    config: &LogConfig,
) -> Result<SegmentView, LogError> {
    let start = IndexPoint {
        index: base,
        pos: 0,
        max_ts_before: carry,
    };
    let out = segment::scan(&file, len, start, Vec::new(), config.index_interval_bytes)?;
    if let Some((pos, reason)) = &out.invalid {
        warn!(
            path = %segment::log_path(dir, base).display(),
            pos,
            %reason,
            dropped_bytes = len - pos,
            "truncating torn tail of the log"
        );
        file.set_len(*pos)?;
        file.sync_all()?;
    }
    segment::remove_indexes(dir, base)?;
    let first_ts = out.first_ts;
    Ok(view(base, file, out, first_ts))
}
