//! Errors of the shard log.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong reading or writing a shard log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("non-contiguous append: expected index {expected}, got {got}")]
    NonContiguous { expected: u64, got: u64 },
    #[error("corrupt log file {}: {reason} at byte {offset}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("log index {index} has been purged (first readable index: {first_index:?})")]
    Purged { index: u64, first_index: Option<u64> },
    #[error("log index {index} is beyond the end of the log (next index {next_index})")]
    OutOfRange { index: u64, next_index: u64 },
    #[error("entry {index} has a payload of {len} bytes, more than the maximum {max}")]
    EntryTooLarge { index: u64, len: usize, max: usize },
}

impl LogError {
    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        LogError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

impl From<LogError> for io::Error {
    fn from(err: LogError) -> Self {
        let kind = match &err {
            LogError::Io(e) => return io::Error::new(e.kind(), err),
            LogError::NonContiguous { .. } | LogError::EntryTooLarge { .. } => io::ErrorKind::InvalidInput,
            LogError::Corrupt { .. } => io::ErrorKind::InvalidData,
            LogError::Purged { .. } | LogError::OutOfRange { .. } => io::ErrorKind::NotFound,
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_io_error_with_a_matching_kind() {
        let e: io::Error = LogError::Purged {
            index: 1,
            first_index: Some(5),
        }
        .into();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e: io::Error = LogError::Io(io::Error::from(io::ErrorKind::PermissionDenied)).into();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let e: io::Error = LogError::corrupt("/x", 3, "bad").into();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
