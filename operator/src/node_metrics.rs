//! Reading the nodes' `/metrics` (Prometheus text): the per-shard write counters and the
//! per-stream read counter the autoscaler turns into rates. Parsing is pure; [`scrape`] is the
//! only I/O (one HTTP/1.0 GET).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;
use std::time::Duration;
use std::time::SystemTime;
use std::time::UNIX_EPOCH;

use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;

use crate::load::LoadTracker;
use crate::policy::autoscaling::HotKey;

/// Bytes of accepted records per shard (labels `stream`, `shard`).
pub const SHARD_BYTES: &str = "runnel_shard_incoming_bytes_total";
/// Accepted records per shard (labels `stream`, `shard`).
pub const SHARD_RECORDS: &str = "runnel_shard_incoming_records_total";
/// Bytes GetRecords returned per shard (labels `stream`, `shard`): the reads that share a
/// shard's read limit.
pub const SHARD_BYTES_OUT: &str = "runnel_shard_outgoing_bytes_total";
/// The bytes of a shard's hottest hash key written through the node in its last window (labels
/// `stream`, `shard`, `hash_key`), and of all the shard's writes in it.
pub const SHARD_HOT_KEY_BYTES: &str = "runnel_shard_hot_key_bytes";
pub const SHARD_WINDOW_BYTES: &str = "runnel_shard_window_bytes";
/// Bytes delivered to readers per stream (label `stream`).
pub const STREAM_BYTES_OUT: &str = "runnel_usage_bytes_out_total";

/// A series the tracker follows: a shard's writes and GetRecords reads, or (without `shard`) a
/// stream's reads of every kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub stream: String,
    pub shard: Option<String>,
}

/// Counter values of one series (monotonic, reset when a node restarts).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub write_bytes: f64,
    pub write_records: f64,
    pub read_bytes: f64,
}

impl Counters {
    fn add(&mut self, other: &Counters) {
        self.write_bytes += other.write_bytes;
        self.write_records += other.write_records;
        self.read_bytes += other.read_bytes;
    }
}

/// Errors reading a node's metrics.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr}: unexpected response {status:?}")]
    Status { addr: String, status: String },
}

/// The counters the autoscaler uses, from one node's `/metrics` text.
pub fn parse(text: &str) -> BTreeMap<SeriesKey, Counters> {
    let mut out: BTreeMap<SeriesKey, Counters> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        let Some(stream) = label("stream") else {
            continue;
        };
        let (shard, counters) = match name {
            SHARD_BYTES => (
                label("shard"),
                Counters {
                    write_bytes: value,
                    ..Counters::default()
                },
            ),
            SHARD_RECORDS => (
                label("shard"),
                Counters {
                    write_records: value,
                    ..Counters::default()
                },
            ),
            SHARD_BYTES_OUT => (
                label("shard"),
                Counters {
                    read_bytes: value,
                    ..Counters::default()
                },
            ),
            STREAM_BYTES_OUT => (
                None,
                Counters {
                    read_bytes: value,
                    ..Counters::default()
                },
            ),
            _ => continue,
        };
        if matches!(name, SHARD_BYTES | SHARD_RECORDS | SHARD_BYTES_OUT) && shard.is_none() {
            continue;
        }
        out.entry(SeriesKey { stream, shard }).or_default().add(&counters);
    }
    out
}

/// One node's report of a shard's last window: its hottest hash key and bytes, and the
/// window's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeHotKey {
    pub hash_key: u128,
    pub bytes: f64,
    pub window_bytes: f64,
}

/// The hot-key gauges of one node's `/metrics` text, per shard.
pub fn parse_hot_keys(text: &str) -> BTreeMap<SeriesKey, NodeHotKey> {
    let mut out: BTreeMap<SeriesKey, NodeHotKey> = BTreeMap::new();
    for line in text.lines() {
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        if name != SHARD_HOT_KEY_BYTES && name != SHARD_WINDOW_BYTES {
            continue;
        }
        let label = |key: &str| labels.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        let (Some(stream), Some(shard)) = (label("stream"), label("shard")) else {
            continue;
        };
        let entry = out.entry(SeriesKey {
            stream,
            shard: Some(shard),
        });
        if name == SHARD_WINDOW_BYTES {
            entry.or_default().window_bytes = value;
        } else if let Some(key) = label("hash_key").and_then(|k| k.parse::<u128>().ok()) {
            let e = entry.or_default();
            e.hash_key = key;
            e.bytes = value;
        }
    }
    out.retain(|_, h| h.window_bytes > 0.0 && h.bytes > 0.0);
    out
}

/// The hot key of each shard over all nodes: the key with the most bytes summed over the
/// nodes that report it, as a share of the shard's bytes on every node that wrote to it.
pub fn combine_hot_keys(nodes: &[BTreeMap<SeriesKey, NodeHotKey>]) -> BTreeMap<SeriesKey, HotKey> {
    let mut per_shard: BTreeMap<&SeriesKey, (f64, BTreeMap<u128, f64>)> = BTreeMap::new();
    for node in nodes {
        for (shard, h) in node {
            let e = per_shard.entry(shard).or_default();
            e.0 += h.window_bytes;
            *e.1.entry(h.hash_key).or_default() += h.bytes;
        }
    }
    per_shard
        .into_iter()
        .filter_map(|(shard, (total, keys))| {
            let (key, bytes) = keys
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))?;
            (total > 0.0).then(|| {
                (
                    shard.clone(),
                    HotKey {
                        hash_key: key,
                        share: (bytes / total).clamp(0.0, 1.0),
                    },
                )
            })
        })
        .collect()
}

/// Label names and values of one sample.
type Labels = Vec<(String, String)>;

/// One sample line: metric name, labels, value. None for comments and malformed lines.
fn sample(line: &str) -> Option<(&str, Labels, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let rest = &line[name_end..];
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => {
            let close = inner.rfind('}')?;
            (labels(&inner[..close])?, &inner[close + 1..])
        }
        None => (Vec::new(), rest),
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    value.is_finite().then_some((name, labels, value))
}

/// `a="x",b="y"` with `\"`, `\\` and `\n` escapes in values.
fn labels(s: &str) -> Option<Labels> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
    }
}

/// GETs `http://{addr}/metrics` and returns the body.
pub async fn scrape(addr: &str, timeout: Duration) -> Result<String, ScrapeError> {
    let io = |source| ScrapeError::Io {
        addr: addr.to_string(),
        source,
    };
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(io)?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| ScrapeError::Timeout {
            addr: addr.to_string(),
            timeout,
        })??;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(ScrapeError::Status {
            addr: addr.to_string(),
            status: status.to_string(),
        });
    }
    Ok(body.to_string())
}

/// The `HOST:PORT` of each node's metrics endpoint; discovery may replace the list.
#[derive(Clone, Debug, Default)]
pub struct MetricsTargets(Arc<RwLock<Vec<String>>>);

impl MetricsTargets {
    pub fn new(addrs: Vec<String>) -> MetricsTargets {
        MetricsTargets(Arc::new(RwLock::new(addrs)))
    }

    pub fn set(&self, addrs: Vec<String>) {
        if let Ok(mut guard) = self.0.write() {
            *guard = addrs;
        }
    }

    pub fn get(&self) -> Vec<String> {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Scrapes every node each `interval` and records their counters. A round in which any node
/// does not answer is skipped (a partial round would look like a drop in load).
pub async fn sample_forever(targets: MetricsTargets, tracker: Arc<Mutex<LoadTracker>>, interval: Duration) {
    let timeout = interval.clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let addrs = targets.get();
        if addrs.is_empty() {
            continue;
        }
        let results = futures::future::join_all(addrs.iter().map(|a| scrape(a, timeout))).await;
        let mut nodes = BTreeMap::new();
        let mut hot_keys = Vec::new();
        let mut failed = None;
        for (addr, result) in addrs.into_iter().zip(results) {
            match result {
                Ok(text) => {
                    nodes.insert(addr, parse(&text));
                    hot_keys.push(parse_hot_keys(&text));
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "skipping a load sample: a node's metrics are unreadable");
            continue;
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        if let Ok(mut tracker) = tracker.lock() {
            tracker.record(at_ms, nodes);
            tracker.set_hot_keys(combine_hot_keys(&hot_keys));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP runnel_shard_incoming_bytes_total IncomingBytes per shard
# TYPE runnel_shard_incoming_bytes_total counter
runnel_shard_incoming_bytes_total{shard="shardId-000000000000",stream="orders"} 2048
runnel_shard_incoming_bytes_total{shard="shardId-000000000001",stream="orders"} 1e3
runnel_shard_incoming_records_total{shard="shardId-000000000000",stream="orders"} 4
runnel_shard_outgoing_bytes_total{shard="shardId-000000000000",stream="orders"} 300
runnel_usage_bytes_out_total{stream="orders"} 512
runnel_incoming_bytes_total{stream="orders"} 3048
runnel_shard_incoming_bytes_total{stream="odd \"name\""} 1
garbage line
runnel_shard_incoming_records_total{shard="shardId-000000000002",stream="a.b-c_d"} NaN
"#;

    #[test]
    fn hot_keys_are_parsed_per_shard_and_combined_over_nodes() {
        let node_a = r#"runnel_shard_hot_key_bytes{hash_key="77",shard="shardId-000000000000",stream="orders"} 600
runnel_shard_window_bytes{shard="shardId-000000000000",stream="orders"} 1000
runnel_shard_hot_key_bytes{hash_key="5",shard="shardId-000000000001",stream="orders"} 10
runnel_shard_window_bytes{shard="shardId-000000000001",stream="orders"} 100
runnel_shard_hot_key_bytes{hash_key="not a number",shard="shardId-000000000002",stream="orders"} 1
runnel_shard_window_bytes{shard="shardId-000000000002",stream="orders"} 1
"#;
        // Another node saw the same hot key on shard 0, and a different one on shard 1.
        let node_b = r#"runnel_shard_hot_key_bytes{hash_key="77",shard="shardId-000000000000",stream="orders"} 300
runnel_shard_window_bytes{shard="shardId-000000000000",stream="orders"} 1000
runnel_shard_hot_key_bytes{hash_key="6",shard="shardId-000000000001",stream="orders"} 90
runnel_shard_window_bytes{shard="shardId-000000000001",stream="orders"} 100
"#;
        let a = parse_hot_keys(node_a);
        assert_eq!(
            a.get(&key("orders", Some("shardId-000000000000"))),
            Some(&NodeHotKey {
                hash_key: 77,
                bytes: 600.0,
                window_bytes: 1000.0
            })
        );
        // A key that is no hash key leaves the shard without a hot key.
        assert_eq!(a.len(), 2, "{a:?}");
        let combined = combine_hot_keys(&[a, parse_hot_keys(node_b)]);
        let s0 = combined[&key("orders", Some("shardId-000000000000"))];
        assert_eq!((s0.hash_key, s0.share), (77, 0.45));
        let s1 = combined[&key("orders", Some("shardId-000000000001"))];
        assert_eq!((s1.hash_key, s1.share), (6, 0.45));
        assert!(combine_hot_keys(&[]).is_empty());
    }

    fn key(stream: &str, shard: Option<&str>) -> SeriesKey {
        SeriesKey {
            stream: stream.into(),
            shard: shard.map(str::to_string),
        }
    }

    #[test]
    fn parses_shard_and_stream_counters() {
        let m = parse(TEXT);
        assert_eq!(
            m.get(&key("orders", Some("shardId-000000000000"))),
            Some(&Counters {
                write_bytes: 2048.0,
                write_records: 4.0,
                read_bytes: 300.0
            })
        );
        assert_eq!(
            m.get(&key("orders", Some("shardId-000000000001")))
                .map(|c| c.write_bytes),
            Some(1000.0)
        );
        assert_eq!(m.get(&key("orders", None)).map(|c| c.read_bytes), Some(512.0));
        // The per-stream IncomingBytes, a shard counter without a shard label and NaN are ignored.
        assert_eq!(m.len(), 3, "{m:?}");
    }

    #[test]
    fn label_values_unescape() {
        assert_eq!(
            labels(r#"a="x\"y",b="\\",c="""#),
            Some(vec![
                ("a".into(), "x\"y".into()),
                ("b".into(), "\\".into()),
                ("c".into(), String::new())
            ])
        );
        assert_eq!(labels(r#"a=x"#), None);
    }
}
