//! Client library for Runnel.
