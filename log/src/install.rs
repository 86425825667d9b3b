//! Replacing every entry of a log with those of another log directory (a replica catching up
//! from a peer's snapshot), crash-atomically.
//!
//! The staged log is written by its own [`crate::Log`] in a subdirectory and synced. Installing
//! first durably records an `install.meta` marker naming the staged directory and the segments
//! it holds; then the log's own segments that the staged log does not have are removed, the
//! staged files are renamed in, and the marker is removed. Each step can be repeated, so
//! opening a log that has a marker finishes the install before recovering: a crash leaves
//! either the old log or the new one, never a mix.

use std::fs;
use std::fs::File;
use std::io;
use std::io::Write;
use std::path::Path;

use crate::LogError;
use crate::meta;
use crate::segment;

const MARKER: &str = "install.meta";
const MARKER_TMP: &str = "install.meta.tmp";

/// What an install replaces the log with.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    /// Name of the staged directory, inside the log directory.
    staged: String,
    /// The segments (by base index) the log consists of afterwards.
    bases: Vec<u64>,
    /// Whether the staged log has a purge point (otherwise the log's own one is dropped).
    purge: bool,
}

impl Plan {
    fn encode(&self) -> String {
        let bases: Vec<String> = self.bases.iter().map(u64::to_string).collect();
        format!(
            "staged={}\nbases={}\npurge={}\n",
            self.staged,
            bases.join(","),
            self.purge
        )
    }

    fn decode(text: &str) -> Result<Plan, String> {
        let mut staged = None;
        let mut bases = None;
        let mut purge = None;
        for line in text.lines() {
            match line.split_once('=') {
                Some(("staged", v)) => staged = Some(v.to_owned()),
                Some(("bases", "")) => bases = Some(Vec::new()),
                Some(("bases", v)) => {
                    bases = Some(
                        v.split(',')
                            .map(|b| b.parse::<u64>().map_err(|e| e.to_string()))
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                Some(("purge", v)) => purge = Some(v == "true"),
                _ => return Err(format!("unexpected line {line:?}")),
            }
        }
        match (staged, bases, purge) {
            (Some(staged), Some(bases), Some(purge))
                if !staged.is_empty() && !staged.contains('/') && staged != ".." =>
            {
                Ok(Plan { staged, bases, purge })
            }
            _ => Err("incomplete install marker".into()),
        }
    }
}

/// Starts replacing the log in `dir` with the log in `dir/staged` and finishes it.
pub(crate) fn install(dir: &Path, staged: &str) -> Result<(), LogError> {
    let staged_dir = dir.join(staged);
    let mut bases = Vec::new();
    for dirent in fs::read_dir(&staged_dir)? {
        let name = dirent?.file_name();
        if let Some(base) = name.to_str().and_then(segment::parse_log_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    let plan = Plan {
        staged: staged.to_owned(),
        bases,
        purge: staged_dir.join(meta::FILE_NAME).exists(),
    };
    meta::sync_dir(&staged_dir)?;
    let tmp = dir.join(MARKER_TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(plan.encode().as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(MARKER))?;
    meta::sync_dir(dir)?;
    finish(dir, &plan)
}

/// Finishes an install interrupted by a crash, if `dir` has a marker.
pub(crate) fn resume(dir: &Path) -> Result<(), LogError> {
    let path = dir.join(MARKER);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let plan = Plan::decode(&text).map_err(|reason| LogError::corrupt(path, 0, reason))?;
    tracing::info!(dir = %dir.display(), staged = %plan.staged, "finishing an interrupted log install");
    finish(dir, &plan)
}

fn finish(dir: &Path, plan: &Plan) -> Result<(), LogError> {
    let staged = dir.join(&plan.staged);
    if staged.exists() {
        // The log's own segments that the new log does not have.
        for dirent in fs::read_dir(dir)? {
            let name = dirent?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = segment::parse_log_name(name).or_else(|| segment::parse_index_name(name))
                && plan.bases.binary_search(&base).is_err()
            {
                segment::remove(dir, base)?;
            }
        }
        // Per segment: the old files of that base go, the index files move, the data file
        // moves last (so a moved data file means its indexes moved before it).
        for &base in &plan.bases {
            let data = segment::log_path(&staged, base);
            if !data.exists() {
                continue;
            }
            segment::remove(dir, base)?;
            for dirent in fs::read_dir(&staged)? {
                let name = dirent?.file_name();
                let Some(name) = name.to_str() else { continue };
                if segment::parse_index_name(name) == Some(base) {
                    fs::rename(staged.join(name), dir.join(name))?;
                }
            }
            fs::rename(&data, segment::log_path(dir, base))?;
        }
        let purge = staged.join(meta::FILE_NAME);
        if purge.exists() {
            fs::rename(&purge, dir.join(meta::FILE_NAME))?;
        } else if !plan.purge {
            remove_if_exists(&dir.join(meta::FILE_NAME))?;
        }
        meta::sync_dir(dir)?;
        // What is left in the staged directory is not part of the log (index files of a
        // moved segment are rebuilt from its data); a data file left behind is a bug.
        for dirent in fs::read_dir(&staged)? {
            let name = dirent?.file_name();
            if name.to_str().and_then(segment::parse_log_name).is_some() {
                return Err(LogError::corrupt(staged, 0, "staged segment not moved"));
            }
        }
        fs::remove_dir_all(&staged)?;
    }
    remove_if_exists(&dir.join(MARKER))?;
    meta::sync_dir(dir)?;
    Ok(())
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::Plan;

    #[test]
    fn plan_round_trips() {
        for plan in [
            Plan {
                staged: "snapshot.ready".into(),
                bases: vec![7, 90],
                purge: false,
            },
            Plan {
                staged: "s".into(),
                bases: vec![],
                purge: true,
            },
        ] {
            assert_eq!(Plan::decode(&plan.encode()), Ok(plan));
        }
    }

    #[test]
    fn a_marker_cannot_name_a_directory_outside_the_log() {
        assert!(Plan::decode("staged=../x\nbases=\npurge=false\n").is_err());
        assert!(Plan::decode("staged=..\nbases=\npurge=false\n").is_err());
        assert!(Plan::decode("staged=a\nbases=x\npurge=false\n").is_err());
        assert!(Plan::decode("bases=1\npurge=false\n").is_err());
    }
}
