//! The hottest hash key of each shard over a window of writes (pure): what the operator's
//! autoscaler needs to split a shard next to a hot key instead of at the middle of its range.
//!
//! Each shard keeps a weighted Misra–Gries summary of [`SLOTS`] counters over the bytes written
//! per hash key. A key's count is a lower bound of its bytes, short by at most
//! `total / (SLOTS + 1)`, so a key with half of a shard's bytes is always the one reported.

use std::collections::HashMap;

/// Counters per shard.
pub const SLOTS: usize = 8;

/// One shard's summary over the current window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySketch {
    slots: Vec<(u128, u64)>,
    total: u64,
}

/// The hottest key of a shard's window: a lower bound of its bytes, and the window's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HottestKey {
    pub hash_key: u128,
    pub bytes: u64,
    pub window_bytes: u64,
}

impl KeySketch {
    pub fn observe(&mut self, key: u128, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.total += bytes;
        if let Some(slot) = self.slots.iter_mut().find(|(k, _)| *k == key) {
            slot.1 += bytes;
            return;
        }
        if self.slots.len() < SLOTS {
            self.slots.push((key, bytes));
            return;
        }
        // Full: take the smallest count (or what is left of the new weight) off everyone.
        let min = self.slots.iter().map(|(_, c)| *c).min().unwrap_or(0);
        let cut = min.min(bytes);
        for slot in &mut self.slots {
            slot.1 -= cut;
        }
        self.slots.retain(|(_, c)| *c > 0);
        let rest = bytes - cut;
        if rest > 0 && self.slots.len() < SLOTS {
            self.slots.push((key, rest));
        }
    }

    pub fn hottest(&self) -> Option<HottestKey> {
        self.slots
            .iter()
            .max_by_key(|(k, c)| (*c, std::cmp::Reverse(*k)))
            .map(|(k, c)| HottestKey {
                hash_key: *k,
                bytes: *c,
                window_bytes: self.total,
            })
    }
}

/// The summaries of every shard written through this node in the current window.
#[derive(Debug, Default)]
pub struct HotKeyWindows {
    shards: HashMap<(String, u32), KeySketch>,
}

impl HotKeyWindows {
    pub fn observe(&mut self, stream: &str, shard: u32, key: u128, bytes: u64) {
        match self.shards.get_mut(&(stream.to_string(), shard)) {
            Some(s) => s.observe(key, bytes),
            None => {
                let mut s = KeySketch::default();
                s.observe(key, bytes);
                self.shards.insert((stream.to_string(), shard), s);
            }
        }
    }

    /// Ends the window: the hottest key of every shard written in it; the next window starts
    /// empty.
    pub fn roll(&mut self) -> Vec<(String, u32, HottestKey)> {
        let mut out: Vec<(String, u32, HottestKey)> = self
            .shards
            .drain()
            .filter_map(|((stream, shard), s)| s.hottest().map(|h| (stream, shard, h)))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_dominant_key_is_reported_with_its_share() {
        let mut s = KeySketch::default();
        for i in 0..1000u128 {
            s.observe(7, 600);
            s.observe(1000 + i, 400);
        }
        let h = s.hottest().unwrap();
        assert_eq!(h.hash_key, 7);
        assert_eq!(h.window_bytes, 1_000_000);
        // A lower bound, within total / (SLOTS + 1) of the truth.
        assert!(h.bytes <= 600_000 && h.bytes >= 600_000 - 1_000_000 / (SLOTS as u64 + 1));
    }

    #[test]
    fn windows_roll_per_shard_and_start_empty() {
        let mut w = HotKeyWindows::default();
        w.observe("a", 0, 5, 10);
        w.observe("a", 0, 5, 10);
        w.observe("a", 1, 9, 3);
        w.observe("b", 0, 2, 0);
        let rolled = w.roll();
        assert_eq!(
            rolled,
            vec![
                (
                    "a".into(),
                    0,
                    HottestKey {
                        hash_key: 5,
                        bytes: 20,
                        window_bytes: 20
                    }
                ),
                (
                    "a".into(),
                    1,
                    HottestKey {
                        hash_key: 9,
                        bytes: 3,
                        window_bytes: 3
                    }
                ),
            ]
        );
        assert!(w.roll().is_empty());
    }

    proptest! {
        /// Misra–Gries' guarantee, weighted: the count of the reported key is never above its
        /// true bytes, and any key with more than half the bytes is the one reported.
        #[test]
        fn counts_are_lower_bounds_and_a_majority_key_wins(
            writes in proptest::collection::vec((0u128..20, 1u64..1000), 1..400),
        ) {
            let mut s = KeySketch::default();
            let mut truth: HashMap<u128, u64> = HashMap::new();
            for (k, b) in &writes {
                s.observe(*k, *b);
                *truth.entry(*k).or_default() += b;
            }
            let total: u64 = truth.values().sum();
            let h = s.hottest().unwrap();
            prop_assert_eq!(h.window_bytes, total);
            prop_assert!(h.bytes <= truth[&h.hash_key]);
            if let Some((k, _)) = truth.iter().find(|(_, b)| **b * 2 > total) {
                prop_assert_eq!(h.hash_key, *k);
                prop_assert!(h.bytes + total / (SLOTS as u64 + 1) >= truth[k]);
            }
        }
    }
}
