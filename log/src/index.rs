//! The sparse offset index of a segment: index points (entry index → file position), one
//! every `index_interval_bytes`, always one at the segment's first entry.
//!
//! In memory an [`IndexPoint`] also carries the time-index value for the same entry (see
//! [`crate::time_index`]). On disk, `<base>.index` holds `(relative index u32, position u64)`
//! little-endian pairs, written when the segment is sealed.

/// One point of a segment's sparse indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexPoint {
    /// Absolute entry index.
    pub index: u64,
    /// File position of the entry's frame.
    pub pos: u64,
    /// Running maximum of the timestamps of all entries before this one (`i64::MIN` if none).
    pub max_ts_before: i64,
}

/// Size of one `.index` record.
pub const RECORD_LEN: usize = 12;

/// The point at or before `index` (the last point whose index is `<= index`).
pub fn point_at_or_before(points: &[IndexPoint], index: u64) -> Option<IndexPoint> {
    let n = points.partition_point(|p| p.index <= index);
    n.checked_sub(1).map(|i| points[i])
}

/// The first point strictly after `index`.
pub fn point_after(points: &[IndexPoint], index: u64) -> Option<IndexPoint> {
    let n = points.partition_point(|p| p.index <= index);
    points.get(n).copied()
}

/// Encodes the offset index of a segment starting at `base`.
pub fn encode(base: u64, points: &[IndexPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(points.len() * RECORD_LEN);
    for p in points {
        let rel = u32::try_from(p.index - base).unwrap_or(u32::MAX);
        out.extend_from_slice(&rel.to_le_bytes());
        out.extend_from_slice(&p.pos.to_le_bytes());
    }
    out
}

/// Decodes an offset index into `(relative index, position)` pairs, checking that it is
/// plausible for a segment of `segment_len` bytes: non-empty, starting at (0, 0), strictly
/// increasing, every position inside the segment.
pub fn decode(bytes: &[u8], segment_len: u64) -> Result<Vec<(u32, u64)>, String> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD_LEN) {
        return Err(format!("offset index has {} bytes", bytes.len()));
    }
    let mut out: Vec<(u32, u64)> = Vec::with_capacity(bytes.len() / RECORD_LEN);
    for rec in bytes.chunks_exact(RECORD_LEN) {
        let mut rel = [0; 4];
        rel.copy_from_slice(&rec[..4]);
        let mut pos = [0; 8];
        pos.copy_from_slice(&rec[4..]);
        let (rel, pos) = (u32::from_le_bytes(rel), u64::from_le_bytes(pos));
        match out.last() {
            None if (rel, pos) != (0, 0) => return Err("offset index does not start at (0, 0)".into()),
            Some(&(r, p)) if rel <= r || pos <= p => return Err("offset index is not increasing".into()),
            _ => {}
        }
        if pos >= segment_len {
            return Err(format!(
                "offset index position {pos} beyond segment end {segment_len}"
            ));
        }
        out.push((rel, pos));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points() -> Vec<IndexPoint> {
        [(10, 0), (13, 5000), (20, 9100)]
            .into_iter()
            .map(|(index, pos)| IndexPoint {
                index,
                pos,
                max_ts_before: 0,
            })
            .collect()
    }

    #[test]
    fn lookups() {
        let p = points();
        assert_eq!(point_at_or_before(&p, 9), None);
        assert_eq!(point_at_or_before(&p, 10).map(|p| p.pos), Some(0));
        assert_eq!(point_at_or_before(&p, 12).map(|p| p.pos), Some(0));
        assert_eq!(point_at_or_before(&p, 13).map(|p| p.pos), Some(5000));
        assert_eq!(point_at_or_before(&p, 99).map(|p| p.pos), Some(9100));
        assert_eq!(point_after(&p, 9).map(|p| p.index), Some(10));
        assert_eq!(point_after(&p, 13).map(|p| p.index), Some(20));
        assert_eq!(point_after(&p, 20), None);
    }

    #[test]
    fn file_round_trip_and_sanity() {
        let bytes = encode(10, &points());
        assert_eq!(
            decode(&bytes, 10_000).unwrap(),
            vec![(0, 0), (3, 5000), (10, 9100)]
        );
        assert!(decode(&bytes, 9100).is_err(), "position beyond end");
        assert!(decode(&bytes[..20], 10_000).is_err(), "torn record");
        assert!(decode(&[0; 24], 10_000).is_err(), "zeros");
        assert!(decode(&[], 10_000).is_err(), "empty");
    }
}
