//! The service layer: the one place that owns validation and Kinesis semantics. The native gRPC
//! API and the AWS HTTP API both translate their requests into calls on [`StreamService`].

mod admin;
mod admission;
mod call_limits;
mod consumers;
mod delivery;
pub mod document;
mod encryption;
mod error;
mod leases;
mod limits;
mod membership;
mod on_demand;
mod records;
mod reshard;
mod retention_period;
mod shapes;
mod shards;
mod subscribe;
mod subscriptions;
mod tags;
mod usage;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

pub use admin::CreateStreamInput;
pub use admin::ListStreamsOutput;
pub use admin::ShardDescription;
pub use admin::StreamDescription;
pub use call_limits::CallTarget;
pub use consumers::ConsumerDescription;
pub use consumers::ListConsumersOutput;
pub use delivery::DeliveryStreamDescription;
pub use delivery::ListDeliveryStreamsOutput;
pub use delivery::check_delivery_spec;
pub use delivery::check_delivery_stream_name;
pub use error::FieldViolation;
pub use error::ServiceError;
pub use leases::LeaseDescription;
pub use limits::Limits;
pub use membership::ClusterNodeDescription;
pub use records::ChildShard;
pub use records::GetRecordsInput;
pub use records::GetRecordsOutput;
pub use records::KMS_NOT_FOUND;
pub use records::PositionInput;
pub use records::PutEntryInput;
pub use records::PutEntryResult;
pub use records::PutRecordsInput;
pub use reshard::UpdateShardCountOutput;
pub use shards::IteratorPosition;
pub use shards::ListShardsInput;
pub use shards::ListShardsOutput;
pub use shards::ShardFilter;
pub use subscribe::SubscribeEvent;
pub use tags::ListTagsOutput;

use crate::capacity::api_limits::ApiLimiter;
use crate::capacity::api_limits::ApiLimits;
use crate::capacity::cold_shards::MergePolicy;
use crate::capacity::hot_keys::HotKeyWindows;
use crate::capacity::hot_shards::SplitPolicy;
use crate::capacity::throughput::ShardLimits;
use crate::capacity::throughput::Throttling;
use crate::cluster::CatalogClient;
use crate::metrics::Metrics;
use crate::raft::catalog_sm::CatalogView;
use crate::shard::ShardRouter;

/// Settings of the service layer.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub region: String,
    pub account: String,
    /// How long a stream stays CREATING / DELETING before the transition completes.
    pub transition_delay: Duration,
    /// Largest data blob of one record.
    pub max_record_bytes: usize,
    /// Most shards one stream may have.
    pub max_shards_per_stream: u32,
    /// Most shards on this node (the account limit of AWS).
    pub max_shards_total: u32,
    /// Most ON_DEMAND streams (the account limit of AWS).
    pub max_on_demand_streams: u32,
    /// Most streams CREATING or DELETING at once (the account limit of AWS: 5).
    pub max_transitioning_streams: u32,
    /// Replicas of each new shard (capped at the number of nodes).
    pub replication_factor: usize,
    /// UpdateShardCount calls one stream may make per rolling 24 hours.
    pub max_scalings_per_day: u32,
    /// StartStreamEncryption calls one stream may make per rolling 24 hours (AWS: 25).
    pub max_key_changes_per_day: u32,
    /// When to split a hot shard of an ON_DEMAND stream (`None`: never).
    pub on_demand_splits: Option<SplitPolicy>,
    /// When to merge cold adjacent shards of an ON_DEMAND stream (`None`: never).
    pub on_demand_merges: Option<MergePolicy>,
    /// Per-second limits of API calls (GetShardIterator, DescribeStream, ...); they apply
    /// unless `throttling` is off.
    pub api_limits: ApiLimits,
    /// Per-shard throughput limits (AWS's by default).
    pub shard_limits: ShardLimits,
    /// Which streams the per-shard limits apply to.
    pub throttling: Throttling,
    /// Most enhanced fan-out consumers of one stream (AWS: 20).
    pub max_consumers_per_stream: u32,
    /// Most consumers CREATING at once (AWS: 5).
    pub max_creating_consumers: u32,
    /// How long a SubscribeToShard (or a native Subscribe of a consumer) lasts (AWS: 5 min).
    pub subscription_lifetime: Duration,
    /// Reads of one consumer from one shard, bytes/s (AWS: 2 MiB/s); 0 = unlimited. Applies
    /// to the streams `throttling` applies to.
    pub consumer_read_bytes_per_sec: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            region: "us-east-1".into(),
            account: "000000000000".into(),
            transition_delay: Duration::from_millis(100),
            max_record_bytes: 1 << 20,
            max_shards_per_stream: 10_000,
            max_shards_total: 20_000,
            max_on_demand_streams: 50,
            max_transitioning_streams: 5,
            replication_factor: 3,
            max_scalings_per_day: 10,
            max_key_changes_per_day: 25,
            on_demand_splits: Some(SplitPolicy::default()),
            on_demand_merges: Some(MergePolicy::default()),
            api_limits: ApiLimits::default(),
            shard_limits: ShardLimits::default(),
            throttling: Throttling::default(),
            max_consumers_per_stream: 20,
            max_creating_consumers: 5,
            subscription_lifetime: Duration::from_secs(300),
            consumer_read_bytes_per_sec: 2 << 20,
        }
    }
}

struct Inner {
    config: ServiceConfig,
    catalog: CatalogClient,
    view: CatalogView,
    router: ShardRouter,
    metrics: Metrics,
    /// Per-second limits of API calls served by this node, except GetShardIterator's per-shard
    /// limit, which the shard's leader keeps with the per-shard throughput budgets
    /// (`ShardRouter`).
    api_limiter: ApiLimiter,
    /// Enhanced fan-out subscriptions served by this node.
    subscriptions: subscriptions::Subscriptions,
    /// The hottest hash key of each shard written through this node, per stats window.
    hot_keys: Arc<std::sync::Mutex<HotKeyWindows>>,
}

/// Cheap to clone; every protocol front end holds one.
#[derive(Clone)]
pub struct StreamService {
    inner: Arc<Inner>,
}

impl StreamService {
    pub fn new(
        config: ServiceConfig,
        catalog: CatalogClient,
        view: CatalogView,
        router: ShardRouter,
        metrics: Metrics,
    ) -> StreamService {
        let api_limiter = ApiLimiter::new(config.api_limits.clone());
        StreamService {
            inner: Arc::new(Inner {
                api_limiter,
                subscriptions: subscriptions::Subscriptions::default(),
                hot_keys: Arc::default(),
                config,
                catalog,
                view,
                router,
                metrics,
            }),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The per-shard hot-key windows of the writes this node took (rolled by the stats loop).
    pub fn hot_keys(&self) -> Arc<std::sync::Mutex<HotKeyWindows>> {
        self.inner.hot_keys.clone()
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    fn not_found(&self, stream: &str) -> ServiceError {
        ServiceError::ResourceNotFound(format!(
            "Stream {stream} under account {} not found.",
            self.inner.config.account
        ))
    }
}
