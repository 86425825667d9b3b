//! StartStreamEncryption and StopStreamEncryption.

use super::KinesisApi;
use super::protocol::ApiError;
use super::protocol::Out;
use super::stream_of;
use crate::service::document::Doc;

pub(super) async fn start_stream_encryption(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service()
        .start_stream_encryption(
            &name,
            doc.str("EncryptionType").unwrap_or_default(),
            doc.str("KeyId").unwrap_or_default(),
        )
        .await?;
    Ok(Out::new().doc())
}

pub(super) async fn stop_stream_encryption(api: &KinesisApi, doc: Doc) -> Result<Doc, ApiError> {
    let name = stream_of(api, &doc)?;
    api.service()
        .stop_stream_encryption(
            &name,
            doc.str("EncryptionType").unwrap_or_default(),
            doc.str("KeyId").unwrap_or_default(),
        )
        .await?;
    Ok(Out::new().doc())
}
