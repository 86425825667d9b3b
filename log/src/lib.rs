//! Segmented append-only log: the on-disk format of one Runnel shard replica.
//!
//! Entries are Raft log entries (one producer batch each); the node uses the same log as
//! openraft's log store and as the record store, so every record is written once.
//!
//! A log is a directory of segments named by their first index, each a sequence of CRC32C-checked
//! frames ([`frame`]), with a sparse offset index ([`index`]) and a time index
//! ([`time_index`]). [`Log`] is the single writer; [`LogReader`]s read concurrently with
//! positioned reads; a [`SyncHandle`] fsyncs without blocking the writer (group commit).
//! Opening a log truncates a torn tail ([`Log::open`]); retention deletes whole segments.

mod config;
mod entry;
mod error;
pub mod frame;
pub mod index;
mod install;
mod log;
mod meta;
mod reader;
mod recovery;
mod segment;
mod state;
mod sync;
pub mod time_index;

pub use config::LogConfig;
pub use entry::Entry;
pub use error::LogError;
pub use log::Log;
pub use log::LogStats;
pub use reader::LogReader;
pub use sync::SyncHandle;
