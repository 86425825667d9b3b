//! Runnel node.
