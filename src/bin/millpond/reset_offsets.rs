//! `millpond group reset-offsets <group> --topic T --to POSITION`: moves a
//! group's committed offsets, durably, while no process has the broker open.

use std::path::Path;

use millpond::{Error, ResetTo};
use serde_json::json;

use crate::cli::ResetArgs;
use crate::exit::CliError;
use crate::open;
use crate::output::{Out, Table};
use crate::position::Position;

/// What reset-offsets does through the writer, for the `Locked` message.
const ACTION: &str = "reset the group's offsets";

/// Resets the offsets `args` names in the broker at `dir`.
pub(crate) fn run(dir: &Path, args: &ResetArgs, json: bool, out: &mut Out) -> Result<(), CliError> {
    let broker = open::open_for_writing(dir).map_err(CliError::needing_writer(ACTION))?;
    let topic = broker.topic(&args.topic)?;
    let group = topic.group(&args.group)?;
    let to = match args.to {
        Position::Earliest => ResetTo::Earliest,
        Position::Latest => ResetTo::Latest,
        Position::Offset(o) => ResetTo::Offset(o),
        Position::Timestamp(ms) => ResetTo::Timestamp(ms),
    };
    let before = group.committed()?;
    let after = if args.partition.is_empty() {
        group.reset_offsets(to)
    } else {
        group.reset_partition_offsets(&args.partition, to)
    }
    .map_err(|e| match e {
        // Only a member in this process could hold the group; say so anyway.
        Error::GroupActive { .. } => CliError::Millpond { error: e, writer: Some(ACTION) },
        e => e.into(),
    })?;
    drop((group, topic));
    broker.close()?;
    if json {
        let partitions: Vec<_> = after
            .iter()
            .map(|(p, offset)| json!({ "partition": p, "previous": before.get(p), "committed": offset }))
            .collect();
        return out.json(&json!({ "group": args.group, "topic": args.topic, "partitions": partitions }));
    }
    let mut table = Table::new(&["PARTITION", "PREVIOUS", "COMMITTED"]);
    for (p, offset) in &after {
        let previous = before.get(p).map_or_else(|| "-".to_string(), u64::to_string);
        table.row(vec![p.to_string(), previous, offset.to_string()]);
    }
    out.line(&format!("reset group {} on topic {}:", args.group, args.topic))?;
    out.write(&table.render())
}
