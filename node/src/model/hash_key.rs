//! Hash keys: MD5 of the partition key as an unsigned 128-bit big-endian integer, and the even
//! division of `0..=2^128-1` among a stream's shards as Kinesis does it.

use md5::Digest;
use md5::Md5;

/// A closed range of hash keys owned by one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HashKeyRange {
    pub start: u128,
    pub end: u128,
}

impl HashKeyRange {
    pub const FULL: HashKeyRange = HashKeyRange {
        start: 0,
        end: u128::MAX,
    };

    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }
}

/// The hash key Kinesis derives from a partition key.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest);
    u128::from_be_bytes(bytes)
}

/// Parses a decimal explicit hash key; `None` when it is not a decimal in `0..=2^128-1`.
pub fn parse_hash_key(s: &str) -> Option<u128> {
    if s.is_empty() || s.len() > 39 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u128>().ok()
}

/// Divides the whole hash key space into `count` contiguous ranges the way CreateStream does:
/// every shard but the last gets `floor(2^128 / count)` keys and the last one takes the rest.
pub fn divide_evenly(count: u32) -> Vec<HashKeyRange> {
    let n = u128::from(count.max(1));
    if n == 1 {
        return vec![HashKeyRange::FULL];
    }
    // floor(2^128 / n) computed without overflowing: 2^128 = u128::MAX + 1.
    let (q, r) = (u128::MAX / n, u128::MAX % n);
    let step = if r == n - 1 { q + 1 } else { q };
    (0..n)
        .map(|i| {
            let start = i * step;
            let end = if i == n - 1 { u128::MAX } else { (i + 1) * step - 1 };
            HashKeyRange { start, end }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_routing_matches_kinesis() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(partition_key_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn two_shards_split_at_2_pow_127() {
        let r = divide_evenly(2);
        assert_eq!(r[0].end.to_string(), "170141183460469231731687303715884105727");
        assert_eq!(r[1].start.to_string(), "170141183460469231731687303715884105728");
        assert_eq!(r[1].end, u128::MAX);
    }

    #[test]
    fn three_shards_match_aws() {
        let r = divide_evenly(3);
        assert_eq!(r[0].end.to_string(), "113427455640312821154458202477256070484");
        assert_eq!(r[1].start.to_string(), "113427455640312821154458202477256070485");
        assert_eq!(r[1].end.to_string(), "226854911280625642308916404954512140969");
        assert_eq!(r[2].start.to_string(), "226854911280625642308916404954512140970");
    }

    #[test]
    fn ranges_cover_the_space_without_gaps() {
        for n in [0u32, 1, 2, 3, 4, 5, 7, 64, 100, 500, 1024] {
            let r = divide_evenly(n);
            assert_eq!(r.len(), n.max(1) as usize);
            assert_eq!(r[0].start, 0);
            assert_eq!(r[r.len() - 1].end, u128::MAX);
            for w in r.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start);
            }
        }
    }

    #[test]
    fn explicit_hash_key_parsing() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(parse_hash_key("340282366920938463463374607431768211456"), None);
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key(""), None);
    }
}
