//! The native gRPC API (`runnel.v1`). Handlers only translate between protobuf messages and
//! the service layer; they hold no semantics of their own.

mod admin;
mod convert;
mod leases;
mod streams;

pub use admin::AdminApi;
pub use leases::LeasesApi;
pub use streams::StreamsApi;

/// Largest request or response message (a full PutRecords batch is 5 MiB of data plus keys;
/// a GetRecords response up to 10 MiB).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
