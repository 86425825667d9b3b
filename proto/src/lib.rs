//! Generated protobuf messages and gRPC stubs of Runnel's native API (`runnel.v1`).

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("runnel.v1");
}
