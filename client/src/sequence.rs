//! Decoding the shard index that a sequence number encodes (layout in docs/DESIGN: "version 2").

/// Hex digits of a version-2 sequence number.
const HEX_DIGITS: usize = 47;
/// The shard index is the 8 hex digits before the final `2`.
const SHARD_INDEX_AT: usize = HEX_DIGITS - 9;

/// The index of the shard (`shardId-<index>`) that a sequence number belongs to, when it has
/// the version-2 layout; `None` for anything else.
pub fn shard_index_of_sequence_number(sequence_number: &str) -> Option<u32> {
    let hex = decimal_to_hex(sequence_number)?;
    if hex.len() != HEX_DIGITS || !hex.starts_with('2') || !hex.ends_with('2') {
        return None;
    }
    u32::from_str_radix(hex.get(SHARD_INDEX_AT..SHARD_INDEX_AT + 8)?, 16).ok()
}

/// Converts an arbitrarily long decimal string to lowercase hex without leading zeros.
fn decimal_to_hex(decimal: &str) -> Option<String> {
    if decimal.is_empty() || decimal.len() > 100 || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut hex = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        // Long division by 16.
        let mut remainder = 0;
        let mut quotient = Vec::with_capacity(digits.len());
        for d in digits {
            let value = remainder * 10 + d;
            let q = value / 16;
            remainder = value % 16;
            if !(quotient.is_empty() && q == 0) {
                quotient.push(q);
            }
        }
        hex.push(char::from_digit(remainder, 16)?);
        digits = quotient;
    }
    if hex.is_empty() {
        hex.push('0');
    }
    Some(hex.iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decimal form of a hex string, for building test inputs.
    fn hex_to_decimal(hex: &str) -> String {
        let mut digits = vec![0u32];
        for c in hex.chars() {
            let mut carry = c.to_digit(16).unwrap_or(0);
            for d in digits.iter_mut().rev() {
                let value = *d * 16 + carry;
                *d = value % 10;
                carry = value / 10;
            }
            while carry > 0 {
                digits.insert(0, carry % 10);
                carry /= 10;
            }
        }
        digits
            .iter()
            .map(|d| char::from_digit(*d, 10).unwrap_or('0'))
            .collect()
    }

    #[test]
    fn decimal_to_hex_small_numbers() {
        assert_eq!(decimal_to_hex("0").as_deref(), Some("0"));
        assert_eq!(decimal_to_hex("255").as_deref(), Some("ff"));
        assert_eq!(decimal_to_hex("4096").as_deref(), Some("1000"));
        assert_eq!(decimal_to_hex("12x"), None);
    }

    #[test]
    fn decodes_the_shard_index() {
        // 2 · creation time · last digit of index · sequence index · 00 · arrival · index · 2
        let hex = format!(
            "2{}{}{}00{}{}2",
            "6a1b2c3d4", "5", "0000000000000007", "6a1b2c3e0", "00000015"
        );
        assert_eq!(hex.len(), 47);
        let decimal = hex_to_decimal(&hex);
        assert_eq!(decimal_to_hex(&decimal), Some(hex));
        assert_eq!(shard_index_of_sequence_number(&decimal), Some(0x15));
    }

    #[test]
    fn other_layouts_are_not_decoded() {
        assert_eq!(shard_index_of_sequence_number("12345"), None);
        assert_eq!(shard_index_of_sequence_number(""), None);
        let hex = format!("3{}", "0".repeat(46));
        assert_eq!(shard_index_of_sequence_number(&hex_to_decimal(&hex)), None);
    }
}
