//! Sealing batches for the shards this node leads, and opening the sealed batches it reads.
//!
//! A shard's leader seals each batch of an encrypted stream right before proposing it, so the
//! Raft log, the shard's segments, snapshots and catch-up transfers only ever hold the sealed
//! form; every node opens what it reads with the same keyring. Sealing state is per shard group
//! and per process: a random salt (so a fresh derived key) when a group first seals here, when
//! the stream's key changes, and after 2^32 batches; within one salt, nonces count up.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::Mutex;

use bytes::Bytes;
use ring::aead::LessSafeKey;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;

use super::envelope;
use super::envelope::EnvelopeError;
use super::envelope::SALT_BYTES;
use super::keyring::Keyring;
use super::keyring::ResolveError;

/// The `KeyId` a stream is encrypted with, if it is (from the catalog).
pub type StreamKeys = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Batches sealed under one salt before a new one is drawn.
const BATCHES_PER_SALT: u64 = 1 << 32;
/// Derived keys of sealed batches kept for reading.
const OPEN_CACHE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The stream's `KeyId` names no key of this node's keyring.
    #[error("{0}")]
    Key(#[from] ResolveError),
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    #[error("no randomness for a salt")]
    Random,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The batch was sealed with a key this node's keyring does not hold.
    #[error(
        "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access (key {0} is not in this node's keyring)."
    )]
    MissingKey(String),
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
}

/// A batch as read: plain, and whether it was stored sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub plain: Bytes,
    pub encrypted: bool,
}

/// Derived keys by (key id, salt).
type OpeningKeys = HashMap<(String, [u8; SALT_BYTES]), Arc<LessSafeKey>>;

struct Sealer {
    key_id: String,
    salt: [u8; SALT_BYTES],
    key: Arc<LessSafeKey>,
    next: u64,
}

pub struct BatchCipher {
    keyring: Keyring,
    stream_keys: StreamKeys,
    random: SystemRandom,
    sealers: Mutex<HashMap<u64, Sealer>>,
    openers: Mutex<OpeningKeys>,
}

impl BatchCipher {
    pub fn new(keyring: Keyring, stream_keys: StreamKeys) -> BatchCipher {
        BatchCipher {
            keyring,
            stream_keys,
            random: SystemRandom::new(),
            sealers: Mutex::new(HashMap::new()),
            openers: Mutex::new(HashMap::new()),
        }
    }

    /// No keys and no encrypted streams: plain batches pass, sealed ones cannot be opened.
    pub fn without_keys() -> BatchCipher {
        BatchCipher::new(Keyring::empty(), Arc::new(|_| None))
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The batch to propose for a shard (Raft group `group`) of `stream`: sealed when the
    /// stream is encrypted, else `batch` itself; and whether it was sealed.
    pub fn seal(&self, stream: &str, group: u64, batch: Bytes) -> Result<(Bytes, bool), SealError> {
        let Some(configured) = (self.stream_keys)(stream) else {
            return Ok((batch, false));
        };
        let key_id = self.keyring.resolve(&configured)?;
        let (key, salt, counter) = {
            let mut sealers = self.sealers.lock().unwrap_or_else(|p| p.into_inner());
            let s = match sealers.entry(group) {
                Entry::Occupied(e) if e.get().key_id == key_id && e.get().next < BATCHES_PER_SALT => {
                    e.into_mut()
                }
                Entry::Occupied(mut e) => {
                    e.insert(self.new_sealer(&key_id)?);
                    e.into_mut()
                }
                Entry::Vacant(e) => e.insert(self.new_sealer(&key_id)?),
            };
            let counter = s.next;
            s.next += 1;
            (s.key.clone(), s.salt, counter)
        };
        let sealed = envelope::seal(&batch, &key_id, &salt, &key, counter)?;
        Ok((sealed, true))
    }

    fn new_sealer(&self, key_id: &str) -> Result<Sealer, SealError> {
        let master = self
            .keyring
            .key(key_id)
            .ok_or_else(|| ResolveError::NoKey(key_id.to_string()))?;
        let mut salt = [0u8; SALT_BYTES];
        self.random.fill(&mut salt).map_err(|_| SealError::Random)?;
        Ok(Sealer {
            key_id: key_id.to_string(),
            salt,
            key: Arc::new(envelope::derive(master, &salt)?),
            next: 0,
        })
    }

    /// Forgets the sealing state of a shard group (its replica stopped here).
    pub fn forget(&self, group: u64) {
        let mut sealers = self.sealers.lock().unwrap_or_else(|p| p.into_inner());
        sealers.remove(&group);
    }

    /// The plain batch of a stored one.
    pub fn open(&self, encoded: Bytes) -> Result<Opened, OpenError> {
        if !envelope::is_sealed(&encoded) {
            return Ok(Opened {
                plain: encoded,
                encrypted: false,
            });
        }
        let header = envelope::header(&encoded)?;
        let cache_key = (header.key_id.clone(), header.salt);
        let cached = {
            let openers = self.openers.lock().unwrap_or_else(|p| p.into_inner());
            openers.get(&cache_key).cloned()
        };
        let key = match cached {
            Some(k) => k,
            None => {
                let master = self
                    .keyring
                    .key(&header.key_id)
                    .ok_or_else(|| OpenError::MissingKey(header.key_id.clone()))?;
                let key = Arc::new(envelope::derive(master, &header.salt)?);
                let mut openers = self.openers.lock().unwrap_or_else(|p| p.into_inner());
                if openers.len() >= OPEN_CACHE {
                    openers.clear();
                }
                openers.insert(cache_key, key.clone());
                key
            }
        };
        let plain = envelope::open(&encoded, &header, &key)?;
        Ok(Opened {
            plain,
            encrypted: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use super::*;
    use crate::model::Record;
    use crate::model::RecordBatch;

    const KEYS: &str = "key a AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\
                        key b HxwdHh8AAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRo=\n\
                        alias alias/aws/kinesis a\n";

    fn batch(tag: &str) -> Bytes {
        RecordBatch {
            records: vec![Record {
                partition_key: tag.into(),
                explicit_hash_key: None,
                data: Bytes::from_static(b"payload"),
            }],
        }
        .encode()
    }

    fn cipher(setting: Arc<RwLock<Option<String>>>) -> BatchCipher {
        BatchCipher::new(
            Keyring::parse(KEYS).unwrap(),
            Arc::new(move |s| {
                if s == "enc" {
                    setting.read().unwrap().clone()
                } else {
                    None
                }
            }),
        )
    }

    #[test]
    fn seals_only_encrypted_streams_and_opens_both() {
        let setting = Arc::new(RwLock::new(Some("alias/aws/kinesis".to_string())));
        let c = cipher(setting.clone());
        let (plain, sealed_plain) = c.seal("other", 1, batch("p")).unwrap();
        assert!(!sealed_plain);
        assert_eq!(plain, batch("p"));
        let (sealed, was_sealed) = c.seal("enc", 2, batch("s")).unwrap();
        assert!(was_sealed);
        assert_eq!(envelope::header(&sealed).unwrap().key_id, "a");
        assert_eq!(
            c.open(sealed).unwrap(),
            Opened {
                plain: batch("s"),
                encrypted: true
            }
        );
        assert!(!c.open(plain).unwrap().encrypted);
        // Stopping encryption: the next batch is plain again.
        *setting.write().unwrap() = None;
        assert!(!c.seal("enc", 2, batch("s")).unwrap().1);
    }

    #[test]
    fn nonces_never_repeat_and_a_key_change_draws_a_new_salt() {
        let setting = Arc::new(RwLock::new(Some("a".to_string())));
        let c = cipher(setting.clone());
        let headers: Vec<_> = (0..3)
            .map(|_| envelope::header(&c.seal("enc", 7, batch("x")).unwrap().0).unwrap())
            .collect();
        assert!(headers.iter().all(|h| h.salt == headers[0].salt));
        let nonces: std::collections::BTreeSet<_> = headers.iter().map(|h| h.nonce).collect();
        assert_eq!(nonces.len(), 3);
        // Another group seals under its own salt.
        let other = envelope::header(&c.seal("enc", 8, batch("x")).unwrap().0).unwrap();
        assert_ne!(other.salt, headers[0].salt);
        *setting.write().unwrap() = Some("b".into());
        let changed = envelope::header(&c.seal("enc", 7, batch("x")).unwrap().0).unwrap();
        assert_eq!(changed.key_id, "b");
        assert_ne!(changed.salt, headers[0].salt);
        // A restarted process (a new cipher) never continues an old salt.
        let again = cipher(Arc::new(RwLock::new(Some("a".into()))));
        let h = envelope::header(&again.seal("enc", 7, batch("x")).unwrap().0).unwrap();
        assert_ne!(h.salt, headers[0].salt);
    }

    #[test]
    fn unknown_keys_are_errors_never_plain_writes_or_reads() {
        let c = cipher(Arc::new(RwLock::new(Some("alias/missing".to_string()))));
        assert!(matches!(
            c.seal("enc", 1, batch("x")),
            Err(SealError::Key(ResolveError::NoAlias(_)))
        ));
        let sealed = cipher(Arc::new(RwLock::new(Some("b".into()))))
            .seal("enc", 1, batch("x"))
            .unwrap()
            .0;
        let keyless = BatchCipher::without_keys();
        assert!(matches!(keyless.open(sealed.clone()), Err(OpenError::MissingKey(k)) if k == "b"));
        // A keyring whose key `b` has other material refuses the batch as unauthentic.
        let swapped = BatchCipher::new(
            Keyring::parse("key b AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
            Arc::new(|_| None),
        );
        assert!(matches!(
            swapped.open(sealed),
            Err(OpenError::Envelope(EnvelopeError::Unauthentic))
        ));
    }
}
