//! Pure decision functions: inputs are shards, nodes and observed rates; outputs are actions.
//! No I/O and no clock: the reconciler gathers inputs, passes `now`, and applies the actions.

pub mod autoscaling;
pub mod capacity;
pub mod hash_range;
pub mod nodes;
pub mod placement;

/// Time on the caller's clock, in whole seconds. The policies never read a real clock.
pub type Seconds = u64;
