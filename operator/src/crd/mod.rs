//! Custom resource types in group `runnel.dev`, version `v1alpha1`.
//!
//! Field names follow the AWS Controllers for Kubernetes (ACK) kinesis `Stream` resource where
//! ACK has the same field, so manifests port easily. Nothing here uses CEL
//! (`x-kubernetes-validations`): the schemas must load on Kubernetes 1.20, and the operator
//! validates specs itself (see [`crate::validation`]).

mod condition;
mod delivery_stream;
mod stream;

pub use condition::ConditionType;
pub use delivery_stream::Buffering;
pub use delivery_stream::CompressionFormat;
pub use delivery_stream::CredentialsSecretRef;
pub use delivery_stream::DeliveryDestination;
pub use delivery_stream::DeliverySource;
pub use delivery_stream::DeliveryStream;
pub use delivery_stream::DeliveryStreamSpec;
pub use delivery_stream::DeliveryStreamStatus;
pub use delivery_stream::Processing;
pub use delivery_stream::Processor;
pub use delivery_stream::ProcessorParameter;
pub use delivery_stream::ProcessorType;
pub use delivery_stream::S3Destination;
pub use stream::Autoscaling;
pub use stream::AutoscalingStatus;
pub use stream::ConsumerStatus;
pub use stream::DeletionPolicy;
pub use stream::Encryption;
pub use stream::EncryptionType;
pub use stream::ObservedRates;
pub use stream::ShardStatus;
pub use stream::Stream;
pub use stream::StreamLifecycle;
pub use stream::StreamMode;
pub use stream::StreamModeDetails;
pub use stream::StreamSpec;
pub use stream::StreamStatus;

/// The API group of every Runnel custom resource.
pub const GROUP: &str = "runnel.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";
