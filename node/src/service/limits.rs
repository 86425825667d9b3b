//! DescribeLimits, DescribeAccountSettings and UpdateStreamMode.

use super::ServiceError;
use super::StreamService;
use crate::catalog::CatalogCommand;
use crate::catalog::CatalogReply;
use crate::catalog::StreamMode;
use crate::clock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub shard_limit: u32,
    pub open_shard_count: u32,
    pub on_demand_stream_count: u32,
    pub on_demand_stream_count_limit: u32,
}

impl StreamService {
    pub fn describe_limits(&self) -> Limits {
        let (open, on_demand) = self.inner.view.read(|c| {
            let open: usize = c.streams.values().map(|s| s.open_shards().count()).sum();
            let od = c
                .streams
                .values()
                .filter(|s| s.mode == StreamMode::OnDemand)
                .count();
            (open, od)
        });
        let cfg = self.config();
        Limits {
            shard_limit: cfg.max_shards_total,
            open_shard_count: u32::try_from(open).unwrap_or(u32::MAX),
            on_demand_stream_count: u32::try_from(on_demand).unwrap_or(u32::MAX),
            on_demand_stream_count_limit: cfg.max_on_demand_streams,
        }
    }

    /// UpdateStreamMode: the stream goes UPDATING, then ACTIVE after the transition delay.
    pub async fn update_stream_mode(&self, name: &str, on_demand: bool) -> Result<(), ServiceError> {
        let record = self.stream_to_change(name)?;
        let mode = if on_demand {
            StreamMode::OnDemand
        } else {
            StreamMode::Provisioned
        };
        if on_demand && record.mode != StreamMode::OnDemand {
            let limits = self.describe_limits();
            if limits.on_demand_stream_count >= limits.on_demand_stream_count_limit {
                return Err(ServiceError::LimitExceeded(format!(
                    "This request would exceed the on-demand stream limit for the account {}. Current limit: {}.",
                    self.config().account,
                    limits.on_demand_stream_count_limit
                )));
            }
        }
        let reply = self
            .propose(CatalogCommand::SetMode {
                name: name.into(),
                mode,
                now_ms: clock::now_ms(),
            })
            .await?;
        if reply == CatalogReply::NotFound {
            return Err(self.not_found(name));
        }
        self.spawn_transition(name.to_owned());
        Ok(())
    }
}
