//! Inclusive ranges over the 128-bit hash key space.

/// An inclusive hash key range `start..=end`, as a shard owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashRange {
    pub start: u128,
    pub end: u128,
}

impl HashRange {
    /// The whole key space, `0..=2^128-1`.
    pub const FULL: HashRange = HashRange {
        start: 0,
        end: u128::MAX,
    };

    pub fn new(start: u128, end: u128) -> Option<HashRange> {
        (start <= end).then_some(HashRange { start, end })
    }

    /// Number of keys in the range, as a fraction of the whole key space.
    pub fn fraction(&self) -> f64 {
        ((self.end - self.start) as f64 + 1.0) / (u128::MAX as f64 + 1.0)
    }

    pub fn contains(&self, key: u128) -> bool {
        (self.start..=self.end).contains(&key)
    }

    /// True when `next` begins right after `self` ends, so the two can merge.
    pub fn is_adjacent_to(&self, next: &HashRange) -> bool {
        self.end.checked_add(1) == Some(next.start)
    }

    /// The start of the upper half (`NewStartingHashKey` of an even split), or `None` for a
    /// single-key range.
    pub fn midpoint(&self) -> Option<u128> {
        (self.end > self.start).then(|| self.start + (self.end - self.start) / 2 + 1)
    }

    /// The two children of splitting at `new_start` (the first key of the upper child).
    pub fn split_at(&self, new_start: u128) -> Option<(HashRange, HashRange)> {
        (new_start > self.start && new_start <= self.end).then(|| {
            (
                HashRange {
                    start: self.start,
                    end: new_start - 1,
                },
                HashRange {
                    start: new_start,
                    end: self.end,
                },
            )
        })
    }

    /// The range covering `self` and the adjacent `next`.
    pub fn merge(&self, next: &HashRange) -> Option<HashRange> {
        self.is_adjacent_to(next).then_some(HashRange {
            start: self.start,
            end: next.end,
        })
    }

    /// `n` contiguous ranges dividing the key space evenly, as CreateStream does.
    pub fn even(n: u32) -> Vec<HashRange> {
        let n = u128::from(n.max(1));
        let step = u128::MAX / n;
        (0..n)
            .map(|i| {
                let start = if i == 0 { 0 } else { i * step + 1 };
                let end = if i + 1 == n { u128::MAX } else { (i + 1) * step };
                HashRange { start, end }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ranges_tile_the_key_space() {
        for n in [1u32, 2, 3, 4, 7, 100] {
            let ranges = HashRange::even(n);
            assert_eq!(ranges.len(), n as usize);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[ranges.len() - 1].end, u128::MAX);
            for pair in ranges.windows(2) {
                assert!(pair[0].is_adjacent_to(&pair[1]), "{pair:?}");
            }
        }
    }

    #[test]
    fn split_then_merge_round_trips() {
        let r = HashRange::FULL;
        let mid = r.midpoint().unwrap_or_default();
        let (a, b) = r.split_at(mid).unwrap_or((r, r));
        assert!(a.is_adjacent_to(&b));
        assert_eq!(a.merge(&b), Some(r));
        assert!((a.fraction() - 0.5).abs() < 1e-9);
        let single = HashRange { start: 5, end: 5 };
        assert_eq!(single.midpoint(), None);
        assert_eq!(single.split_at(5), None);
    }
}
