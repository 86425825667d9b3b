//! Printing records and documents, human-readable or JSON.

use std::io::Write;

use base64::Engine;
use runnel_client::Record;

/// Where and how results are printed.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Prints one line to stdout.
    pub fn line(&self, text: &str) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}")?;
        Ok(())
    }

    pub fn json_value(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        self.line(&value.to_string())
    }

    pub fn json_pretty(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        self.line(&serde_json::to_string_pretty(value)?)
    }

    /// Prints records, one line or JSON object each, and flushes.
    pub fn records(&self, records: &[Record]) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        for record in records {
            if self.json {
                writeln!(stdout, "{}", record_json(record))?;
            } else {
                writeln!(stdout, "{}", record_line(record))?;
            }
        }
        stdout.flush()?;
        Ok(())
    }
}

/// True when the error is stdout being closed under us (e.g. piped into `head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `2026-11-26T14:00:00.123Z` for milliseconds since the Unix epoch.
pub fn format_time(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Err(_) => ms.to_string(),
    }
}

/// The data as text when it is printable UTF-8, otherwise `base64:` and its base64.
pub fn data_text(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\t') => text.to_string(),
        _ => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(data)
        ),
    }
}

/// `shardId-000000000000  <sequence>  <time>  <key>  <data>`
pub fn record_line(record: &Record) -> String {
    format!(
        "{}  {}  {}  {}  {}",
        record.shard_id,
        record.sequence_number,
        format_time(record.arrival_ms),
        record.partition_key,
        data_text(&record.data)
    )
}

/// The record as JSON: `data` in base64 (as the Kinesis API), `text` when it is UTF-8.
pub fn record_json(record: &Record) -> serde_json::Value {
    let mut value = serde_json::json!({
        "shard_id": record.shard_id,
        "sequence_number": record.sequence_number,
        "approximate_arrival_timestamp": format_time(record.arrival_ms),
        "approximate_arrival_timestamp_ms": record.arrival_ms,
        "partition_key": record.partition_key,
        "data": base64::engine::general_purpose::STANDARD.encode(&record.data),
    });
    if let Some(map) = value.as_object_mut() {
        if let Ok(text) = std::str::from_utf8(&record.data) {
            map.insert("text".to_string(), serde_json::Value::String(text.to_string()));
        }
        if let Some(key) = &record.explicit_hash_key {
            map.insert(
                "explicit_hash_key".to_string(),
                serde_json::Value::String(key.clone()),
            );
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &[u8]) -> Record {
        Record {
            shard_id: "shardId-000000000000".into(),
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            arrival_ms: 1_795_701_600_123,
            partition_key: "key".into(),
            data: bytes::Bytes::copy_from_slice(data),
            explicit_hash_key: None,
        }
    }

    #[test]
    fn human_line() {
        assert_eq!(
            record_line(&record(b"hello world")),
            "shardId-000000000000  49590338271490256608559692538361571095921575989136588898  \
             2026-11-26T14:00:00.123Z  key  hello world"
        );
        assert_eq!(data_text(&[0xff, 0x00]), "base64:/wA=");
        assert_eq!(data_text(b"a\nb"), "base64:YQpi");
    }

    #[test]
    fn json_record() {
        let value = record_json(&record(b"hi"));
        assert_eq!(value["data"], "aGk=");
        assert_eq!(value["text"], "hi");
        assert_eq!(value["approximate_arrival_timestamp"], "2026-11-26T14:00:00.123Z");
        assert!(record_json(&record(&[0xff]))["text"].is_null());
    }
}
