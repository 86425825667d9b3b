//! Capacity: what a shard may take and what a stream used. Pure decision logic — no I/O, and
//! time is always an argument (`Instant`s or window timestamps), so every rule is unit-tested
//! deterministically.
//!
//! - [`throughput`]: PROVISIONED per-shard limits as token buckets, and the per-shard admission
//!   of writes and reads that the service layer consults.
//! - [`shard_admission`]: those per-shard budgets and GetShardIterator's per-shard limit as
//!   the leader of a shard applies them to the requests of every node.
//! - [`subscription_leases`]: one enhanced fan-out subscription per consumer and shard, as
//!   the shard's leader keeps it for the whole cluster.
//! - [`hot_shards`]: the ON_DEMAND policy deciding which hot shards to split, and where.
//! - [`cold_shards`]: the ON_DEMAND policy deciding which cold adjacent shards to merge.
//! - [`on_demand`]: one reshard per stream and window, splits before merges.
//! - [`api_limits`]: per-second limits of API calls (GetShardIterator, SubscribeToShard,
//!   DescribeStream, ListShards, ...) by their AWS scope.
//! - [`usage`]: the units of usage accounting (PUT payload units, shard-hours).

pub mod api_limits;
pub mod cold_shards;
pub mod hot_keys;
pub mod hot_shards;
pub mod on_demand;
pub mod shard_admission;
pub mod subscription_leases;
pub mod throughput;
pub mod usage;
