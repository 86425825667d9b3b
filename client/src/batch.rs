//! Splitting records into PutRecords batches within the service limits.

use crate::PutEntry;

/// Limits of one PutRecords call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// At most this many records per call (Kinesis: 500).
    pub max_records: usize,
    /// At most this many bytes of data and partition keys per call (Kinesis: 5 MiB).
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_records: 500,
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

/// Accumulates records and hands out full batches, keeping input order.
///
/// A record larger than `max_bytes` on its own is put in a batch of its own (the server then
/// reports the error for that record); no batch is ever empty.
#[derive(Debug, Default)]
pub struct Batcher {
    limits: BatchLimits,
    current: Vec<PutEntry>,
    current_bytes: usize,
}

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        let limits = BatchLimits {
            max_records: limits.max_records.max(1),
            max_bytes: limits.max_bytes,
        };
        Batcher {
            limits,
            current: Vec::new(),
            current_bytes: 0,
        }
    }

    /// Adds a record; returns the previous batch when this record does not fit in it, or the
    /// current batch when it has just become full.
    pub fn push(&mut self, entry: PutEntry) -> Option<Vec<PutEntry>> {
        let size = entry.size();
        let mut ready = None;
        if !self.current.is_empty() && self.current_bytes + size > self.limits.max_bytes {
            ready = Some(self.take());
        }
        self.current_bytes += size;
        self.current.push(entry);
        if ready.is_none() && (self.current.len() >= self.limits.max_records) {
            ready = Some(self.take());
        }
        ready
    }

    /// The last, partial batch, if any.
    pub fn finish(&mut self) -> Option<Vec<PutEntry>> {
        if self.current.is_empty() {
            None
        } else {
            Some(self.take())
        }
    }

    /// Records waiting in the current batch.
    pub fn pending(&self) -> usize {
        self.current.len()
    }

    fn take(&mut self) -> Vec<PutEntry> {
        self.current_bytes = 0;
        std::mem::take(&mut self.current)
    }
}

/// Splits records into batches of at most `limits.max_records` records and `limits.max_bytes`
/// bytes, in order.
pub fn split_batches(entries: Vec<PutEntry>, limits: BatchLimits) -> Vec<Vec<PutEntry>> {
    let mut batcher = Batcher::new(limits);
    let mut batches = Vec::new();
    for entry in entries {
        if let Some(batch) = batcher.push(entry) {
            batches.push(batch);
        }
    }
    batches.extend(batcher.finish());
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize, size: usize) -> PutEntry {
        PutEntry::new("k", vec![b'x'; size.saturating_sub(1)]).with_index(i)
    }

    impl PutEntry {
        fn with_index(mut self, i: usize) -> Self {
            self.explicit_hash_key = Some(i.to_string());
            self
        }
    }

    fn indices(batches: &[Vec<PutEntry>]) -> Vec<usize> {
        batches
            .iter()
            .flatten()
            .filter_map(|e| e.explicit_hash_key.as_deref().and_then(|k| k.parse().ok()))
            .collect()
    }

    #[test]
    fn splits_by_record_count() {
        let entries: Vec<_> = (0..1234).map(|i| entry(i, 10)).collect();
        let batches = split_batches(entries, BatchLimits::default());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![500, 500, 234]
        );
        assert_eq!(indices(&batches), (0..1234).collect::<Vec<_>>());
    }

    #[test]
    fn splits_by_bytes() {
        // 1 MiB records: five fit in 5 MiB exactly, the sixth starts a new batch.
        let entries: Vec<_> = (0..12).map(|i| entry(i, 1024 * 1024)).collect();
        let batches = split_batches(entries, BatchLimits::default());
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 5, 2]);
        for batch in &batches {
            assert!(batch.iter().map(PutEntry::size).sum::<usize>() <= 5 * 1024 * 1024);
        }
        assert_eq!(indices(&batches), (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn oversized_record_goes_alone() {
        let limits = BatchLimits {
            max_records: 500,
            max_bytes: 100,
        };
        let entries = vec![entry(0, 10), entry(1, 500), entry(2, 10), entry(3, 95)];
        let batches = split_batches(entries, limits);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 1, 1, 1]);
        assert_eq!(indices(&batches), vec![0, 1, 2, 3]);
    }

    #[test]
    fn exact_fit_and_empty_input() {
        let limits = BatchLimits {
            max_records: 3,
            max_bytes: 30,
        };
        let batches = split_batches((0..3).map(|i| entry(i, 10)).collect(), limits);
        assert_eq!(batches.len(), 1);
        assert!(split_batches(Vec::new(), limits).is_empty());
        let mut batcher = Batcher::new(BatchLimits {
            max_records: 0,
            max_bytes: 10,
        });
        assert_eq!(batcher.push(entry(0, 1)).map(|b| b.len()), Some(1));
        assert_eq!(batcher.pending(), 0);
        assert!(batcher.finish().is_none());
    }
}
