//! Errors of the service layer, one variant per Kinesis error type.

/// One violated constraint, in the shape of AWS's ValidationException messages:
/// `Value '<value>' at '<path>' failed to satisfy constraint: <constraint>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    pub value: String,
    pub path: String,
    pub constraint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("{}", validation_message(.0))]
    Validation(Vec<FieldViolation>),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    ProvisionedThroughputExceeded(String),
    #[error("{0}")]
    ExpiredIterator(String),
    #[error("{0}")]
    ExpiredNextToken(String),
    /// A lease change whose condition no longer held (native API only; DynamoDB's name for
    /// it, as the Kinesis Client Library's lease table reports it).
    #[error("{0}")]
    ConditionFailed(String),
    /// The stream's key is not in the keyring (AWS: KMS cannot find it).
    #[error("{0}")]
    KmsNotFound(String),
    /// A stored record's key is not in this node's keyring.
    #[error("{0}")]
    KmsAccessDenied(String),
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// The Kinesis `__type` of the error.
    pub fn aws_type(&self) -> &'static str {
        match self {
            ServiceError::Validation(_) => "ValidationException",
            ServiceError::InvalidArgument(_) => "InvalidArgumentException",
            ServiceError::ResourceNotFound(_) => "ResourceNotFoundException",
            ServiceError::ResourceInUse(_) => "ResourceInUseException",
            ServiceError::LimitExceeded(_) => "LimitExceededException",
            ServiceError::ProvisionedThroughputExceeded(_) => "ProvisionedThroughputExceededException",
            ServiceError::ExpiredIterator(_) => "ExpiredIteratorException",
            ServiceError::ExpiredNextToken(_) => "ExpiredNextTokenException",
            ServiceError::ConditionFailed(_) => "ConditionalCheckFailedException",
            ServiceError::KmsNotFound(_) => "KMSNotFoundException",
            ServiceError::KmsAccessDenied(_) => "KMSAccessDeniedException",
            ServiceError::Internal(_) => "InternalFailure",
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> ServiceError {
        tracing::error!(error = %e, "internal failure");
        ServiceError::Internal(format!("Internal service failure: {e}"))
    }
}

/// The constraint of a required member that is missing.
pub const MUST_NOT_BE_NULL: &str = "Member must not be null";

fn validation_message(v: &[FieldViolation]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|f| {
            // A missing member is reported as `Value null`, unquoted.
            let value = if f.constraint == MUST_NOT_BE_NULL {
                "null".to_string()
            } else {
                format!("'{}'", f.value)
            };
            format!(
                "Value {value} at '{}' failed to satisfy constraint: {}",
                f.path, f.constraint
            )
        })
        .collect();
    match items.len() {
        1 => format!("1 validation error detected: {}", items[0]),
        n => format!("{n} validation errors detected: {}", items.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages_follow_aws() {
        let v = FieldViolation {
            value: "".into(),
            path: "streamName".into(),
            constraint: "Member must have length greater than or equal to 1".into(),
        };
        assert_eq!(
            ServiceError::Validation(vec![v.clone()]).to_string(),
            "1 validation error detected: Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1"
        );
        assert!(
            ServiceError::Validation(vec![v.clone(), v])
                .to_string()
                .starts_with("2 validation errors detected: Value")
        );
    }
}
