//! The sealed form of a record batch (one Raft entry, one shard-log frame), pure.
//!
//! ```text
//! u8 version (2) | u32 count | u8 key id len | key id | salt (32) | nonce (12) | ciphertext | tag (16)
//! ```
//! The plaintext is the whole plain batch (`model::batch`, version 1). The record count stays
//! in the clear at the same offset as in a plain batch, so the state machine counts records
//! without a key. The AES-256-GCM key is derived from the master key with HKDF-SHA256 over the
//! salt: a sealing key is used with one salt by one sealer, which numbers its nonces (a counter,
//! never reused, see `sealer`), so no two batches share a (key, nonce) pair. The header up to the
//! ciphertext is the associated data: changing the key id, salt or count breaks the tag.

use bytes::Bytes;
use ring::aead;
use ring::aead::Aad;
use ring::aead::LessSafeKey;
use ring::aead::Nonce;
use ring::aead::UnboundKey;
use ring::hkdf;

use super::keyring::MasterKey;

pub const SEALED_VERSION: u8 = 2;
pub const SALT_BYTES: usize = 32;
const NONCE_BYTES: usize = aead::NONCE_LEN;
const TAG_BYTES: usize = 16;
const HKDF_INFO: &[u8] = b"runnel record batch v2";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("sealed batch is truncated")]
    Truncated,
    #[error("sealed batch does not authenticate (wrong key or corrupted)")]
    Unauthentic,
    #[error("batch to seal is not a plain batch")]
    NotPlain,
    #[error("key id longer than 255 bytes")]
    KeyIdTooLong,
    #[error("cannot derive the batch key")]
    Derive,
}

/// Whether an encoded batch is sealed.
pub fn is_sealed(encoded: &[u8]) -> bool {
    encoded.first() == Some(&SEALED_VERSION)
}

/// The AES-256-GCM key of a master key and salt.
pub fn derive(master: &MasterKey, salt: &[u8; SALT_BYTES]) -> Result<LessSafeKey, EnvelopeError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(&master.0);
    // `expand` fails only for an output longer than 255 hash lengths; 32 bytes never is.
    let okm = prk
        .expand(&[HKDF_INFO], &aead::AES_256_GCM)
        .map_err(|_| EnvelopeError::Derive)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The clear header of a sealed batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedHeader {
    pub count: u32,
    pub key_id: String,
    pub salt: [u8; SALT_BYTES],
    pub nonce: [u8; NONCE_BYTES],
    /// Where the ciphertext starts.
    body: usize,
}

pub fn header(encoded: &[u8]) -> Result<SealedHeader, EnvelopeError> {
    if !is_sealed(encoded) {
        return Err(EnvelopeError::Truncated);
    }
    let count = encoded
        .get(1..5)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(EnvelopeError::Truncated)?;
    let id_len = usize::from(*encoded.get(5).ok_or(EnvelopeError::Truncated)?);
    let id_end = 6 + id_len;
    let key_id = encoded.get(6..id_end).ok_or(EnvelopeError::Truncated)?;
    let key_id = String::from_utf8(key_id.to_vec()).map_err(|_| EnvelopeError::Unauthentic)?;
    let salt = encoded
        .get(id_end..id_end + SALT_BYTES)
        .and_then(|b| <[u8; SALT_BYTES]>::try_from(b).ok())
        .ok_or(EnvelopeError::Truncated)?;
    let nonce_at = id_end + SALT_BYTES;
    let nonce = encoded
        .get(nonce_at..nonce_at + NONCE_BYTES)
        .and_then(|b| <[u8; NONCE_BYTES]>::try_from(b).ok())
        .ok_or(EnvelopeError::Truncated)?;
    let body = nonce_at + NONCE_BYTES;
    if encoded.len() < body + TAG_BYTES {
        return Err(EnvelopeError::Truncated);
    }
    Ok(SealedHeader {
        count,
        key_id,
        salt,
        nonce,
        body,
    })
}

/// Seals a plain batch under `key` (derived for `salt`) with the nonce numbered `counter`.
pub fn seal(
    plain: &[u8],
    key_id: &str,
    salt: &[u8; SALT_BYTES],
    key: &LessSafeKey,
    counter: u64,
) -> Result<Bytes, EnvelopeError> {
    if plain.first() != Some(&1) || plain.len() < 5 {
        return Err(EnvelopeError::NotPlain);
    }
    let id_len = u8::try_from(key_id.len()).map_err(|_| EnvelopeError::KeyIdTooLong)?;
    let mut nonce = [0u8; NONCE_BYTES];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    let header_len = 6 + key_id.len() + SALT_BYTES + NONCE_BYTES;
    let mut out = Vec::with_capacity(header_len + plain.len() + TAG_BYTES);
    out.push(SEALED_VERSION);
    out.extend_from_slice(&plain[1..5]);
    out.push(id_len);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let (aad, body) = out.split_at_mut(header_len);
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&*aad), body)
        .map_err(|_| EnvelopeError::Unauthentic)?;
    out.extend_from_slice(tag.as_ref());
    Ok(Bytes::from(out))
}

/// Opens a sealed batch with the key derived for its header: the plain batch.
pub fn open(encoded: &[u8], header: &SealedHeader, key: &LessSafeKey) -> Result<Bytes, EnvelopeError> {
    let (aad, body) = encoded.split_at(header.body);
    let mut body = body.to_vec();
    let plain_len = key
        .open_in_place(
            Nonce::assume_unique_for_key(header.nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| EnvelopeError::Unauthentic)?
        .len();
    body.truncate(plain_len);
    // The clear count is authenticated; it must also be the plaintext's.
    if body.first() != Some(&1) || body.get(1..5) != Some(&header.count.to_be_bytes()[..]) {
        return Err(EnvelopeError::Unauthentic);
    }
    Ok(Bytes::from(body))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::Record;
    use crate::model::RecordBatch;

    fn master(b: u8) -> MasterKey {
        MasterKey([b; 32])
    }

    fn plain(n: usize) -> Bytes {
        RecordBatch {
            records: (0..n)
                .map(|i| Record {
                    partition_key: format!("key-{i}"),
                    explicit_hash_key: (i % 2 == 0).then_some(i as u128),
                    data: Bytes::from(vec![i as u8; i * 7]),
                })
                .collect(),
        }
        .encode()
    }

    #[test]
    fn seals_and_opens_keeping_the_count_in_the_clear() {
        let salt = [9u8; SALT_BYTES];
        let key = derive(&master(1), &salt).unwrap();
        let p = plain(5);
        let sealed = seal(&p, "k-1", &salt, &key, 7).unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(&sealed[1..5], &p[1..5]);
        // The data is not in the sealed form.
        assert!(!sealed.windows(5).any(|w| w == b"key-3"));
        let h = header(&sealed).unwrap();
        assert_eq!((h.count, h.key_id.as_str(), h.salt), (5, "k-1", salt));
        assert_eq!(&h.nonce[4..], &7u64.to_be_bytes());
        let opened = open(&sealed, &h, &derive(&master(1), &salt).unwrap()).unwrap();
        assert_eq!(opened, p);
    }

    #[test]
    fn a_wrong_key_salt_or_any_flipped_bit_fails_to_open() {
        let salt = [3u8; SALT_BYTES];
        let key = derive(&master(1), &salt).unwrap();
        let sealed = seal(&plain(3), "k-1", &salt, &key, 0).unwrap();
        let h = header(&sealed).unwrap();
        assert_eq!(
            open(&sealed, &h, &derive(&master(2), &salt).unwrap()),
            Err(EnvelopeError::Unauthentic)
        );
        assert_eq!(
            open(&sealed, &h, &derive(&master(1), &[4u8; SALT_BYTES]).unwrap()),
            Err(EnvelopeError::Unauthentic)
        );
        for i in 1..sealed.len() {
            let mut bad = sealed.to_vec();
            bad[i] ^= 0x01;
            let opened = header(&bad).and_then(|h| open(&bad, &h, &derive(&master(1), &h.salt).unwrap()));
            assert!(opened.is_err(), "flipped byte {i} still opened");
        }
    }

    #[test]
    fn refuses_what_is_not_a_plain_batch() {
        let salt = [0u8; SALT_BYTES];
        let key = derive(&master(1), &salt).unwrap();
        let sealed = seal(&plain(1), "k", &salt, &key, 0).unwrap();
        assert_eq!(seal(&sealed, "k", &salt, &key, 1), Err(EnvelopeError::NotPlain));
        assert_eq!(seal(&[1, 0], "k", &salt, &key, 1), Err(EnvelopeError::NotPlain));
        assert_eq!(
            seal(&plain(1), &"k".repeat(256), &salt, &key, 1),
            Err(EnvelopeError::KeyIdTooLong)
        );
    }

    proptest! {
        #[test]
        fn truncations_never_panic_and_never_open(n in 0usize..6, cut in 0usize..400) {
            let salt = [5u8; SALT_BYTES];
            let key = derive(&master(1), &salt).unwrap();
            let sealed = seal(&plain(n), "key", &salt, &key, 1).unwrap();
            let cut = cut.min(sealed.len().saturating_sub(1));
            let part = &sealed[..cut];
            if let Ok(h) = header(part) {
                prop_assert!(open(part, &h, &key).is_err());
            }
        }
    }
}
