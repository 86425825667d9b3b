//! AWS event-stream framing (`application/vnd.amazon.eventstream`), the body of a
//! SubscribeToShard response. A message is:
//!
//! ```text
//! total length (u32 BE) | headers length (u32 BE) | CRC32 of the previous 8 bytes (u32 BE)
//! headers | payload | CRC32 of everything before it (u32 BE)
//! ```
//!
//! and a header is `name length (u8) | name | value type (u8) | value`; only string values
//! (type 7: `u16 BE length | UTF-8`) are written here.

use bytes::Bytes;

pub const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

const STRING_VALUE: u8 = 7;
/// Prelude (8) + prelude CRC (4) + message CRC (4).
const OVERHEAD: usize = 16;

/// One message with string headers, in the order given.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut encoded_headers = Vec::new();
    for (name, value) in headers {
        // Header names are at most 255 bytes and values at most 32 KiB; ours are constants
        // and exception messages, which are truncated rather than framed wrongly.
        let name = &name.as_bytes()[..name.len().min(u8::MAX as usize)];
        let value = &value.as_bytes()[..value.len().min(i16::MAX as usize)];
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name);
        encoded_headers.push(STRING_VALUE);
        encoded_headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        encoded_headers.extend_from_slice(value);
    }
    let total = OVERHEAD + encoded_headers.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&encoded_headers);
    out.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    Bytes::from(out)
}

/// An event (`:message-type` event) of type `event_type`.
pub fn event(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// A modeled exception of the event stream (`:message-type` exception), e.g.
/// ResourceInUseException when a newer subscription took over.
pub fn exception(exception_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    encode(
        &[
            (":exception-type", exception_type),
            (":content-type", content_type),
            (":message-type", "exception"),
        ],
        payload,
    )
}

/// A decoded message, for tests and for checking frames.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message is shorter than its prelude says")]
    Truncated,
    #[error("prelude CRC mismatch")]
    PreludeCrc,
    #[error("message CRC mismatch")]
    MessageCrc,
    #[error("malformed header")]
    Header,
}

/// Decodes the first message of `buf`; returns it and the number of bytes it took.
pub fn decode(buf: &[u8]) -> Result<(Message, usize), DecodeError> {
    let be32 = |b: &[u8]| -> u32 { u32::from_be_bytes([b[0], b[1], b[2], b[3]]) };
    if buf.len() < OVERHEAD {
        return Err(DecodeError::Truncated);
    }
    let total = be32(&buf[0..4]) as usize;
    let headers_len = be32(&buf[4..8]) as usize;
    if crc32fast::hash(&buf[0..8]) != be32(&buf[8..12]) {
        return Err(DecodeError::PreludeCrc);
    }
    if total < OVERHEAD + headers_len || buf.len() < total {
        return Err(DecodeError::Truncated);
    }
    if crc32fast::hash(&buf[..total - 4]) != be32(&buf[total - 4..total]) {
        return Err(DecodeError::MessageCrc);
    }
    let mut h = &buf[12..12 + headers_len];
    let mut headers = Vec::new();
    while !h.is_empty() {
        let name_len = h[0] as usize;
        let name = h.get(1..1 + name_len).ok_or(DecodeError::Header)?;
        h = &h[1 + name_len..];
        if h.first() != Some(&STRING_VALUE) || h.len() < 3 {
            return Err(DecodeError::Header);
        }
        let len = u16::from_be_bytes([h[1], h[2]]) as usize;
        let value = h.get(3..3 + len).ok_or(DecodeError::Header)?;
        headers.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        h = &h[3 + len..];
    }
    let payload = buf[12 + headers_len..total - 4].to_vec();
    Ok((Message { headers, payload }, total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A message without headers or payload is 16 bytes: the known prelude CRC of
    /// `00 00 00 10 00 00 00 00` and the message CRC over the first 12 bytes.
    #[test]
    fn empty_message_layout() {
        let m = encode(&[], b"");
        assert_eq!(m.len(), 16);
        assert_eq!(&m[0..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
        assert_eq!(&m[8..12], &0x05c2_48ebu32.to_be_bytes());
        assert_eq!(&m[12..16], &crc32fast::hash(&m[0..12]).to_be_bytes());
    }

    #[test]
    fn events_round_trip_with_their_headers() {
        let m = event(
            "SubscribeToShardEvent",
            "application/x-amz-json-1.1",
            b"{\"Records\":[]}",
        );
        let (d, used) = decode(&m).unwrap();
        assert_eq!(used, m.len());
        assert_eq!(
            d.headers,
            vec![
                (":event-type".into(), "SubscribeToShardEvent".into()),
                (":content-type".into(), "application/x-amz-json-1.1".into()),
                (":message-type".into(), "event".into()),
            ]
        );
        assert_eq!(d.payload, b"{\"Records\":[]}");
        // Header bytes: 1 + 11 + 1 + 2 + 21 for the first one, and so on.
        let headers_len = u32::from_be_bytes([m[4], m[5], m[6], m[7]]) as usize;
        assert_eq!(
            headers_len,
            (1 + 11 + 3 + 21) + (1 + 13 + 3 + 26) + (1 + 13 + 3 + 5)
        );
        let x = exception("ResourceInUseException", "application/json", b"{}");
        let (d, _) = decode(&x).unwrap();
        assert_eq!(
            d.headers[0],
            (":exception-type".into(), "ResourceInUseException".into())
        );
        assert_eq!(d.headers[2], (":message-type".into(), "exception".into()));
    }

    #[test]
    fn corruption_is_detected() {
        let m = event("initial-response", "application/json", b"{}").to_vec();
        let mut bad = m.clone();
        bad[3] ^= 1;
        assert_eq!(decode(&bad).unwrap_err(), DecodeError::PreludeCrc);
        let mut bad = m.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        assert_eq!(decode(&bad).unwrap_err(), DecodeError::MessageCrc);
        assert_eq!(decode(&m[..m.len() - 1]).unwrap_err(), DecodeError::Truncated);
    }
}
