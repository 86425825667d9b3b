//! Runnel operator: custom resource types, spec validation, CRD generation and the pure
//! placement and autoscaling policies the reconciler applies.

pub mod crd;
pub mod crdgen;
pub mod policy;
pub mod validation;
