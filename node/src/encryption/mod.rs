//! Server-side encryption at rest (StartStreamEncryption / StopStreamEncryption): the batches of
//! an encrypted stream are sealed with AES-256-GCM by the shard's leader before they enter the
//! Raft log, under master keys from a keyring file that stands in for AWS KMS.

mod cipher;
mod envelope;
mod keyring;

pub use cipher::BatchCipher;
pub use cipher::OpenError;
pub use cipher::Opened;
pub use cipher::SealError;
pub use cipher::StreamKeys;
pub use keyring::AWS_MANAGED_ALIAS;
pub use keyring::Keyring;
pub use keyring::KeyringError;
pub use keyring::KeyringSource;
pub use keyring::ResolveError;
