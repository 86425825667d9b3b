//! fsync of what was appended so far, without `&mut Log` (for group commit).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::PoisonError;

use crate::LogError;

#[derive(Debug)]
struct Target {
    active: Option<Arc<File>>,
    dir_dirty: bool,
    cache: DropBehind<Arc<File>>,
}

/// Bytes dropped at a time at least, so a drop is one call per few MiB written.
const DROP_STEP: u64 = 4 << 20;

/// What the page cache still holds of the log, for drop-behind ([`crate::LogConfig`]): pure
/// bookkeeping over file handles `F`; [`Target`] applies what it decides.
#[derive(Debug)]
struct DropBehind<F> {
    window: Option<u64>,
    /// Offset in the active segment below which its pages were dropped.
    dropped: u64,
    /// The segment rolled away from and the offset its pages were dropped to: the rest goes
    /// once the new segment has a window of its own.
    sealed: Option<(F, u64)>,
}

/// Pages to drop: a range of the active segment, and the rest of an older segment from an
/// offset to its end.
#[derive(Debug, PartialEq)]
struct Release<F> {
    active: Option<(u64, u64)>,
    sealed: Option<(F, u64)>,
}

impl<F> DropBehind<F> {
    fn new(window: Option<u64>) -> DropBehind<F> {
        DropBehind {
            window,
            dropped: 0,
            sealed: None,
        }
    }

    /// The active segment is durable up to `len`: what falls out of the window.
    fn synced(&mut self, len: u64) -> Release<F> {
        let nothing = Release {
            active: None,
            sealed: None,
        };
        let Some(window) = self.window else {
            return nothing;
        };
        // A truncated segment is rewritten from its new end.
        self.dropped = self.dropped.min(len);
        if len < self.dropped + window + DROP_STEP {
            return nothing;
        }
        let keep_from = len - window;
        let active = Some((self.dropped, keep_from - self.dropped));
        self.dropped = keep_from;
        Release {
            active,
            sealed: self.sealed.take(),
        }
    }

    /// The active segment changed from `old` to `new` (`same`: it is the same file, e.g.
    /// after a truncation): what to drop at once.
    fn switched(&mut self, old: Option<F>, new_exists: bool, same: bool) -> Option<(F, u64)> {
        if same {
            return None;
        }
        // Two rolls within one window: the older sealed segment goes at once.
        let now = self.sealed.take();
        self.sealed = match old {
            Some(old) if new_exists && self.window.is_some() => Some((old, self.dropped)),
            _ => None,
        };
        self.dropped = 0;
        now
    }
}

impl DropBehind<Arc<File>> {
    fn apply_synced(&mut self, active: &File, len: u64) {
        let release = self.synced(len);
        if let Some((offset, len)) = release.active {
            drop_pages(active, offset, len);
        }
        if let Some((file, from)) = release.sealed {
            // To the end of the file.
            drop_pages(&file, from, 0);
        }
    }

    fn apply_switched(&mut self, old: Option<Arc<File>>, new: Option<&Arc<File>>) {
        let same = matches!((&old, new), (Some(o), Some(n)) if Arc::ptr_eq(o, n));
        if let Some((file, from)) = self.switched(old, new.is_some(), same) {
            drop_pages(&file, from, 0);
        }
    }
}

fn drop_pages(file: &File, offset: u64, len: u64) {
    if fadvise_dontneed(file, offset, len).is_err() {
        tracing::debug!(offset, len, "posix_fadvise(DONTNEED) failed");
    }
}

fn fadvise_dontneed(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    rustix::fs::fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::DontNeed,
    )
    .map_err(std::io::Error::from)
}

/// Shared between a [`crate::Log`] and its [`SyncHandle`]s. The log fsyncs a segment itself
/// before rolling away from it, so syncing the current active file (and the directory when
/// segments were created) covers everything appended before the call.
#[derive(Debug)]
pub(crate) struct SyncState {
    dir: File,
    target: Mutex<Target>,
    /// Held while the directory is fsynced, so a concurrent caller that finds the dirty flag
    /// already taken still waits for that fsync to finish.
    dir_sync: Mutex<()>,
}

impl SyncState {
    pub(crate) fn new(
        dir: &Path,
        active: Option<Arc<File>>,
        cache_window: Option<u64>,
    ) -> Result<Self, LogError> {
        Ok(SyncState {
            dir: File::open(dir)?,
            target: Mutex::new(Target {
                active,
                dir_dirty: false,
                cache: DropBehind::new(cache_window),
            }),
            dir_sync: Mutex::new(()),
        })
    }

    pub(crate) fn set_active(&self, active: Option<Arc<File>>, dir_dirty: bool) {
        let mut t = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut t.active, active);
        let new = t.active.clone();
        t.cache.apply_switched(old, new.as_ref());
        t.dir_dirty |= dir_dirty;
    }

    fn take_dir_dirty(&self) -> bool {
        std::mem::take(
            &mut self
                .target
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .dir_dirty,
        )
    }

    pub(crate) fn mark_dir_dirty(&self) {
        self.target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dir_dirty = true;
    }

    pub(crate) fn sync(&self) -> Result<(), LogError> {
        let (active, drops) = {
            let t = self.target.lock().unwrap_or_else(PoisonError::into_inner);
            (t.active.clone(), t.cache.window.is_some())
        };
        {
            let _guard = self.dir_sync.lock().unwrap_or_else(PoisonError::into_inner);
            if self.take_dir_dirty()
                && let Err(e) = self.dir.sync_all()
            {
                self.mark_dir_dirty();
                return Err(e.into());
            }
        }
        if let Some(file) = active {
            // Everything appended before this call is below `len`, and durable after the fsync.
            let len = if drops { Some(file.metadata()?.len()) } else { None };
            file.sync_data()?;
            if let Some(len) = len {
                let mut t = self.target.lock().unwrap_or_else(PoisonError::into_inner);
                if t.active.as_ref().is_some_and(|a| Arc::ptr_eq(a, &file)) {
                    t.cache.apply_synced(&file, len);
                }
            }
        }
        Ok(())
    }
}

/// A cheap, clonable handle that fsyncs everything appended to its log so far.
#[derive(Clone, Debug)]
pub struct SyncHandle {
    pub(crate) state: Arc<SyncState>,
}

impl SyncHandle {
    /// fsyncs every entry appended before this call (and the segment files' directory entries).
    pub fn sync(&self) -> Result<(), LogError> {
        self.state.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn without_a_window_nothing_is_dropped() {
        let mut d = DropBehind::<&str>::new(None);
        assert_eq!(d.synced(10 << 30).active, None);
        assert_eq!(d.switched(Some("a"), true, false), None);
        assert_eq!(d.synced(10 << 30).sealed, None);
    }

    #[test]
    fn pages_behind_the_window_go_a_step_at_a_time() {
        let mut d = DropBehind::<&str>::new(Some(8 * MIB));
        // Within window + step: kept.
        assert_eq!(d.synced(8 * MIB).active, None);
        assert_eq!(d.synced(12 * MIB - 1).active, None);
        assert_eq!(d.synced(12 * MIB).active, Some((0, 4 * MIB)));
        assert_eq!(d.synced(13 * MIB).active, None);
        assert_eq!(d.synced(20 * MIB).active, Some((4 * MIB, 8 * MIB)));
        // A truncation below what was dropped restarts from the new end.
        assert_eq!(d.synced(2 * MIB).active, None);
        assert_eq!(d.synced(14 * MIB).active, Some((2 * MIB, 4 * MIB)));
    }

    #[test]
    fn a_sealed_segment_is_dropped_once_the_next_one_fills_its_window() {
        let mut d = DropBehind::new(Some(8 * MIB));
        assert_eq!(d.synced(20 * MIB).active, Some((0, 12 * MIB)));
        assert_eq!(d.switched(Some("seg-1"), true, false), None);
        // The new segment starts from 0; the sealed one keeps its last 8 MiB for now.
        assert_eq!(d.synced(4 * MIB).sealed, None);
        let release = d.synced(12 * MIB);
        assert_eq!(release.active, Some((0, 4 * MIB)));
        assert_eq!(release.sealed, Some(("seg-1", 12 * MIB)));
        // Rolling twice within a window drops the older segment at once.
        assert_eq!(d.switched(Some("seg-2"), true, false), None);
        assert_eq!(d.switched(Some("seg-3"), true, false), Some(("seg-2", 4 * MIB)));
        // The same file again (a truncation) changes nothing; no active file forgets all.
        assert_eq!(d.switched(Some("seg-4"), true, true), None);
        assert_eq!(d.switched(Some("seg-4"), false, false), Some(("seg-3", 0)));
        assert_eq!(d.synced(100 * MIB).sealed, None);
    }
}
