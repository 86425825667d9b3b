//! Field checks shared by every operation, producing AWS-shaped violations.

use super::error::FieldViolation;
use crate::model::StreamName;

/// Collects violations in the order the checks run, as AWS reports them.
#[derive(Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    pub fn push(&mut self, value: impl Into<String>, path: &str, constraint: impl Into<String>) {
        self.0.push(FieldViolation {
            value: value.into(),
            path: path.into(),
            constraint: constraint.into(),
        });
    }

    pub fn min_len(&mut self, value: &str, len: usize, min: usize, path: &str) {
        if len < min {
            self.push(
                value,
                path,
                format!("Member must have length greater than or equal to {min}"),
            );
        }
    }

    pub fn max_len(&mut self, value: &str, len: usize, max: usize, path: &str) {
        if len > max {
            self.push(
                value,
                path,
                format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    pub fn stream_name(&mut self, name: &str, path: &str) {
        self.min_len(name, name.len(), 1, path);
        self.max_len(name, name.len(), 128, path);
        if !name.is_empty() && StreamName::parse(name).is_none() && name.len() <= 128 {
            self.push(
                name,
                path,
                format!(
                    "Member must satisfy regular expression pattern: {}",
                    StreamName::PATTERN
                ),
            );
        }
    }

    pub fn into_result(self) -> Result<(), super::ServiceError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(super::ServiceError::Validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_name_checks() {
        let mut v = Violations::default();
        v.stream_name("ok-name", "streamName");
        assert!(v.0.is_empty());
        v.stream_name("", "streamName");
        v.stream_name("bad name", "streamName");
        v.stream_name(&"x".repeat(129), "streamName");
        assert_eq!(v.0.len(), 3);
        assert!(v.0[1].constraint.contains("regular expression"));
    }
}
