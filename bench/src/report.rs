//! Results: a table for people and a JSON document for scripts.

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to 10 minutes, with 3 significant digits.
#[allow(clippy::expect_used)]
pub fn histogram() -> Histogram<u64> {
    // Constant, valid bounds (low >= 1, high >= 2 * low, sigfig <= 5): this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// An ordered list of results.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<(String, String)>,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn new(mode: &str) -> Self {
        let mut report = Report::default();
        report.text("mode", "mode", mode);
        report
    }

    pub fn text(&mut self, key: &str, label: &str, value: &str) {
        self.rows.push((label.to_string(), value.to_string()));
        self.json
            .insert(key.to_string(), serde_json::Value::String(value.to_string()));
    }

    pub fn count(&mut self, key: &str, label: &str, value: u64) {
        self.rows.push((label.to_string(), value.to_string()));
        self.json.insert(key.to_string(), value.into());
    }

    pub fn number(&mut self, key: &str, label: &str, value: f64, unit: &str) {
        self.rows.push((
            label.to_string(),
            format!("{value:.2} {unit}").trim_end().to_string(),
        ));
        self.json.insert(
            key.to_string(),
            serde_json::json!((value * 1000.0).round() / 1000.0),
        );
    }

    /// Throughput rows for `records` and `bytes` over `seconds`.
    pub fn rates(&mut self, prefix: &str, records: u64, bytes: u64, seconds: f64) {
        let seconds = seconds.max(1e-9);
        self.number(
            &format!("{prefix}_records_per_sec"),
            &format!("{prefix} records/s"),
            records as f64 / seconds,
            "",
        );
        self.number(
            &format!("{prefix}_mb_per_sec"),
            &format!("{prefix} MB/s (10^6 B)"),
            bytes as f64 / seconds / 1e6,
            "",
        );
    }

    /// p50, p99, p999 and max of a histogram of microseconds, shown in milliseconds.
    pub fn latency(&mut self, prefix: &str, label: &str, histogram: &Histogram<u64>) {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let (p50, p99, p999, max) = if histogram.is_empty() {
            (0.0, 0.0, 0.0, 0.0)
        } else {
            (
                ms(histogram.value_at_quantile(0.5)),
                ms(histogram.value_at_quantile(0.99)),
                ms(histogram.value_at_quantile(0.999)),
                ms(histogram.max()),
            )
        };
        self.rows.push((
            format!("{label} (ms)"),
            format!(
                "p50 {p50:.3}  p99 {p99:.3}  p999 {p999:.3}  max {max:.3}  ({} samples)",
                histogram.len()
            ),
        ));
        self.json.insert(
            format!("{prefix}_latency_ms"),
            serde_json::json!({
                "p50": p50, "p99": p99, "p999": p999, "max": max,
                "mean": histogram.mean() / 1000.0, "samples": histogram.len(),
            }),
        );
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(&self.json)?);
            return Ok(());
        }
        let width = self.rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        println!();
        for (label, value) in &self.rows {
            println!("{label:<width$}  {value}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_rows_in_milliseconds() {
        let mut histogram = histogram();
        for micros in 1..=1000 {
            histogram.saturating_record(micros * 10);
        }
        let mut report = Report::new("produce");
        report.latency("put", "put latency", &histogram);
        report.rates("produce", 1000, 2_000_000, 2.0);
        let p50 = report.json["put_latency_ms"]["p50"].as_f64().unwrap_or_default();
        assert!((p50 - 5.0).abs() < 0.01, "{p50}");
        assert_eq!(report.json["produce_records_per_sec"], serde_json::json!(500.0));
        assert_eq!(report.json["produce_mb_per_sec"], serde_json::json!(1.0));
        assert_eq!(report.json["mode"], "produce");
    }
}
