//! StartStreamEncryption and StopStreamEncryption: the stream goes UPDATING, then ACTIVE after
//! the transition delay; each shard's leader seals the batches it appends from the moment its
//! catalog replica has applied the change (see `encryption`).

use super::ServiceError;
use super::StreamService;
use super::validate::Violations;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::ENCRYPTION_WINDOW_MS;
use crate::clock;

/// The only `EncryptionType` the two operations take.
const KMS: &str = "KMS";

impl StreamService {
    /// StartStreamEncryption: new records of the stream are encrypted with `key_id` (a key id,
    /// `alias/<name>`, or their ARNs), which this node's keyring must hold.
    pub async fn start_stream_encryption(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<(), ServiceError> {
        let record = self.encryption_target(name, encryption_type, key_id)?;
        self.inner
            .router
            .cipher()
            .keyring()
            .resolve(key_id)
            .map_err(|e| ServiceError::KmsNotFound(e.to_string()))?;
        let now = clock::now_ms();
        let recent = record
            .encryption_changes_ms
            .iter()
            .filter(|&&t| t > now - ENCRYPTION_WINDOW_MS)
            .count();
        let limit = self.config().max_key_changes_per_day;
        if recent >= limit as usize {
            return Err(ServiceError::LimitExceeded(format!(
                "Exceeded the maximum of {limit} StartStreamEncryption calls per rolling 24 hours for stream {name} under account {}.",
                self.config().account
            )));
        }
        self.set_encryption(name, Some(key_id.to_string()), now).await
    }

    /// StopStreamEncryption: new records of the stream are stored unencrypted; the ones
    /// written while it was encrypted stay encrypted.
    pub async fn stop_stream_encryption(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<(), ServiceError> {
        self.encryption_target(name, encryption_type, key_id)?;
        self.set_encryption(name, None, clock::now_ms()).await
    }

    /// The admin API's one call for both (the operator's): start with `key_id`, or stop; an
    /// unencrypted stream needs no stop.
    pub async fn update_encryption(&self, name: &str, key_id: Option<&str>) -> Result<(), ServiceError> {
        match key_id {
            Some(key) => self.start_stream_encryption(name, KMS, key).await,
            None => match self.stream_record(name)?.encryption {
                Some(current) => self.stop_stream_encryption(name, KMS, &current.key_id).await,
                None => Ok(()),
            },
        }
    }

    /// The stream both operations change, ACTIVE, after the checks they share.
    fn encryption_target(
        &self,
        name: &str,
        encryption_type: &str,
        key_id: &str,
    ) -> Result<crate::catalog::StreamRecord, ServiceError> {
        let mut v = Violations::default();
        v.stream_name(name, "streamName");
        v.min_len(key_id, key_id.len(), 1, "keyId");
        v.max_len(key_id, key_id.len(), 2048, "keyId");
        v.into_result()?;
        if encryption_type != KMS {
            return Err(ServiceError::InvalidArgument(format!(
                "EncryptionType {encryption_type} is not supported; the only valid value is {KMS}."
            )));
        }
        self.stream_to_change(name)
    }

    async fn set_encryption(
        &self,
        name: &str,
        key_id: Option<String>,
        now_ms: i64,
    ) -> Result<(), ServiceError> {
        let reply = self
            .propose(CatalogCommand::SetEncryption {
                name: name.into(),
                key_id,
                now_ms,
            })
            .await?;
        if reply == CatalogReply::NotFound {
            return Err(self.not_found(name));
        }
        self.spawn_transition(name.to_owned());
        Ok(())
    }
}
