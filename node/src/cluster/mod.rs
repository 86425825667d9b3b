//! What makes several nodes one cluster: the node-to-node gRPC service, forwarding of catalog
//! proposals to the catalog leader, and replica placement.

mod api;
mod catalog_client;
pub mod leadership;
pub mod liveness;
pub mod membership;
pub mod placement;
pub mod quiesce;

pub use api::RaftApi;
pub use catalog_client::CatalogClient;
pub use catalog_client::ProposeError;
