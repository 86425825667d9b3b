//! Scenario tests of the log's documented behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use runnel_log::Log;
use runnel_log::LogConfig;
use runnel_log::LogError;
use support::entry_for;
use support::read_all;
use support::small;

fn segment_files(dir: &std::path::Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn corrupt_frame_inside_a_sealed_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    let entries: Vec<_> = (0..60).map(entry_for).collect();
    log.append(&entries).unwrap();
    log.sync().unwrap();
    drop(log);
    let segments = segment_files(dir.path(), "log");
    assert!(segments.len() > 2);
    // Without trusted index files the whole sealed segment is validated.
    for p in segment_files(dir.path(), "index")
        .iter()
        .chain(&segment_files(dir.path(), "timeindex"))
    {
        fs::remove_file(p).unwrap();
    }
    let file = OpenOptions::new().write(true).open(&segments[0]).unwrap();
    file.write_all_at(b"garbage", 100).unwrap();
    match Log::open(dir.path(), small()) {
        Err(LogError::Corrupt { path, .. }) => assert_eq!(path, segments[0]),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn fully_purged_log_accepts_any_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.append(&(10..40).map(entry_for).collect::<Vec<_>>()).unwrap();
    log.purge_through(100).unwrap();
    assert_eq!(log.first_index(), None);
    assert_eq!(log.next_index(), 101);
    assert_eq!(log.last_entry_id(), None);
    assert!(matches!(
        log.reader().read(50, 1, 1),
        Err(LogError::Purged { .. })
    ));
    log.append(&[entry_for(500), entry_for(501)]).unwrap();
    assert_eq!(log.first_index(), Some(500));
    assert!(matches!(
        log.append(&[entry_for(7)]),
        Err(LogError::NonContiguous {
            expected: 502,
            got: 7
        })
    ));
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(read_all(&log.reader()), vec![entry_for(500), entry_for(501)]);
    assert_eq!(log.stats().segments, 1);
}

#[test]
fn purge_inside_a_segment_is_logical_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&(0..20).map(entry_for).collect::<Vec<_>>()).unwrap();
    log.purge_through(4).unwrap();
    assert_eq!(log.first_index(), Some(5));
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.first_index(), Some(5));
    assert_eq!(log.reader().read(5, 1, 0).unwrap(), vec![entry_for(5)]);
    assert!(matches!(
        log.reader().read_range(3..6),
        Err(LogError::Purged { index: 3, .. })
    ));
}

#[test]
fn rolls_by_age_and_retention_never_deletes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_max_age_ms: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), cfg).unwrap();
    for i in 0..10u64 {
        let mut e = entry_for(i);
        e.timestamp_ms = i as i64 * 60;
        log.append(&[e]).unwrap();
    }
    // Entries at 0,60 | 120,180 | ... : a new segment once the first is more than 100 ms older.
    assert_eq!(log.stats().segments, 5);
    assert_eq!(log.delete_expired(130).unwrap(), 1);
    assert_eq!(log.first_index(), Some(2));
    assert_eq!(log.delete_expired(i64::MAX).unwrap(), 3);
    assert_eq!(log.first_index(), Some(8));
    assert_eq!(log.stats().segments, 1);
    assert_eq!(log.reader().find_by_timestamp(0).unwrap(), Some(8));
}

#[test]
fn sync_handle_works_from_another_thread_across_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    let handle = log.sync_handle();
    let syncer = std::thread::spawn(move || {
        for _ in 0..200 {
            handle.sync().unwrap();
        }
    });
    for i in 0..200 {
        log.append(&[entry_for(i)]).unwrap();
    }
    syncer.join().unwrap();
    log.sync_handle().sync().unwrap();
    assert!(log.stats().segments > 10);
    assert_eq!(
        read_all(&log.reader()),
        (0..200).map(entry_for).collect::<Vec<_>>()
    );
}

#[test]
fn readers_run_concurrently_with_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.append(&[entry_for(0)]).unwrap();
    let reader = log.reader();
    let tail = std::thread::spawn(move || {
        let mut next = 0;
        while next < 300 {
            for e in reader.read(next, 7, 4096).unwrap() {
                assert_eq!(e, entry_for(next));
                next += 1;
            }
        }
    });
    for i in 1..300 {
        log.append(&[entry_for(i)]).unwrap();
    }
    tail.join().unwrap();
}

#[test]
fn sealed_index_files_are_used_and_bad_ones_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small()).unwrap();
    log.append(&(0..80).map(entry_for).collect::<Vec<_>>()).unwrap();
    drop(log);
    let indexes = segment_files(dir.path(), "index");
    assert_eq!(indexes.len(), segment_files(dir.path(), "log").len() - 1);
    fs::write(&indexes[0], [7u8; 30]).unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(
        read_all(&log.reader()),
        (0..80).map(entry_for).collect::<Vec<_>>()
    );
    assert_eq!(fs::read(&indexes[0]).unwrap().len() % 12, 0);
}

/// Pages of `path` in the page cache, in bytes, as util-linux's `fincore` counts them.
fn resident_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn drop_behind_keeps_only_the_newest_window_of_the_log_in_the_page_cache() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 24 * MIB,
        cache_window_bytes: Some(4 * MIB),
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config).unwrap();
    let payload = bytes::Bytes::from(vec![7u8; 256 * 1024]);
    // 64 MiB in 256 KiB entries over three segments, fsynced as group commit would.
    for index in 0..256u64 {
        let entry = runnel_log::Entry {
            index,
            term: 1,
            timestamp_ms: 1_000,
            kind: 0,
            payload: payload.clone(),
        };
        log.append(&[entry]).unwrap();
        log.sync_handle().sync().unwrap();
    }
    let segments = segment_files(dir.path(), "log");
    assert_eq!(segments.len(), 3, "{segments:?}");
    let resident: u64 = segments.iter().map(|p| resident_bytes(p)).sum();
    // The window, at most one step (4 MiB) not yet dropped, and the sealed segment's last
    // window until the active one fills its own.
    assert!(
        resident <= 12 * MIB + MIB,
        "{} MiB of the log stayed in the page cache",
        resident / MIB
    );
    // Dropped pages are only out of the cache: every entry still reads back.
    let reader = log.reader();
    let back = reader.read(0, 256, usize::MAX).unwrap();
    assert_eq!(back.len(), 256);
    assert!(back.iter().all(|e| e.payload == payload));
}
