//! kill -9 test: a child process appends and acknowledges synced indexes; the parent kills it
//! at a random moment and checks that every acknowledged entry survived intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::BufRead;
use std::io::BufReader;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::process::Stdio;

use runnel_log::Log;
use runnel_log::LogConfig;
use support::entry_for;

const CHILD_ENV: &str = "RUNNEL_LOG_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        segment_max_age_ms: 3_600_000,
        index_interval_bytes: 1024,
        cache_window_bytes: None,
    }
}

/// Not a test by itself: the writer role, run when the parent re-executes this binary.
#[test]
fn crash_writer_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut log = Log::open(Path::new(&dir), config()).unwrap();
    let handle = log.sync_handle();
    let mut stdout = std::io::stdout().lock();
    let mut next = log.next_index();
    for round in 0u64.. {
        let n = 1 + (round * 7 + next) % 9;
        let batch: Vec<_> = (next..next + n).map(entry_for).collect();
        log.append(&batch).unwrap();
        next += n;
        if round % 2 == 0 {
            log.sync().unwrap()
        } else {
            handle.sync().unwrap()
        }
        writeln!(stdout, "ACK {}", next - 1).unwrap();
        stdout.flush().unwrap();
    }
}

/// xorshift, seeded from the clock: the kill moment only needs to vary.
fn rng_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos) | 1
}

fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn kill9_keeps_every_synced_entry() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rng_seed();
    let mut acked_ever: Option<u64> = None;
    for _round in 0..6 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let kill_after = 1 + next_rand(&mut rng) % 60;
        let mut acks = 0;
        let mut last_ack = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(idx) = line.strip_prefix("ACK ") {
                last_ack = Some(idx.parse::<u64>().unwrap());
                acks += 1;
                if acks >= kill_after {
                    // Let the writer get into its next batch (mid-write) before the kill.
                    for _ in 0..next_rand(&mut rng) % 20_000 {
                        std::hint::spin_loop();
                    }
                    child.kill().unwrap();
                    break;
                }
            }
        }
        let _ = child.kill();
        child.wait().unwrap();
        let last_ack = last_ack.expect("child acknowledged nothing");
        acked_ever = Some(acked_ever.map_or(last_ack, |a| a.max(last_ack)));

        let mut log = Log::open(dir.path(), config()).unwrap();
        let reader = log.reader();
        assert_eq!(reader.first_index(), Some(0));
        let next = log.next_index();
        assert!(
            next > acked_ever.unwrap(),
            "acknowledged {acked_ever:?} but the log ends at {next}"
        );
        let all = reader.read(0, usize::MAX, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, next);
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e, &entry_for(i as u64), "entry {i} differs");
        }
        // Appending continues where the log ends.
        log.append(&[entry_for(next), entry_for(next + 1)]).unwrap();
        log.sync().unwrap();
        assert_eq!(log.next_index(), next + 2);
    }
}
