//! Read positions inside a shard log.

use crate::model::SequenceNumber;

/// An exact position: an entry and the first record of it to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub log_index: u64,
    pub position: u16,
}

impl Cursor {
    pub fn at(seq: &SequenceNumber) -> Cursor {
        Cursor {
            log_index: seq.log_index,
            position: seq.position,
        }
    }

    pub fn after(seq: &SequenceNumber) -> Cursor {
        match seq.position.checked_add(1) {
            Some(p) => Cursor {
                log_index: seq.log_index,
                position: p,
            },
            None => Cursor {
                log_index: seq.log_index + 1,
                position: 0,
            },
        }
    }

    pub fn entry_start(log_index: u64) -> Cursor {
        Cursor {
            log_index,
            position: 0,
        }
    }
}

/// Where a read starts; the positions that depend on the log's current state are resolved by
/// the replica that serves the read (the leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStart {
    Cursor(Cursor),
    TrimHorizon,
    Latest,
    AtTimestamp(i64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_rolls_over_to_the_next_entry() {
        let s = SequenceNumber {
            shard_created_secs: 1,
            shard_index: 0,
            log_index: 4,
            position: u16::MAX,
            arrival_secs: 1,
        };
        assert_eq!(
            Cursor::after(&s),
            Cursor {
                log_index: 5,
                position: 0
            }
        );
        let s = SequenceNumber { position: 3, ..s };
        assert_eq!(
            Cursor::after(&s),
            Cursor {
                log_index: 4,
                position: 4
            }
        );
        assert!(Cursor::at(&s) < Cursor::after(&s));
    }
}
