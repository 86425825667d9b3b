//! The state machine of the catalog group: the [`Catalog`] in memory, snapshotted to a file so
//! the catalog log can be compacted.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::RwLock;

use futures::Stream;
use futures::TryStreamExt;
use openraft::EntryPayload;
use openraft::StoredMembership;
use openraft::storage::EntryResponder;
use openraft::storage::RaftStateMachine;
use openraft::storage::SnapshotMeta;
use openraft::type_config::alias::LogIdOf;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;
use openraft::type_config::alias::StoredMembershipOf;
use tokio::sync::watch;

use super::snapshot_file::FileSnapshotBuilder;
use super::snapshot_file::SnapshotFile;
use super::types::CatalogRaft;
use crate::catalog::Catalog;
use crate::catalog::CatalogReply;

type C = CatalogRaft;

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct State {
    last: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    catalog: Catalog,
}

/// Read access to the applied catalog, shared with the service layer.
#[derive(Clone)]
pub struct CatalogView {
    state: Arc<RwLock<State>>,
    changes: watch::Receiver<u64>,
}

impl CatalogView {
    /// Runs `f` on the current catalog.
    pub fn read<T>(&self, f: impl FnOnce(&Catalog) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(&s.catalog),
            Err(poisoned) => f(&poisoned.into_inner().catalog),
        }
    }

    /// Changes each time a command is applied.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }
}

pub struct CatalogStateMachine {
    state: Arc<RwLock<State>>,
    snapshot: SnapshotFile,
    changes: watch::Sender<u64>,
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("catalog lock poisoned")
}

impl CatalogStateMachine {
    pub fn open(dir: &Path) -> io::Result<CatalogStateMachine> {
        let snapshot = SnapshotFile::new(dir);
        let state = match snapshot.load::<C>()? {
            Some(s) => serde_json::from_slice(&s.snapshot)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            None => State::default(),
        };
        let (changes, _) = watch::channel(0);
        Ok(CatalogStateMachine {
            state: Arc::new(RwLock::new(state)),
            snapshot,
            changes,
        })
    }

    pub fn view(&self) -> CatalogView {
        CatalogView {
            state: self.state.clone(),
            changes: self.changes.subscribe(),
        }
    }

    fn snapshot_parts(&self) -> io::Result<(SnapshotMetaOf<C>, Vec<u8>)> {
        let state = self.state.read().map_err(poisoned)?;
        let meta = SnapshotMeta {
            last_log_id: state.last,
            last_membership: state.membership.clone(),
        };
        let data = serde_json::to_vec(&*state).map_err(io::Error::other)?;
        Ok((meta, data))
    }
}

impl RaftStateMachine<C> for CatalogStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = FileSnapshotBuilder<C>;

    async fn applied_state(&mut self) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let s = self.state.read().map_err(poisoned)?;
        Ok((s.last, s.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + openraft::OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let reply = {
                let mut s = self.state.write().map_err(poisoned)?;
                s.last = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => CatalogReply::Done,
                    EntryPayload::Normal(cmd) => s.catalog.apply(cmd),
                    EntryPayload::Membership(m) => {
                        s.membership = StoredMembership::new(Some(entry.log_id), m);
                        CatalogReply::Done
                    }
                }
            };
            self.changes.send_modify(|v| *v += 1);
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (meta, data) = match self.snapshot_parts() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize the catalog for a snapshot");
                (SnapshotMeta::default(), Vec::new())
            }
        };
        FileSnapshotBuilder {
            meta,
            data,
            file: SnapshotFile::new(self.snapshot_dir()),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let mut state: State =
            serde_json::from_slice(&snapshot).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        state.last = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        self.snapshot.save::<C>(meta, &snapshot)?;
        *self.state.write().map_err(poisoned)? = state;
        self.changes.send_modify(|v| *v += 1);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        self.snapshot.load::<C>()
    }
}

impl CatalogStateMachine {
    fn snapshot_dir(&self) -> &Path {
        self.snapshot.dir()
    }
}
