//! The master keys a node encrypts with, read from a keyring file that every node of a cluster
//! shares (in Kubernetes, a Secret mounted into each pod). It stands in for AWS KMS: a stream's
//! `KeyId` names one of these keys, by id, alias or ARN.
//!
//! ```text
//! # comments and blank lines are ignored
//! key   <key id> <32 bytes, base64>
//! alias alias/<name> <key id>
//! ```
//!
//! A key id is 1–128 characters of `[A-Za-z0-9_-]`; AWS's key ids are UUIDs. Keys are never
//! removed by Runnel: a record sealed with a key can only be read while the keyring holds it.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use base64::Engine;
use ring::rand::SecureRandom;
use ring::rand::SystemRandom;

/// The alias of the key AWS manages for Kinesis, which a generated keyring also defines.
pub const AWS_MANAGED_ALIAS: &str = "alias/aws/kinesis";
pub const KEY_BYTES: usize = 32;

/// A 256-bit master key.
#[derive(Clone)]
pub struct MasterKey(pub(super) [u8; KEY_BYTES]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read keyring {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write keyring {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("keyring line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("no randomness for a new key")]
    Random,
}

/// Why a `KeyId` names no key of the keyring.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("Alias {0} is not found.")]
    NoAlias(String),
    #[error("Key '{0}' does not exist")]
    NoKey(String),
    #[error("Invalid keyId '{0}'")]
    Malformed(String),
}

/// Where a node's keyring comes from.
#[derive(Clone, Debug, Default)]
pub enum KeyringSource {
    /// No keys: StartStreamEncryption fails with KMSNotFoundException.
    #[default]
    Empty,
    File(PathBuf),
    /// The file, created with a new key first if there is none (a standalone node's default).
    CreateIfMissing(PathBuf),
}

impl KeyringSource {
    pub fn load(&self) -> Result<Keyring, KeyringError> {
        match self {
            KeyringSource::Empty => Ok(Keyring::empty()),
            KeyringSource::File(path) => Keyring::load(path),
            KeyringSource::CreateIfMissing(path) => Keyring::load_or_create(path),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: BTreeMap<String, MasterKey>,
    aliases: BTreeMap<String, String>,
}

fn valid_key_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_alias(alias: &str) -> bool {
    alias.strip_prefix("alias/").is_some_and(|name| {
        (1..=250).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    })
}

impl Keyring {
    /// A keyring without keys: every `KeyId` is unknown.
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        let mut ring = Keyring::default();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let err = |message: String| KeyringError::Parse { line, message };
            let fields: Vec<&str> = raw.split_whitespace().collect();
            match fields.as_slice() {
                [] => {}
                [first, ..] if first.starts_with('#') => {}
                ["key", id, material] => {
                    if !valid_key_id(id) {
                        return Err(err(format!("invalid key id {id:?}")));
                    }
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(material)
                        .map_err(|e| err(format!("key {id}: material is not base64: {e}")))?;
                    let key = <[u8; KEY_BYTES]>::try_from(bytes.as_slice())
                        .map_err(|_| err(format!("key {id}: material must be {KEY_BYTES} bytes")))?;
                    if ring.keys.insert((*id).to_string(), MasterKey(key)).is_some() {
                        return Err(err(format!("key {id} is defined twice")));
                    }
                }
                ["alias", alias, id] => {
                    if !valid_alias(alias) {
                        return Err(err(format!("invalid alias {alias:?} (alias/<name>)")));
                    }
                    if ring
                        .aliases
                        .insert((*alias).to_string(), (*id).to_string())
                        .is_some()
                    {
                        return Err(err(format!("alias {alias} is defined twice")));
                    }
                }
                _ => {
                    return Err(err(
                        "expected `key <id> <base64>` or `alias alias/<name> <id>`".to_string()
                    ));
                }
            }
        }
        for (alias, id) in &ring.aliases {
            if !ring.keys.contains_key(id) {
                return Err(KeyringError::Parse {
                    line: 0,
                    message: format!("alias {alias} names key {id}, which is not in the keyring"),
                });
            }
        }
        Ok(ring)
    }

    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Keyring::parse(&text)
    }

    /// The keyring at `path`, created first (with one new key, [`AWS_MANAGED_ALIAS`] naming
    /// it, readable by the owner only) if there is none: a standalone node's default.
    pub fn load_or_create(path: &Path) -> Result<Keyring, KeyringError> {
        if !path.exists() {
            let text = Keyring::generate()?;
            let write_err = |source| KeyringError::Write {
                path: path.display().to_string(),
                source,
            };
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(path).map_err(write_err)?;
            file.write_all(text.as_bytes()).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        Keyring::load(path)
    }

    /// The text of a new keyring: one random key and the [`AWS_MANAGED_ALIAS`] alias.
    pub fn generate() -> Result<String, KeyringError> {
        let mut material = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut material)
            .map_err(|_| KeyringError::Random)?;
        let id = uuid::Uuid::new_v4().to_string();
        let encoded = base64::engine::general_purpose::STANDARD.encode(material);
        Ok(format!(
            "# Runnel keyring: the master keys of server-side encryption. Every node of a cluster\n\
             # needs the same keyring; keep every key that ever encrypted a record you still want.\n\
             key {id} {encoded}\n\
             alias {AWS_MANAGED_ALIAS} {id}\n"
        ))
    }

    /// The key id a stream's `KeyId` names: a key id, `alias/<name>`, or their KMS ARNs
    /// (`arn:aws:kms:<region>:<account>:key/<id>`, `...:alias/<name>`).
    pub fn resolve(&self, key_id: &str) -> Result<String, ResolveError> {
        let name = match key_id.strip_prefix("arn:") {
            Some(arn) => {
                let parts: Vec<&str> = arn.splitn(5, ':').collect();
                match parts.as_slice() {
                    [_partition, "kms", _region, _account, resource] => match resource.strip_prefix("key/") {
                        Some(id) => id,
                        None if resource.starts_with("alias/") => resource,
                        None => return Err(ResolveError::Malformed(key_id.to_string())),
                    },
                    _ => return Err(ResolveError::Malformed(key_id.to_string())),
                }
            }
            None => key_id,
        };
        if name.starts_with("alias/") {
            return self
                .aliases
                .get(name)
                .cloned()
                .ok_or_else(|| ResolveError::NoAlias(key_id.to_string()));
        }
        if self.keys.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(ResolveError::NoKey(key_id.to_string()))
        }
    }

    /// The master key of a key id (as [`Keyring::resolve`] returns it).
    pub fn key(&self, id: &str) -> Option<&MasterKey> {
        self.keys.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn ring() -> Keyring {
        Keyring::parse(&format!(
            "# test\n\nkey k-1 {K}\nkey 1234abcd-12ab-34cd-56ef-1234567890ab {K}\nalias alias/aws/kinesis k-1\nalias alias/orders/prod 1234abcd-12ab-34cd-56ef-1234567890ab\n"
        ))
        .unwrap()
    }

    #[test]
    fn resolves_ids_aliases_and_arns() {
        let r = ring();
        let uuid = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(r.resolve("k-1").unwrap(), "k-1");
        assert_eq!(r.resolve("alias/aws/kinesis").unwrap(), "k-1");
        assert_eq!(r.resolve("alias/orders/prod").unwrap(), uuid);
        assert_eq!(
            r.resolve(&format!("arn:aws:kms:us-east-1:000000000000:key/{uuid}"))
                .unwrap(),
            uuid
        );
        assert_eq!(
            r.resolve("arn:aws:kms:eu-west-1:123456789012:alias/aws/kinesis")
                .unwrap(),
            "k-1"
        );
        assert_eq!(
            r.resolve("alias/nope"),
            Err(ResolveError::NoAlias("alias/nope".into()))
        );
        assert_eq!(r.resolve("k-2"), Err(ResolveError::NoKey("k-2".into())));
        assert!(matches!(
            r.resolve("arn:aws:s3:::bucket"),
            Err(ResolveError::Malformed(_))
        ));
        assert!(matches!(
            r.resolve("arn:aws:kms:us-east-1:0:grant/x"),
            Err(ResolveError::Malformed(_))
        ));
        assert!(Keyring::empty().resolve("alias/aws/kinesis").is_err());
    }

    #[test]
    fn refuses_malformed_keyrings_with_the_line() {
        let bad = [
            ("key k-1 notbase64!", 1),
            ("key k-1 AAEC", 1),
            (&format!("key k/1 {K}") as &str, 1),
            (&format!("key k-1 {K}\nkey k-1 {K}"), 2),
            ("\nalias orders k-1", 2),
            ("frob", 1),
        ];
        for (text, line) in bad {
            match Keyring::parse(text) {
                Err(KeyringError::Parse { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(Keyring::parse("alias alias/x missing").is_err());
    }

    #[test]
    fn a_generated_keyring_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring");
        let first = Keyring::load_or_create(&path).unwrap();
        let id = first.resolve(AWS_MANAGED_ALIAS).unwrap();
        let again = Keyring::load_or_create(&path).unwrap();
        assert_eq!(again.resolve(AWS_MANAGED_ALIAS).unwrap(), id);
        assert_eq!(first.key(&id).unwrap().0, again.key(&id).unwrap().0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0);
        }
        // Two generated keyrings never share a key.
        let other = Keyring::parse(&Keyring::generate().unwrap()).unwrap();
        let other_id = other.resolve(AWS_MANAGED_ALIAS).unwrap();
        assert_ne!(other_id, id);
        assert_ne!(other.key(&other_id).unwrap().0, first.key(&id).unwrap().0);
    }
}
