//! The current snapshot of a state machine, kept as one JSON file beside its log.

use std::io;
use std::path::Path;
use std::path::PathBuf;

use openraft::RaftTypeConfig;
use openraft::type_config::alias::SnapshotMetaOf;
use openraft::type_config::alias::SnapshotOf;

use super::vote_file;

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
struct Stored<C: RaftTypeConfig> {
    meta: SnapshotMetaOf<C>,
    data: Vec<u8>,
}

pub struct SnapshotFile {
    path: PathBuf,
}

impl SnapshotFile {
    pub fn new(dir: &Path) -> SnapshotFile {
        SnapshotFile {
            path: dir.join("snapshot.json"),
        }
    }

    pub fn save<C: RaftTypeConfig>(&self, meta: &SnapshotMetaOf<C>, data: &[u8]) -> io::Result<()> {
        let stored = Stored::<C> {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        vote_file::write_json(&self.path, &stored, true)
    }

    pub fn load<C: RaftTypeConfig>(&self) -> io::Result<Option<SnapshotOf<C, Vec<u8>>>> {
        Ok(
            vote_file::read_json::<Stored<C>>(&self.path)?.map(|s| openraft::storage::Snapshot {
                meta: s.meta,
                snapshot: s.data,
            }),
        )
    }
}

impl SnapshotFile {
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Builds a snapshot from state captured when openraft asked for it, and keeps it as the
/// current snapshot.
pub struct FileSnapshotBuilder<C: RaftTypeConfig> {
    pub meta: SnapshotMetaOf<C>,
    pub data: Vec<u8>,
    pub file: SnapshotFile,
}

impl<C: RaftTypeConfig> openraft::RaftSnapshotBuilder<C> for FileSnapshotBuilder<C> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Vec<u8>>, io::Error> {
        self.file.save::<C>(&self.meta, &self.data)?;
        Ok(openraft::storage::Snapshot {
            meta: self.meta.clone(),
            snapshot: self.data.clone(),
        })
    }
}
