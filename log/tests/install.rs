//! Installing a staged log in place of a log's entries (a replica catching up from a snapshot).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::Path;

use runnel_log::Log;
use support::entry_for;
use support::read_all;
use support::small;

/// Writes entries `range` into a fresh log at `dir/name` and closes it.
fn stage(dir: &Path, name: &str, range: std::ops::Range<u64>) {
    let mut staged = Log::open(&dir.join(name), small()).unwrap();
    let entries: Vec<_> = range.map(entry_for).collect();
    staged.append(&entries).unwrap();
    staged.sync().unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn install_replaces_every_entry_and_readers_see_the_new_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    // The old log: 0..40, with a conflicting tail the new log does not have.
    log.append(&(0..40).map(entry_for).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    let reader = log.reader();
    stage(dir.path(), "snapshot.ready", 100..180);

    log.install("snapshot.ready").unwrap();
    assert_eq!(read_all(&reader), (100..180).map(entry_for).collect::<Vec<_>>());
    assert_eq!(log.next_index(), 180);
    assert!(!dir.path().join("snapshot.ready").exists());
    // Appends continue after the installed entries.
    log.append(&[entry_for(180)]).unwrap();
    log.sync().unwrap();
    drop(log);

    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        read_all(&log.reader()),
        (100..181).map(entry_for).collect::<Vec<_>>()
    );
}

#[test]
fn an_empty_staged_log_with_a_purge_point_sets_the_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.append(&(0..10).map(entry_for).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    {
        let mut staged = Log::open(&dir.path().join("s"), small()).unwrap();
        staged.purge_through(499).unwrap();
    }
    log.install("s").unwrap();
    assert_eq!(log.first_index(), None);
    assert_eq!(log.next_index(), 500);
    log.append(&[entry_for(500)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(read_all(&log.reader()), vec![entry_for(500)]);
}

#[test]
fn a_crash_during_an_install_is_finished_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::open(dir.path(), small()).unwrap();
        log.append(&(0..60).map(entry_for).collect::<Vec<_>>()).unwrap();
        log.sync().unwrap();
        log.purge_through(5).unwrap();
    }
    stage(dir.path(), "snapshot.ready", 30..150);
    let staged = dir.path().join("snapshot.ready");
    let staged_logs: Vec<String> = names(&staged)
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert!(staged_logs.len() > 2, "the staged log spans several segments");
    let bases: Vec<String> = staged_logs
        .iter()
        .map(|n| n.trim_end_matches(".log").trim_start_matches('0').to_owned())
        .map(|b| if b.is_empty() { "0".to_owned() } else { b })
        .collect();
    // The state a crash can leave: the marker is durable, one staged segment has moved.
    fs::write(
        dir.path().join("install.meta"),
        format!("staged=snapshot.ready\nbases={}\npurge=false\n", bases.join(",")),
    )
    .unwrap();
    fs::rename(staged.join(&staged_logs[0]), dir.path().join(&staged_logs[0])).unwrap();

    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        read_all(&log.reader()),
        (30..150).map(entry_for).collect::<Vec<_>>()
    );
    assert!(!staged.exists());
    assert!(!dir.path().join("install.meta").exists());
    // The old purge point (5) went with the old log.
    assert_eq!(log.purged_through(), None);
}

#[test]
fn expired_through_names_the_last_index_retention_would_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.append(&(0..80).map(entry_for).collect::<Vec<_>>()).unwrap();
    log.sync().unwrap();
    assert_eq!(log.expired_through(i64::MIN), None);
    let through = log.expired_through(i64::MAX).expect("sealed segments expire");
    let deleted = log.delete_expired(i64::MAX).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.first_index(), Some(through + 1));
}
