//! `millpond topics`: every topic with its partitions, records and bytes;
//! damaged topics (which the broker did not open) after them.

use millpond::Broker;
use serde_json::json;

use crate::exit::CliError;
use crate::output::{Out, Table};

/// Lists the topics of `broker`.
pub(crate) fn run(broker: &Broker, json: bool, out: &mut Out) -> Result<(), CliError> {
    let mut rows = Vec::new();
    for name in broker.topics() {
        let topic = broker.topic(&name)?;
        let stats = topic.stats();
        rows.push((name, topic.partitions(), stats.records(), stats.bytes()));
    }
    let damaged = broker.damaged_topics();
    if json {
        let topics: Vec<_> = rows
            .iter()
            .map(|(name, partitions, records, bytes)| {
                json!({ "topic": name, "partitions": partitions, "records": records, "bytes": bytes })
            })
            .collect();
        let damaged: Vec<_> =
            damaged.iter().map(|d| json!({ "topic": d.name, "path": d.path, "error": d.error.to_string() })).collect();
        return out.json(&json!({ "topics": topics, "damaged": damaged }));
    }
    if rows.is_empty() && damaged.is_empty() {
        return out.line("no topics");
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "RECORDS", "BYTES"]);
    for (name, partitions, records, bytes) in rows {
        table.row(vec![name, partitions.to_string(), records.to_string(), bytes.to_string()]);
    }
    if !table.is_empty() {
        out.write(&table.render())?;
    }
    for d in damaged {
        out.line(&format!("damaged topic {} (not opened): {}", d.name, d.error))?;
    }
    Ok(())
}
