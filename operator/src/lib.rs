//! Runnel operator.
