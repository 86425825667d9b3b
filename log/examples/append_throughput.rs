//! Rough append throughput: 500 KiB entries, fsync every 8 entries.
//! `cargo run --release -p runnel-log --example append_throughput`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use runnel_log::Entry;
use runnel_log::Log;
use runnel_log::LogConfig;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let payload = Bytes::from(vec![7u8; 500 * 1024]);
    let n = 2000u64;
    let start = std::time::Instant::now();
    for i in 0..n {
        let e = Entry {
            index: i,
            term: 1,
            timestamp_ms: i as i64,
            kind: 0,
            payload: payload.clone(),
        };
        log.append(std::slice::from_ref(&e)).unwrap();
        if i % 8 == 7 {
            log.sync().unwrap();
        }
    }
    log.sync().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let mb = (n as f64 * payload.len() as f64) / 1e6;
    println!("append: {mb:.0} MB in {secs:.2}s = {:.0} MB/s", mb / secs);
    let reader = log.reader();
    let start = std::time::Instant::now();
    let mut next = 0;
    while next < n {
        next += reader.read(next, 64, 8 << 20).unwrap().len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("read: {mb:.0} MB in {secs:.2}s = {:.0} MB/s", mb / secs);
}
