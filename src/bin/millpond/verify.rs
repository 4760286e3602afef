//! `millpond verify`: checksums every frame of every segment of every
//! topic, and lists every damaged place (exit code 5 if there is one).

use millpond::{Broker, Error};
use serde_json::{Value, json};

use crate::exit::CliError;
use crate::output::{Out, Table, count};
use crate::progress::Progress;

/// One topic's figures.
struct Checked {
    topic: String,
    partitions: u32,
    segments: u64,
    frames: u64,
    records: u64,
    damage: Vec<Error>,
}

/// Verifies every topic of `broker`.
pub(crate) fn run(broker: &Broker, json: bool, out: &mut Out) -> Result<(), CliError> {
    let names = broker.topics();
    let mut progress = Progress::new("verifying");
    let mut checked = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        progress.update(i as u64, names.len() as u64, "topics");
        let topic = broker.topic(name)?;
        let report = topic.verify()?;
        checked.push(Checked {
            topic: name.clone(),
            partitions: topic.partitions(),
            segments: report.segments,
            frames: report.frames,
            records: report.records,
            damage: report.damage,
        });
    }
    progress.finish();
    let damaged_topics = broker.damaged_topics();
    let places = checked.iter().map(|c| c.damage.len()).sum::<usize>() + damaged_topics.len();
    if json {
        let topics: Vec<_> = checked
            .iter()
            .map(|c| {
                json!({
                    "topic": c.topic,
                    "partitions": c.partitions,
                    "segments": c.segments,
                    "frames": c.frames,
                    "records": c.records,
                    "damage": c.damage.iter().map(damage_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let damaged: Vec<_> = damaged_topics
            .iter()
            .map(|d| json!({ "topic": d.name, "path": d.path, "error": d.error.to_string() }))
            .collect();
        out.json(&json!({
            "clean": places == 0,
            "topics": topics,
            "damaged_topics": damaged,
        }))?;
    } else {
        let mut table = Table::new(&["TOPIC", "PARTITIONS", "SEGMENTS", "FRAMES", "RECORDS", "DAMAGE"]);
        for c in &checked {
            table.row(vec![
                c.topic.clone(),
                c.partitions.to_string(),
                c.segments.to_string(),
                c.frames.to_string(),
                c.records.to_string(),
                c.damage.len().to_string(),
            ]);
        }
        if !table.is_empty() {
            out.write(&table.render())?;
        }
        for e in checked.iter().flat_map(|c| &c.damage) {
            out.line(&format!("damage: {e}"))?;
        }
        for d in &damaged_topics {
            out.line(&format!("damaged topic {} (not opened): {}", d.name, d.error))?;
        }
        let (segments, records): (u64, u64) = checked.iter().fold((0, 0), |(s, r), c| (s + c.segments, r + c.records));
        let verdict =
            if places == 0 { "clean".to_string() } else { count(places as u64, "damaged place", "damaged places") };
        let (topics, segments, records) = (
            count(checked.len() as u64, "topic", "topics"),
            count(segments, "segment", "segments"),
            count(records, "record", "records"),
        );
        out.line(&format!("{topics}, {segments}, {records}: {verdict}"))?;
    }
    out.flush()?;
    if places > 0 {
        let found = count(places as u64, "damaged place", "damaged places");
        return Err(CliError::Damage(format!("verify found {found} in {}", broker.dir().display())));
    }
    Ok(())
}

/// One damaged place for scripts: where it is, and what is wrong.
fn damage_json(e: &Error) -> Value {
    match e {
        Error::Corrupt { topic, partition, path, position, reason } => json!({
            "topic": topic,
            "partition": partition,
            "path": path,
            "position": position,
            "reason": reason,
            "error": e.to_string(),
        }),
        other => json!({ "error": other.to_string() }),
    }
}
