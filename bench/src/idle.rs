//! The `idle` mode: what idle shards cost. Creates a stream of `--shards` shards (on a cluster,
//! each replicated), lets it settle, then reads every node's `process_cpu_seconds_total` from
//! its metrics endpoint twice, `--duration` seconds apart, with no traffic in between: the
//! share of one core each node spends keeping its idle Raft groups alive.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runnel_client::Client;
use runnel_client::CreateStream;
use runnel_client::Error;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::Options;
use crate::report::Report;

#[derive(Debug, Clone, Args)]
pub struct IdleOptions {
    #[command(flatten)]
    pub common: Options,
    /// Metrics addresses (HOST:PORT) of the nodes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub metrics: Vec<String>,
    /// Seconds to wait after the stream is ACTIVE before measuring (elections settle).
    #[arg(long, default_value_t = 15)]
    pub settle: u64,
}

/// `process_cpu_seconds_total` and the number of groups led (`runnel_raft_is_leader` 1), from
/// one node's Prometheus text.
pub fn parse_node(text: &str) -> Option<(f64, usize)> {
    let cpu = text
        .lines()
        .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))?
        .trim()
        .parse()
        .ok()?;
    let led = text
        .lines()
        .filter(|l| l.starts_with("runnel_raft_is_leader{") && l.ends_with(" 1"))
        .count();
    Some((cpu, led))
}

/// The Prometheus text of a node's metrics endpoint `addr` (HOST:PORT).
pub async fn scrape_text(addr: &str) -> anyhow::Result<String> {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the metrics endpoint {addr}"))?;
    conn.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    conn.read_to_string(&mut body).await?;
    Ok(body)
}

async fn scrape(addr: &str) -> anyhow::Result<(f64, usize)> {
    let body = scrape_text(addr).await?;
    parse_node(&body).with_context(|| format!("{addr} reports no process_cpu_seconds_total"))
}

pub async fn run(options: &IdleOptions) -> anyhow::Result<Report> {
    let o = &options.common;
    let client = Client::connect(o.endpoint.as_str()).await?;
    match client
        .create_stream(CreateStream::provisioned(&o.stream, o.shards))
        .await
    {
        Ok(_) | Err(Error::StreamExists(_)) => {}
        Err(err) => return Err(err).context("cannot create the stream"),
    }
    let description = client
        .wait_for_active(&o.stream, Duration::from_secs(600))
        .await?;
    eprintln!(
        "{} shard(s) ACTIVE; settling for {} s",
        description.shards.len(),
        options.settle
    );
    tokio::time::sleep(Duration::from_secs(options.settle)).await;
    let mut before = Vec::new();
    for addr in &options.metrics {
        before.push(scrape(addr).await?);
    }
    let start = Instant::now();
    tokio::time::sleep(o.duration()).await;
    let seconds = start.elapsed().as_secs_f64();
    let mut report = Report::new("idle");
    report.count("shards", "shards", description.shards.len() as u64);
    report.number("seconds", "measured over", seconds, "s");
    for (addr, (cpu0, _)) in options.metrics.iter().zip(before) {
        let (cpu1, led) = scrape(addr).await?;
        let share = (cpu1 - cpu0) / seconds * 100.0;
        let key = addr.replace([':', '.'], "_");
        report.number(
            &format!("cpu_percent_{key}"),
            &format!("{addr} CPU (% of one core)"),
            share,
            "%",
        );
        report.count(
            &format!("groups_led_{key}"),
            &format!("{addr} groups led"),
            led as u64,
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_and_leaderships() {
        let text = "runnel_raft_is_leader{group=\"0\"} 1\nrunnel_raft_is_leader{group=\"1\"} 0\n\
                    runnel_raft_is_leader{group=\"2\"} 1\n# TYPE process_cpu_seconds_total counter\n\
                    process_cpu_seconds_total 12.5\n";
        assert_eq!(parse_node(text), Some((12.5, 2)));
        assert_eq!(parse_node("nothing"), None);
    }
}
