//! The on-disk encoding of one entry: a fixed 40-byte header followed by the payload.
//!
//! ```text
//! offset size field
//!      0    4 magic (format version included), little endian
//!      4    4 CRC32C of bytes 8..40 and of the payload
//!      8    4 payload length
//!     12    1 kind
//!     13    3 reserved, zero
//!     16    8 index
//!     24    8 term
//!     32    8 timestamp_ms
//!     40    . payload
//! ```
//!
//! The CRC covers the length, so a torn or garbage header is detected as well as a torn
//! payload; zeros from a preallocated or partially written tail fail the magic check.

use crate::Entry;

/// `"RNL"` followed by the format version (1).
pub const MAGIC: u32 = 0x524E_4C01;
/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 40;
/// Largest payload a frame can carry.
pub const MAX_PAYLOAD: usize = (u32::MAX as usize) - HEADER_LEN;

/// A decoded, not necessarily CRC-checked, frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub crc: u32,
    pub payload_len: u32,
    pub kind: u8,
    pub index: u64,
    pub term: u64,
    pub timestamp_ms: i64,
}

impl FrameHeader {
    /// Header plus payload.
    pub fn frame_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Why bytes are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("incomplete frame: {needed} bytes needed, {available} available")]
    Incomplete { needed: u64, available: u64 },
    #[error("bad magic {0:#010x}")]
    BadMagic(u32),
    #[error("reserved header bytes are not zero")]
    BadReserved,
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
}

/// Size of the encoded frame of a payload of `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// Appends the frame of `entry` to `buf`. The caller checks `payload.len() <= MAX_PAYLOAD`.
pub fn encode_into(buf: &mut Vec<u8>, entry: &Entry) {
    let start = buf.len();
    let len = u32::try_from(entry.payload.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&MAGIC.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[entry.kind, 0, 0, 0]);
    buf.extend_from_slice(&entry.index.to_le_bytes());
    buf.extend_from_slice(&entry.term.to_le_bytes());
    buf.extend_from_slice(&entry.timestamp_ms.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&buf[start + 8..start + HEADER_LEN]),
        &entry.payload,
    );
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&entry.payload);
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes the header at the start of `bytes` (magic and reserved bytes checked, CRC not).
pub fn decode_header(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::Incomplete {
            needed: HEADER_LEN as u64,
            available: bytes.len() as u64,
        });
    }
    let magic = u32_at(bytes, 0);
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    if bytes[13..16] != [0, 0, 0] {
        return Err(FrameError::BadReserved);
    }
    Ok(FrameHeader {
        crc: u32_at(bytes, 4),
        payload_len: u32_at(bytes, 8),
        kind: bytes[12],
        index: u64_at(bytes, 16),
        term: u64_at(bytes, 24),
        timestamp_ms: u64_at(bytes, 32) as i64,
    })
}

/// Checks the CRC of a frame whose header and payload are `frame` (exactly one frame).
pub fn check_crc(header: &FrameHeader, frame: &[u8]) -> Result<(), FrameError> {
    let computed = crc32c::crc32c_append(crc32c::crc32c(&frame[8..HEADER_LEN]), &frame[HEADER_LEN..]);
    if computed == header.crc {
        Ok(())
    } else {
        Err(FrameError::BadCrc {
            stored: header.crc,
            computed,
        })
    }
}

/// Decodes and CRC-checks the frame at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<FrameHeader, FrameError> {
    let header = decode_header(bytes)?;
    let len = header.frame_len();
    if (bytes.len() as u64) < len {
        return Err(FrameError::Incomplete {
            needed: len,
            available: bytes.len() as u64,
        });
    }
    check_crc(&header, &bytes[..len as usize])?;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn entry(payload: &'static [u8]) -> Entry {
        Entry {
            index: 42,
            term: 7,
            timestamp_ms: -5,
            kind: 3,
            payload: Bytes::from_static(payload),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_into(&mut buf, &entry(b"hello"));
        encode_into(&mut buf, &entry(b""));
        assert_eq!(buf.len(), frame_len(5) + frame_len(0));
        let h = decode(&buf).unwrap();
        assert_eq!(
            (h.index, h.term, h.timestamp_ms, h.kind, h.payload_len),
            (42, 7, -5, 3, 5)
        );
        assert_eq!(&buf[HEADER_LEN..HEADER_LEN + 5], b"hello");
        let h2 = decode(&buf[h.frame_len() as usize..]).unwrap();
        assert_eq!(h2.payload_len, 0);
    }

    #[test]
    fn detects_every_single_bit_flip() {
        let mut buf = Vec::new();
        encode_into(&mut buf, &entry(b"payload bytes"));
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(decode(&b).is_err(), "flip at byte {byte} bit {bit} undetected");
            }
        }
    }

    #[test]
    fn detects_crc_mismatch_in_payload() {
        let mut buf = Vec::new();
        encode_into(&mut buf, &entry(b"abc"));
        let last = buf.len() - 1;
        buf[last] = b'x';
        assert!(matches!(decode(&buf), Err(FrameError::BadCrc { .. })));
    }

    #[test]
    fn detects_torn_and_zeroed_frames() {
        let mut buf = Vec::new();
        encode_into(&mut buf, &entry(b"abcdef"));
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Err(FrameError::Incomplete { .. })),
                "cut {cut}"
            );
        }
        assert_eq!(decode(&[0; 64]), Err(FrameError::BadMagic(0)));
    }
}
