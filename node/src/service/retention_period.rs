//! IncreaseStreamRetentionPeriod / DecreaseStreamRetentionPeriod: the direction checks of AWS
//! on top of [`StreamService::update_retention`].

use super::ServiceError;
use super::StreamService;

impl StreamService {
    /// IncreaseStreamRetentionPeriod: `hours` must not be shorter than the current period.
    pub async fn increase_retention(&self, name: &str, hours: u32) -> Result<(), ServiceError> {
        let current = self.stream_record(name)?.retention_hours;
        if hours < current {
            return Err(ServiceError::InvalidArgument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
            )));
        }
        self.update_retention(name, hours).await
    }

    /// DecreaseStreamRetentionPeriod: `hours` must not be longer than the current period.
    pub async fn decrease_retention(&self, name: &str, hours: u32) -> Result<(), ServiceError> {
        let current = self.stream_record(name)?.retention_hours;
        if hours > current {
            return Err(ServiceError::InvalidArgument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
            )));
        }
        self.update_retention(name, hours).await
    }
}
