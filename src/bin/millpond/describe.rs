//! `millpond describe <topic>`: per partition the log start, high
//! watermark, records, segments and bytes, then the topic's config.

use millpond::{Backlog, Broker, CleanupPolicy, FsyncPolicy, TopicConfig};
use serde_json::{Value, json};

use crate::exit::CliError;
use crate::output::{Out, Table};

/// Describes the topic `name` of `broker`.
pub(crate) fn run(broker: &Broker, name: &str, json: bool, out: &mut Out) -> Result<(), CliError> {
    let topic = broker.topic(name)?;
    let stats = topic.stats();
    let config = topic.config();
    if json {
        let partitions: Vec<_> = stats
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition,
                    "log_start": p.log_start,
                    "high_watermark": p.high_watermark,
                    "records": p.records,
                    "segments": p.segments,
                    "bytes": p.bytes,
                })
            })
            .collect();
        return out.json(&json!({
            "topic": name,
            "records": stats.records(),
            "bytes": stats.bytes(),
            "partitions": partitions,
            "config": config_json(config),
        }));
    }
    out.line(&format!(
        "topic {name}: {} partitions, {} records, {} bytes",
        topic.partitions(),
        stats.records(),
        stats.bytes()
    ))?;
    let mut table = Table::new(&["PARTITION", "LOG-START", "HIGH-WATERMARK", "RECORDS", "SEGMENTS", "BYTES"]);
    for p in &stats.partitions {
        table.row(vec![
            p.partition.to_string(),
            p.log_start.to_string(),
            p.high_watermark.to_string(),
            p.records.to_string(),
            p.segments.to_string(),
            p.bytes.to_string(),
        ]);
    }
    out.write(&table.render())?;
    out.line("")?;
    let mut settings = Table::new(&["SETTING", "VALUE"]);
    for (setting, value) in config_text(config) {
        settings.row(vec![setting.to_string(), value]);
    }
    out.write(&settings.render())
}

fn fsync_text(policy: FsyncPolicy) -> String {
    match policy {
        FsyncPolicy::Never => "never".into(),
        FsyncPolicy::EveryN(n) => format!("every {n} records"),
        FsyncPolicy::Interval(d) => format!("every {} ms", d.as_millis()),
        FsyncPolicy::Always => "always".into(),
        other => format!("{other:?}"),
    }
}

fn fsync_json(policy: FsyncPolicy) -> Value {
    match policy {
        FsyncPolicy::Never => json!("never"),
        FsyncPolicy::EveryN(n) => json!({ "every_n": n }),
        FsyncPolicy::Interval(d) => json!({ "interval_ms": d.as_millis() as u64 }),
        FsyncPolicy::Always => json!("always"),
        other => json!(format!("{other:?}")),
    }
}

fn cleanup_text(policy: CleanupPolicy) -> String {
    match policy {
        CleanupPolicy::Delete => "delete".into(),
        CleanupPolicy::Compact => "compact".into(),
        other => format!("{other:?}"),
    }
}

fn backlog_json(limit: Backlog) -> Value {
    match limit {
        Backlog::Unbounded => json!("unbounded"),
        Backlog::Records(n) => json!({ "records": n }),
        Backlog::Bytes(n) => json!({ "bytes": n }),
        other => json!(format!("{other:?}")),
    }
}

fn backlog_text(limit: Backlog) -> String {
    match limit {
        Backlog::Unbounded => "unbounded".into(),
        Backlog::Records(n) => format!("{n} records"),
        Backlog::Bytes(n) => format!("{n} bytes"),
        other => format!("{other:?}"),
    }
}

/// The settings as `(name, value)` for people.
fn config_text(c: &TopicConfig) -> Vec<(&'static str, String)> {
    let none = || "none".to_string();
    vec![
        ("partitions", c.get_partitions().to_string()),
        ("segment_bytes", c.get_segment_bytes().to_string()),
        ("max_record_bytes", c.get_max_record_bytes().to_string()),
        ("index_interval_bytes", c.get_index_interval_bytes().to_string()),
        ("fsync", fsync_text(c.get_fsync())),
        ("retention_bytes", c.get_retention_bytes().map_or_else(none, |b| b.to_string())),
        ("retention", c.get_retention().map_or_else(none, |d| format!("{} ms", d.as_millis()))),
        ("cleanup", cleanup_text(c.get_cleanup())),
        ("tombstone_retention", format!("{} ms", c.get_tombstone_retention().as_millis())),
        ("max_backlog", backlog_text(c.get_max_backlog())),
    ]
}

/// The settings as JSON for scripts (durations in milliseconds).
fn config_json(c: &TopicConfig) -> Value {
    json!({
        "partitions": c.get_partitions(),
        "segment_bytes": c.get_segment_bytes(),
        "max_record_bytes": c.get_max_record_bytes(),
        "index_interval_bytes": c.get_index_interval_bytes(),
        "fsync": fsync_json(c.get_fsync()),
        "retention_bytes": c.get_retention_bytes(),
        "retention_ms": c.get_retention().map(|d| d.as_millis() as u64),
        "cleanup": cleanup_text(c.get_cleanup()),
        "tombstone_retention_ms": c.get_tombstone_retention().as_millis() as u64,
        "max_backlog": backlog_json(c.get_max_backlog()),
    })
}
