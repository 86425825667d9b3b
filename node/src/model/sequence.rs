//! Sequence numbers in the layout Kinesis uses ("version 2"), so tools that parse them keep
//! working. A sequence number is the decimal form of a 47-hex-digit integer:
//!
//! ```text
//! 2 | shard creation secs (9) | shard index low digit (1) | sequence index (16) | 00 |
//!   arrival secs (9) | shard index (8) | 2
//! ```
//!
//! The sequence index is `raft log index << 16 | position of the record in its batch`, so the
//! integer order of two numbers of one shard is the order of their records in the shard.

use std::fmt;

/// Records per Raft entry are at most 2^16; the rest of the 63-bit index is the log index.
pub const POSITION_BITS: u32 = 16;
const MAX_LOG_INDEX: u64 = (1 << (63 - POSITION_BITS)) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber {
    pub shard_created_secs: u64,
    pub shard_index: u32,
    /// Raft log index of the entry holding the record (0 = before the first record).
    pub log_index: u64,
    /// Position of the record within its entry.
    pub position: u16,
    pub arrival_secs: u64,
}

/// Why a string is not a sequence number of a given shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("not a valid sequence number")]
    Malformed,
    #[error("sequence number belongs to another shard")]
    OtherShard,
}

impl SequenceNumber {
    pub fn index(&self) -> u64 {
        (self.log_index.min(MAX_LOG_INDEX) << POSITION_BITS) | u64::from(self.position)
    }

    pub fn to_hex(&self) -> String {
        format!(
            "2{:09x}{:x}{:016x}00{:09x}{:08x}2",
            self.shard_created_secs & 0xf_ffff_ffff,
            self.shard_index & 0xf,
            self.index(),
            self.arrival_secs & 0xf_ffff_ffff,
            self.shard_index,
        )
    }

    /// Parses the decimal form, checking the layout but not the shard.
    pub fn parse(decimal: &str) -> Result<SequenceNumber, SequenceError> {
        let hex = decimal_to_hex(decimal).ok_or(SequenceError::Malformed)?;
        if hex.len() != 47 || !hex.starts_with('2') || !hex.ends_with('2') || &hex[27..29] != "00" {
            return Err(SequenceError::Malformed);
        }
        let field = |r: std::ops::Range<usize>| {
            u64::from_str_radix(&hex[r], 16).map_err(|_| SequenceError::Malformed)
        };
        let shard_created_secs = field(1..10)?;
        let low_digit = field(10..11)?;
        let index = field(11..27)?;
        let arrival_secs = field(29..38)?;
        let shard_index = u32::try_from(field(38..46)?).map_err(|_| SequenceError::Malformed)?;
        if u64::from(shard_index & 0xf) != low_digit || index >> 63 != 0 {
            return Err(SequenceError::Malformed);
        }
        Ok(SequenceNumber {
            shard_created_secs,
            shard_index,
            log_index: index >> POSITION_BITS,
            position: (index & 0xffff) as u16,
            arrival_secs,
        })
    }

    /// Parses and checks that the number was issued by the given shard.
    pub fn parse_for_shard(
        decimal: &str,
        shard_index: u32,
        shard_created_secs: u64,
    ) -> Result<SequenceNumber, SequenceError> {
        let seq = Self::parse(decimal)?;
        if seq.shard_index != shard_index || seq.shard_created_secs != (shard_created_secs & 0xf_ffff_ffff) {
            return Err(SequenceError::OtherShard);
        }
        Ok(seq)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_to_decimal(&self.to_hex()))
    }
}

/// Little-endian base-2^32 digits of a non-negative integer.
type Limbs = Vec<u32>;

fn mul_add(limbs: &mut Limbs, mul: u32, add: u32) {
    let mut carry = u64::from(add);
    for l in limbs.iter_mut() {
        let v = u64::from(*l) * u64::from(mul) + carry;
        *l = v as u32;
        carry = v >> 32;
    }
    if carry > 0 {
        limbs.push(carry as u32);
    }
}

fn div_rem(limbs: &mut Limbs, div: u32) -> u32 {
    let mut rem = 0u64;
    for l in limbs.iter_mut().rev() {
        let v = (rem << 32) | u64::from(*l);
        *l = (v / u64::from(div)) as u32;
        rem = v % u64::from(div);
    }
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    rem as u32
}

fn hex_to_decimal(hex: &str) -> String {
    let mut limbs = Limbs::new();
    for c in hex.chars() {
        mul_add(&mut limbs, 16, c.to_digit(16).unwrap_or(0));
    }
    if limbs.is_empty() {
        return "0".into();
    }
    let mut digits = Vec::new();
    while !limbs.is_empty() {
        digits.push(char::from(b'0' + div_rem(&mut limbs, 10) as u8));
    }
    digits.iter().rev().collect()
}

fn decimal_to_hex(decimal: &str) -> Option<String> {
    if decimal.is_empty() || decimal.len() > 129 || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut limbs = Limbs::new();
    for b in decimal.bytes() {
        mul_add(&mut limbs, 10, u32::from(b - b'0'));
    }
    let mut digits = Vec::new();
    while !limbs.is_empty() {
        digits.push(char::from_digit(div_rem(&mut limbs, 16), 16)?);
    }
    Some(digits.iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(log_index: u64, position: u16) -> SequenceNumber {
        SequenceNumber {
            shard_created_secs: 1_764_000_000,
            shard_index: 0,
            log_index,
            position,
            arrival_secs: 1_764_000_123,
        }
    }

    #[test]
    fn shard_zero_matches_the_aws_pattern() {
        let hex = sample(5, 3).to_hex();
        assert_eq!(hex.len(), 47);
        let re_like = hex.starts_with("20")
            && &hex[10..11] == "0"
            && &hex[27..30] == "000"
            && hex.ends_with("000000002");
        assert!(re_like, "{hex}");
        // Decimal like real ones: 56 digits.
        assert!(sample(5, 3).to_string().len() >= 55);
    }

    #[test]
    fn round_trip_and_shard_check() {
        let s = SequenceNumber {
            shard_index: 17,
            ..sample(99, 499)
        };
        let d = s.to_string();
        assert_eq!(SequenceNumber::parse(&d), Ok(s));
        assert_eq!(SequenceNumber::parse_for_shard(&d, 17, 1_764_000_000), Ok(s));
        assert_eq!(
            SequenceNumber::parse_for_shard(&d, 3, 1_764_000_000),
            Err(SequenceError::OtherShard)
        );
        assert_eq!(SequenceNumber::parse("12"), Err(SequenceError::Malformed));
        assert_eq!(SequenceNumber::parse("abc"), Err(SequenceError::Malformed));
    }

    proptest! {
        #[test]
        fn decimal_order_is_record_order(a in 0u64..1 << 40, pa: u16, b in 0u64..1 << 40, pb: u16, ta in 0u64..1<<35, tb in 0u64..1<<35) {
            let x = SequenceNumber { arrival_secs: ta, ..sample(a, pa) };
            let y = SequenceNumber { arrival_secs: tb, ..sample(b, pb) };
            let (dx, dy) = (x.to_string(), y.to_string());
            let num_order = dx.len().cmp(&dy.len()).then(dx.cmp(&dy));
            prop_assert_eq!(num_order, (a, pa).cmp(&(b, pb)).then(ta.cmp(&tb)));
            prop_assert_eq!(SequenceNumber::parse(&dx), Ok(x));
        }
    }
}
