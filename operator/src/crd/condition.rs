//! Condition types written to `status.conditions` (standard `metav1.Condition` shape).

use std::fmt;

/// The condition types the operator maintains on Runnel resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    /// The resource exists in the catalog and matches the spec.
    Ready,
    /// Shards are being split or merged, or nodes added or drained.
    Scaling,
    /// The spec is invalid, or the data plane reports a problem (under-replicated shards, ...).
    Degraded,
}

impl ConditionType {
    /// The string stored in `condition.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Scaling => "Scaling",
            ConditionType::Degraded => "Degraded",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
