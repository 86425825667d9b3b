//! The time index of a segment: for each index point, the running maximum of the timestamps
//! of all entries before it. Timestamps may go backwards (a leader's clock), so lookups work on
//! the running maximum: an entry's effective timestamp is `max(all previous, its own)`, which
//! is non-decreasing, and `find_by_timestamp` is a binary search here plus a short scan.
//!
//! On disk, `<base>.timeindex` holds `(running max before i64, relative index u32)`
//! little-endian pairs, one per offset-index point.

use crate::index::IndexPoint;

/// Size of one `.timeindex` record.
pub const RECORD_LEN: usize = 12;

/// The point to start scanning from to find the first entry whose effective timestamp is
/// `>= ts`: the last point whose entries before it are all `< ts`. `None` if even the first
/// point is preceded by a timestamp `>= ts` (then the answer is the first entry).
pub fn scan_start(points: &[IndexPoint], ts: i64) -> Option<IndexPoint> {
    let n = points.partition_point(|p| p.max_ts_before < ts);
    n.checked_sub(1).map(|i| points[i])
}

/// Encodes the time index of a segment starting at `base`.
pub fn encode(base: u64, points: &[IndexPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * RECORD_LEN);
    for p in points {
        let rel = u32::try_from(p.index - base).unwrap_or(u32::MAX);
        out.extend_from_slice(&p.max_ts_before.to_le_bytes());
        out.extend_from_slice(&rel.to_le_bytes());
    }
    out
}

/// Decodes a time index and merges it with the decoded offset index `offsets` into points,
/// checking that both describe the same entries and that timestamps never decrease.
pub fn decode_merged(bytes: &[u8], base: u64, offsets: &[(u32, u64)]) -> Result<Vec<IndexPoint>, String> {
    if bytes.len() != offsets.len() * RECORD_LEN {
        return Err(format!(
            "time index has {} bytes for {} index points",
            bytes.len(),
            offsets.len()
        ));
    }
    let mut out: Vec<IndexPoint> = Vec::with_capacity(offsets.len());
    for (rec, &(rel, pos)) in bytes.chunks_exact(RECORD_LEN).zip(offsets) {
        let mut ts = [0; 8];
        ts.copy_from_slice(&rec[..8]);
        let mut r = [0; 4];
        r.copy_from_slice(&rec[8..]);
        let (ts, r) = (i64::from_le_bytes(ts), u32::from_le_bytes(r));
        if r != rel {
            return Err("time index and offset index disagree".into());
        }
        if out.last().is_some_and(|p| p.max_ts_before > ts) {
            return Err("time index is decreasing".into());
        }
        out.push(IndexPoint {
            index: base + u64::from(rel),
            pos,
            max_ts_before: ts,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<IndexPoint> {
        [(0, i64::MIN), (4, 100), (8, 100), (12, 250)]
            .into_iter()
            .map(|(index, max_ts_before)| IndexPoint {
                index,
                pos: index * 100,
                max_ts_before,
            })
            .collect()
    }

    #[test]
    fn scan_start_is_last_point_preceded_only_by_older_entries() {
        let p = points();
        assert_eq!(scan_start(&p, i64::MIN), None);
        assert_eq!(scan_start(&p, 50).map(|p| p.index), Some(0));
        assert_eq!(scan_start(&p, 100).map(|p| p.index), Some(0));
        assert_eq!(scan_start(&p, 101).map(|p| p.index), Some(8));
        assert_eq!(scan_start(&p, 1000).map(|p| p.index), Some(12));
    }

    #[test]
    fn file_round_trip_and_sanity() {
        let p = points();
        let offsets: Vec<(u32, u64)> = p.iter().map(|p| (p.index as u32, p.pos)).collect();
        assert_eq!(decode_merged(&encode(0, &p), 0, &offsets).unwrap(), p);
        assert!(decode_merged(&encode(0, &p[..3]), 0, &offsets).is_err());
        let mut swapped = p.clone();
        swapped[1].max_ts_before = 300;
        assert!(decode_merged(&encode(0, &swapped), 0, &offsets).is_err());
    }
}
