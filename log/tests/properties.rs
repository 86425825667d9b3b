//! Property tests of the log against a `Vec<Entry>` model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;
use runnel_log::Entry;
use runnel_log::Log;
use runnel_log::LogConfig;
use support::entries_from;
use support::model_find_by_timestamp;
use support::read_all;

fn config(segment_bytes: u64, interval: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_max_age_ms: 1_000_000,
        index_interval_bytes: interval,
        cache_window_bytes: None,
    }
}

/// Payload sizes and timestamp steps (which may go backwards).
fn specs(max: usize) -> impl Strategy<Value = Vec<(usize, i64)>> {
    prop::collection::vec((0usize..700, -40i64..100), 1..max).prop_map(|v| {
        let mut ts = 10_000;
        v.into_iter()
            .map(|(len, step)| {
                ts += step;
                (len, ts)
            })
            .collect()
    })
}

fn append_in_batches(log: &mut Log, entries: &[Entry], batch: usize) {
    for chunk in entries.chunks(batch.max(1)) {
        log.append(chunk).unwrap();
    }
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn append_then_read_at_any_index(
        specs in specs(120),
        start in 0u64..1000,
        segment_bytes in 100u64..4000,
        interval in 0u32..600,
        batch in 1usize..9,
        reads in prop::collection::vec((0usize..130, 1usize..20, 0usize..3000), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let model = entries_from(start, &specs);
        let mut log = Log::open(dir.path(), config(segment_bytes, interval)).unwrap();
        append_in_batches(&mut log, &model, batch);
        prop_assert_eq!(log.next_index(), start + model.len() as u64);
        prop_assert_eq!(log.first_index(), Some(start));
        let last = model.last().unwrap();
        prop_assert_eq!(log.last_entry_id(), Some((last.index, last.term)));

        let check = |log: &Log| -> Result<(), TestCaseError> {
            let reader = log.reader();
            prop_assert_eq!(&read_all(&reader), &model);
            for &(at, max_entries, max_bytes) in &reads {
                let from = start + at as u64;
                let got = reader.read(from, max_entries, max_bytes).unwrap();
                let rest = model.get(at.min(model.len())..).unwrap_or(&[]);
                // Model: at most max_entries; stop before exceeding max_bytes, but at least one.
                let mut want = Vec::new();
                let mut bytes = 0;
                for e in rest.iter().take(max_entries) {
                    if !want.is_empty() && bytes + e.payload.len() > max_bytes {
                        break;
                    }
                    bytes += e.payload.len();
                    want.push(e.clone());
                    if bytes >= max_bytes {
                        break;
                    }
                }
                prop_assert_eq!(&got, &want);
                if at < model.len() {
                    prop_assert_eq!(reader.entry_timestamp(from).unwrap(), Some(model[at].timestamp_ms));
                    let end = (from + max_entries as u64).min(start + model.len() as u64);
                    prop_assert_eq!(&reader.read_range(from..end).unwrap()[..], &model[at..(end - start) as usize]);
                }
            }
            prop_assert!(reader.read_range(start..start + model.len() as u64 + 1).is_err());
            if start > 0 {
                prop_assert!(reader.read(start - 1, 1, 1).is_err());
            }
            Ok(())
        };
        check(&log)?;
        let stats = log.stats();
        drop(log);
        let log = Log::open(dir.path(), config(segment_bytes, interval)).unwrap();
        prop_assert_eq!(log.stats(), stats);
        check(&log)?;
    }

    #[test]
    fn find_by_timestamp_matches_brute_force(
        specs in specs(150),
        segment_bytes in 100u64..4000,
        interval in 0u32..600,
        queries in prop::collection::vec(9_000i64..20_000, 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let model = entries_from(5, &specs);
        let mut log = Log::open(dir.path(), config(segment_bytes, interval)).unwrap();
        append_in_batches(&mut log, &model, 3);
        for reopen in [false, true] {
            if reopen {
                drop(log);
                log = Log::open(dir.path(), config(segment_bytes, interval)).unwrap();
            }
            let reader = log.reader();
            for &ts in queries.iter().chain(&[i64::MIN, i64::MAX]) {
                prop_assert_eq!(reader.find_by_timestamp(ts).unwrap(), model_find_by_timestamp(&model, ts), "ts {}", ts);
            }
            for e in &model {
                prop_assert_eq!(
                    reader.find_by_timestamp(e.timestamp_ms).unwrap(),
                    model_find_by_timestamp(&model, e.timestamp_ms)
                );
            }
        }
    }

    #[test]
    fn truncate_then_append_matches_model(
        first in specs(80),
        ops in prop::collection::vec((0usize..100, specs(30), any::<bool>()), 1..6),
        segment_bytes in 100u64..3000,
        interval in 0u32..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let mut model = entries_from(0, &first);
        let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
        append_in_batches(&mut log, &model, 4);
        for (keep, more, reopen) in ops {
            let keep = keep.min(model.len());
            // keep == 0 removes everything (truncate_after(None)).
            let after = (keep as u64).checked_sub(1);
            log.truncate_after(after).unwrap();
            model.truncate(keep);
            prop_assert_eq!(log.next_index(), model.len() as u64);
            if reopen {
                drop(log);
                log = Log::open(dir.path(), cfg.clone()).unwrap();
            }
            prop_assert_eq!(&read_all(&log.reader()), &model);
            prop_assert_eq!(log.last_entry_id(), model.last().map(|e| (e.index, e.term)));
            let added = entries_from(model.len() as u64, &more);
            append_in_batches(&mut log, &added, 2);
            model.extend(added);
            prop_assert_eq!(&read_all(&log.reader()), &model);
        }
        drop(log);
        let log = Log::open(dir.path(), cfg).unwrap();
        prop_assert_eq!(&read_all(&log.reader()), &model);
    }

    #[test]
    fn purge_and_retention_keep_what_must_remain(
        specs in specs(120),
        segment_bytes in 100u64..3000,
        ops in prop::collection::vec((any::<bool>(), 0u64..130, 9_000i64..20_000), 1..8),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, 256);
        let model = entries_from(0, &specs);
        let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
        append_in_batches(&mut log, &model, 5);
        let last = model.len() as u64 - 1;
        // Running-maximum timestamps: retention may only drop entries older than the cutoff.
        let mut max = i64::MIN;
        let effective: Vec<i64> = model.iter().map(|e| { max = max.max(e.timestamp_ms); max }).collect();
        let mut must_remain_from = 0u64;
        for (purge, at, cutoff) in ops {
            if purge && last > 0 {
                // Always keep the last entry so the log stays non-empty.
                let at = at.min(last - 1);
                log.purge_through(at).unwrap();
                must_remain_from = must_remain_from.max(at + 1);
            } else {
                log.delete_expired(cutoff).unwrap();
                let keep = effective.iter().position(|&t| t >= cutoff).map_or(last, |i| i as u64);
                prop_assert!(log.first_index().unwrap() <= keep.min(last).max(must_remain_from));
            }
            let first = log.first_index().unwrap();
            prop_assert!(first >= must_remain_from);
            let got = read_all(&log.reader());
            prop_assert_eq!(&got[..], &model[first as usize..]);
            prop_assert!(log.reader().read(first.saturating_sub(1), 1, 1).is_err() || first == 0);
            must_remain_from = first;
        }
        let stats = log.stats();
        drop(log);
        let log = Log::open(dir.path(), cfg).unwrap();
        prop_assert_eq!(log.stats(), stats);
        prop_assert_eq!(&read_all(&log.reader())[..], &model[stats.first_index.unwrap() as usize..]);
    }

    #[test]
    fn recovery_returns_an_intact_prefix(
        specs in specs(100),
        segment_bytes in 200u64..5000,
        synced in 0usize..100,
        damage in 0usize..3,
        at in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 1..80),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, 128);
        let model = entries_from(0, &specs);
        let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
        append_in_batches(&mut log, &model, 3);
        let synced = synced.min(model.len());
        drop(log);

        let path = last_segment(dir.path());
        let file = OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let base: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let pos = at.index(len as usize + 1) as u64;
        match damage {
            0 => file.set_len(pos).unwrap(),
            1 => file.write_all_at(&garbage, pos).unwrap(),
            _ => {
                // A preallocated, zero-filled tail after a torn write.
                file.set_len(pos).unwrap();
                file.set_len(pos + garbage.len() as u64 * 50).unwrap();
            }
        }
        drop(file);

        let mut log = Log::open(dir.path(), cfg.clone()).unwrap();
        let got = read_all(&log.reader());
        prop_assert!(got.len() <= model.len());
        prop_assert_eq!(&got[..], &model[..got.len()]);
        // Sealed segments are untouched.
        prop_assert!(got.len() as u64 >= base);
        let _ = synced;
        prop_assert_eq!(log.next_index(), got.len() as u64);
        let more = entries_from(got.len() as u64, &[(10, 1), (20, 2)]);
        log.append(&more).unwrap();
        log.sync().unwrap();
        drop(log);
        let log = Log::open(dir.path(), cfg).unwrap();
        let again = read_all(&log.reader());
        prop_assert_eq!(&again[..got.len()], &got[..]);
        prop_assert_eq!(&again[got.len()..], &more[..]);
    }
}
