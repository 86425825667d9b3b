//! Runnel operator: custom resource types, spec validation, CRD generation, the pure placement
//! and autoscaling policies, and the controllers that reconcile `Stream`s into the catalog.

pub mod catalog_client;
pub mod cluster;
pub mod consumers;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod delivery;
pub mod discovery;
pub mod leader;
pub mod load;
pub mod metrics;
pub mod node_metrics;
pub mod observed;
pub mod plan;
pub mod policy;
pub mod status;
pub mod validation;
