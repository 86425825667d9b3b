//! Per-shard throughput limits and utilisation.

/// AWS's per-shard write limit in bytes per second (1 MiB/s).
pub const SHARD_WRITE_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;
/// AWS's per-shard write limit in records per second.
pub const SHARD_WRITE_RECORDS_PER_SEC: f64 = 1000.0;
/// AWS's per-shard shared-throughput read limit in bytes per second (2 MiB/s).
pub const SHARD_READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

/// Throughput limits of one shard.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShardCapacity {
    pub write_bytes_per_sec: f64,
    pub write_records_per_sec: f64,
    pub read_bytes_per_sec: f64,
}

impl Default for ShardCapacity {
    fn default() -> Self {
        ShardCapacity {
            write_bytes_per_sec: SHARD_WRITE_BYTES_PER_SEC,
            write_records_per_sec: SHARD_WRITE_RECORDS_PER_SEC,
            read_bytes_per_sec: SHARD_READ_BYTES_PER_SEC,
        }
    }
}

/// Rates observed on one shard over one sampling interval.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadSample {
    /// End of the sampling interval on the caller's clock.
    pub at: super::Seconds,
    pub write_bytes_per_sec: f64,
    pub write_records_per_sec: f64,
    pub read_bytes_per_sec: f64,
}

impl ShardCapacity {
    /// The fraction of the shard's capacity a sample uses: the most constrained of write bytes,
    /// write records and read bytes (1.0 = at the limit).
    pub fn utilization(&self, s: &LoadSample) -> f64 {
        let ratio = |used: f64, limit: f64| if limit > 0.0 { used.max(0.0) / limit } else { 0.0 };
        ratio(s.write_bytes_per_sec, self.write_bytes_per_sec)
            .max(ratio(s.write_records_per_sec, self.write_records_per_sec))
            .max(ratio(s.read_bytes_per_sec, self.read_bytes_per_sec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_is_the_tightest_limit() {
        let cap = ShardCapacity::default();
        let s = LoadSample {
            at: 0,
            write_bytes_per_sec: 512.0 * 1024.0,
            write_records_per_sec: 900.0,
            read_bytes_per_sec: 0.0,
        };
        assert!((cap.utilization(&s) - 0.9).abs() < 1e-9);
    }
}
