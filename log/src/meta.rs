//! The purge point: entries `<= purged_through` are no longer readable. Stored in a small
//! `purge.meta` file replaced atomically (write tmp, fsync, rename, fsync directory).
//!
//! Layout: magic u32 | has_value u8 | purged_through u64 | CRC32C of the preceding bytes u32.

use std::fs;
use std::fs::File;
use std::io;
use std::io::Write;
use std::path::Path;

use crate::LogError;

pub const FILE_NAME: &str = "purge.meta";
const TMP_NAME: &str = "purge.meta.tmp";
const MAGIC: u32 = 0x524E_4D01;
const LEN: usize = 17;

fn encode(purged: Option<u64>) -> [u8; LEN] {
    let mut out = [0; LEN];
    out[..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4] = u8::from(purged.is_some());
    out[5..13].copy_from_slice(&purged.unwrap_or(0).to_le_bytes());
    let crc = crc32c::crc32c(&out[..13]);
    out[13..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Result<Option<u64>, String> {
    if bytes.len() != LEN {
        return Err(format!("{} bytes", bytes.len()));
    }
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[13..]);
    if crc32c::crc32c(&bytes[..13]) != u32::from_le_bytes(crc) {
        return Err("CRC mismatch".into());
    }
    let mut magic = [0; 4];
    magic.copy_from_slice(&bytes[..4]);
    if u32::from_le_bytes(magic) != MAGIC {
        return Err("bad magic".into());
    }
    let mut v = [0; 8];
    v.copy_from_slice(&bytes[5..13]);
    Ok((bytes[4] == 1).then_some(u64::from_le_bytes(v)))
}

/// Reads the purge point of `dir` (`None` when never purged).
pub fn read(dir: &Path) -> Result<Option<u64>, LogError> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map_err(|reason| LogError::corrupt(path, 0, reason)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Durably replaces the purge point of `dir`.
pub fn write(dir: &Path, purged: Option<u64>) -> Result<(), LogError> {
    let tmp = dir.join(TMP_NAME);
    let mut f = File::create(&tmp)?;
    f.write_all(&encode(purged))?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(FILE_NAME))?;
    sync_dir(dir)?;
    Ok(())
}

/// fsyncs a directory so that created, renamed and removed entries are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), Some(41)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(41));
        write(dir.path(), None).unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
    }

    #[test]
    fn corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = encode(Some(7));
        bytes[6] ^= 1;
        fs::write(dir.path().join(FILE_NAME), bytes).unwrap();
        assert!(matches!(read(dir.path()), Err(LogError::Corrupt { .. })));
    }
}
