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
    pub(crate) fn new(dir: &Path, active: Option<Arc<File>>) -> Result<Self, LogError> {
        Ok(SyncState {
            dir: File::open(dir)?,
            target: Mutex::new(Target {
                active,
                dir_dirty: false,
            }),
            dir_sync: Mutex::new(()),
        })
    }

    pub(crate) fn set_active(&self, active: Option<Arc<File>>, dir_dirty: bool) {
        let mut t = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        t.active = active;
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
        let active = self
            .target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .active
            .clone();
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
            file.sync_data()?;
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
