//! Segment files: naming, creation, frame scanning and the sealed index files.
//!
//! A segment is named by its first index, zero-padded (`00000000000000000042.log`), with
//! `.index` and `.timeindex` companions written when it is sealed (rolled away from).

use std::fs;
use std::fs::File;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::path::PathBuf;

use tracing::debug;

use crate::frame;
use crate::frame::FrameHeader;
use crate::frame::HEADER_LEN;
use crate::index;
use crate::index::IndexPoint;
use crate::time_index;

const LOG_EXT: &str = ".log";
const INDEX_EXT: &str = ".index";
const TIME_INDEX_EXT: &str = ".timeindex";
/// Read size of recovery scans.
const SCAN_CHUNK: usize = 1 << 20;
/// Read size of header-only scans (lookups).
const HEADER_SCAN_CHUNK: usize = 64 << 10;

pub fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{LOG_EXT}"))
}

fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{INDEX_EXT}"))
}

fn time_index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{TIME_INDEX_EXT}"))
}

fn parse_base(name: &str, ext: &str) -> Option<u64> {
    let digits = name.strip_suffix(ext)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The base index of a segment data file name.
pub fn parse_log_name(name: &str) -> Option<u64> {
    parse_base(name, LOG_EXT)
}

/// The base index of an index or time index file name.
pub fn parse_index_name(name: &str) -> Option<u64> {
    parse_base(name, INDEX_EXT).or_else(|| parse_base(name, TIME_INDEX_EXT))
}

/// Creates (or empties) the data file of a new segment.
pub fn create(dir: &Path, base: u64) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(log_path(dir, base))
}

pub fn open(dir: &Path, base: u64) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(log_path(dir, base))
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub fn remove_indexes(dir: &Path, base: u64) -> io::Result<()> {
    remove_if_exists(&index_path(dir, base))?;
    remove_if_exists(&time_index_path(dir, base))
}

/// Removes a segment: data file first, so that a crash never leaves a segment without data
/// but with stale indexes that could be trusted.
pub fn remove(dir: &Path, base: u64) -> io::Result<()> {
    remove_if_exists(&log_path(dir, base))?;
    remove_indexes(dir, base)
}

/// Writes the index files of a sealed segment. They are not fsynced: they are checked on open
/// and rebuilt from the data when they do not match it.
pub fn write_indexes(dir: &Path, base: u64, points: &[IndexPoint]) -> io::Result<()> {
    fs::write(index_path(dir, base), index::encode(base, points))?;
    fs::write(time_index_path(dir, base), time_index::encode(base, points))
}

/// Loads the index files of a sealed segment of `segment_len` bytes, `None` if they are
/// missing or fail the sanity checks.
pub fn load_indexes(dir: &Path, base: u64, segment_len: u64) -> Option<Vec<IndexPoint>> {
    let offsets = fs::read(index_path(dir, base)).ok()?;
    let times = fs::read(time_index_path(dir, base)).ok()?;
    let merged = index::decode(&offsets, segment_len)
        .and_then(|offsets| time_index::decode_merged(&times, base, &offsets));
    match merged {
        Ok(points) => Some(points),
        Err(reason) => {
            debug!(base, %reason, "ignoring index files of segment");
            None
        }
    }
}

/// What a [`FrameScanner`] found next.
#[derive(Debug)]
pub enum Scanned {
    Frame { pos: u64, header: FrameHeader },
    End,
    Invalid { pos: u64, reason: String },
}

/// Walks the frames of `file` between two positions with large positioned reads.
pub struct FrameScanner<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    verify: bool,
    chunk: usize,
    buf: Vec<u8>,
    buf_pos: u64,
}

impl<'f> FrameScanner<'f> {
    /// `verify`: check CRCs (reads payloads); otherwise only headers are read.
    pub fn new(file: &'f File, pos: u64, end: u64, verify: bool) -> Self {
        let chunk = if verify { SCAN_CHUNK } else { HEADER_SCAN_CHUNK };
        FrameScanner {
            file,
            pos,
            end,
            verify,
            chunk,
            buf: Vec::new(),
            buf_pos: 0,
        }
    }

    /// Position of the next frame.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    fn ensure(&mut self, at: u64, len: u64) -> io::Result<usize> {
        let buf_end = self.buf_pos + self.buf.len() as u64;
        if at < self.buf_pos || at + len > buf_end {
            let want = len.max(self.chunk as u64).min(self.end - at);
            self.buf.resize(want as usize, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.buf_pos = at;
        }
        Ok((at - self.buf_pos) as usize)
    }

    pub fn next_frame(&mut self) -> io::Result<Scanned> {
        let pos = self.pos;
        if pos >= self.end {
            return Ok(Scanned::End);
        }
        let available = self.end - pos;
        if available < HEADER_LEN as u64 {
            return Ok(Scanned::Invalid {
                pos,
                reason: format!("incomplete header ({available} bytes)"),
            });
        }
        let off = self.ensure(pos, HEADER_LEN as u64)?;
        let header = match frame::decode_header(&self.buf[off..off + HEADER_LEN]) {
            Ok(h) => h,
            Err(e) => {
                return Ok(Scanned::Invalid {
                    pos,
                    reason: e.to_string(),
                });
            }
        };
        let len = header.frame_len();
        if len > available {
            return Ok(Scanned::Invalid {
                pos,
                reason: format!("incomplete frame ({available} of {len} bytes)"),
            });
        }
        if self.verify {
            let off = self.ensure(pos, len)?;
            if let Err(e) = frame::check_crc(&header, &self.buf[off..off + len as usize]) {
                return Ok(Scanned::Invalid {
                    pos,
                    reason: e.to_string(),
                });
            }
        }
        self.pos = pos + len;
        Ok(Scanned::Frame { pos, header })
    }
}

/// Result of validating a segment's frames.
#[derive(Debug)]
pub struct ScanOutcome {
    pub points: Vec<IndexPoint>,
    pub next_index: u64,
    /// End of the last valid frame.
    pub valid_len: u64,
    /// Running maximum timestamp after the last valid frame.
    pub max_ts: i64,
    /// Timestamp of the first frame scanned.
    pub first_ts: Option<i64>,
    /// Term of the last valid frame.
    pub last_term: Option<u64>,
    /// Position and reason of the first invalid frame, if the scan stopped before the end.
    pub invalid: Option<(u64, String)>,
}

/// Validates every frame of `file` from `start` (whose index and running max it describes) to
/// `len`, checking CRCs and index contiguity and adding index points to `points` every
/// `interval` bytes (`points`, if not empty, must end with `start`).
pub fn scan(
    file: &File,
    len: u64,
    start: IndexPoint,
    mut points: Vec<IndexPoint>,
    interval: u32,
) -> io::Result<ScanOutcome> {
    let mut scanner = FrameScanner::new(file, start.pos, len, true);
    let (mut next, mut max_ts, mut first_ts, mut invalid) = (start.index, start.max_ts_before, None, None);
    let mut last_term = None;
    loop {
        match scanner.next_frame()? {
            Scanned::End => break,
            Scanned::Invalid { pos, reason } => {
                invalid = Some((pos, reason));
                break;
            }
            Scanned::Frame { pos, header } => {
                if header.index != next {
                    invalid = Some((pos, format!("expected index {next}, found {}", header.index)));
                    break;
                }
                if points
                    .last()
                    .is_none_or(|p| p.pos != pos && pos - p.pos >= u64::from(interval))
                {
                    points.push(IndexPoint {
                        index: next,
                        pos,
                        max_ts_before: max_ts,
                    });
                }
                first_ts.get_or_insert(header.timestamp_ms);
                max_ts = max_ts.max(header.timestamp_ms);
                last_term = Some(header.term);
                next += 1;
            }
        }
    }
    let valid_len = invalid.as_ref().map_or(scanner.pos(), |(pos, _)| *pos);
    Ok(ScanOutcome {
        points,
        next_index: next,
        valid_len,
        max_ts,
        first_ts,
        last_term,
        invalid,
    })
}

/// Timestamp of the first frame of a segment, if it has one.
pub fn first_timestamp(file: &File, len: u64) -> io::Result<Option<i64>> {
    match FrameScanner::new(file, 0, len, false).next_frame()? {
        Scanned::Frame { header, .. } => Ok(Some(header.timestamp_ms)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::Entry;

    fn write_frames(file: &File, indexes: std::ops::Range<u64>) -> Vec<u64> {
        let mut buf = Vec::new();
        let mut positions = Vec::new();
        for i in indexes {
            positions.push(buf.len() as u64);
            let payload = Bytes::from(vec![i as u8; (i as usize * 37) % 500]);
            frame::encode_into(
                &mut buf,
                &Entry {
                    index: i,
                    term: 1,
                    timestamp_ms: i as i64,
                    kind: 0,
                    payload,
                },
            );
        }
        file.write_all_at(&buf, 0).unwrap();
        positions
    }

    #[test]
    fn names() {
        assert_eq!(
            log_path(Path::new("/d"), 42),
            Path::new("/d/00000000000000000042.log")
        );
        assert_eq!(parse_log_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_log_name("42.log"), None);
        assert_eq!(parse_index_name("00000000000000000042.timeindex"), Some(42));
        assert_eq!(parse_index_name("00000000000000000042.log"), None);
    }

    #[test]
    fn scan_builds_points_and_stops_at_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = create(dir.path(), 10).unwrap();
        let positions = write_frames(&file, 10..30);
        let len = file.metadata().unwrap().len();
        let start = IndexPoint {
            index: 10,
            pos: 0,
            max_ts_before: i64::MIN,
        };
        let out = scan(&file, len, start, Vec::new(), 1000).unwrap();
        assert_eq!(
            (out.next_index, out.valid_len, out.max_ts, out.first_ts),
            (30, len, 29, Some(10))
        );
        assert!(out.invalid.is_none());
        assert_eq!(out.points[0], start);
        for p in &out.points {
            assert_eq!(positions[(p.index - 10) as usize], p.pos);
            assert_eq!(
                p.max_ts_before,
                if p.index == 10 {
                    i64::MIN
                } else {
                    p.index as i64 - 1
                }
            );
        }

        file.set_len(len - 3).unwrap();
        let out = scan(&file, len - 3, start, Vec::new(), 1000).unwrap();
        assert_eq!(out.next_index, 29);
        assert_eq!(out.valid_len, positions[19]);
        assert!(out.invalid.is_some());
    }

    #[test]
    fn index_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = create(dir.path(), 5).unwrap();
        write_frames(&file, 5..50);
        let len = file.metadata().unwrap().len();
        let start = IndexPoint {
            index: 5,
            pos: 0,
            max_ts_before: i64::MIN,
        };
        let out = scan(&file, len, start, Vec::new(), 2000).unwrap();
        write_indexes(dir.path(), 5, &out.points).unwrap();
        assert_eq!(load_indexes(dir.path(), 5, len), Some(out.points.clone()));
        fs::write(index_path(dir.path(), 5), [0u8; 24]).unwrap();
        assert_eq!(load_indexes(dir.path(), 5, len), None);
    }
}
