//! Capacity: what a shard may take and what a stream used. Pure decision logic — no I/O, and
//! time is always an argument (`Instant`s or window timestamps), so every rule is unit-tested
//! deterministically.
//!
//! - [`throughput`]: PROVISIONED per-shard limits as token buckets, and the per-shard admission
//!   of writes and reads that the service layer consults.
//! - [`hot_shards`]: the ON_DEMAND policy deciding which hot shards to split, and where.
//! - [`usage`]: the units of usage accounting (PUT payload units, shard-hours).

pub mod hot_shards;
pub mod throughput;
pub mod usage;
