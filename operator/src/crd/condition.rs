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
    /// The spec is stored in the catalog (delivery streams, which no engine runs yet).
    Stored,
}

impl ConditionType {
    /// The string stored in `condition.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Scaling => "Scaling",
            ConditionType::Degraded => "Degraded",
            ConditionType::Stored => "Stored",
        }
    }
}

impl fmt::Display for ConditionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
