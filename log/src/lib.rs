//! Segmented append-only log.
