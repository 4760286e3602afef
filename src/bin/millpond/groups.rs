//! `millpond groups`: every consumer group of every topic (or of one), with
//! each partition's committed offset, high watermark and lag.

use millpond::{Broker, GroupDescription};
use serde_json::json;

use crate::cli::GroupsArgs;
use crate::exit::CliError;
use crate::output::{Out, Table};

/// Lists the groups `args` selects.
pub(crate) fn run(broker: &Broker, args: &GroupsArgs, json: bool, out: &mut Out) -> Result<(), CliError> {
    let topics = match &args.topic {
        Some(t) => vec![broker.topic(t)?],
        None => broker.topics().iter().map(|t| broker.topic(t)).collect::<millpond::Result<_>>()?,
    };
    let mut groups: Vec<GroupDescription> = Vec::new();
    for topic in &topics {
        for name in topic.groups()? {
            if args.group.as_ref().is_none_or(|g| *g == name) {
                groups.push(topic.describe_group(&name)?);
            }
        }
    }
    if let (Some(group), true) = (&args.group, groups.is_empty()) {
        let on = args.topic.as_ref().map_or_else(|| "any topic".to_string(), |t| format!("topic {t:?}"));
        return Err(CliError::NotFound(format!("consumer group {group:?} has no committed offsets on {on}")));
    }
    if json {
        let groups: Vec<_> = groups
            .iter()
            .map(|g| {
                let partitions: Vec<_> = g
                    .partitions
                    .iter()
                    .map(|p| {
                        json!({
                            "partition": p.partition,
                            "committed": p.committed,
                            "high_watermark": p.high_watermark,
                            "lag": p.lag,
                        })
                    })
                    .collect();
                json!({
                    "group": g.group,
                    "topic": g.topic,
                    "members": g.members.len(),
                    "lag": g.partitions.iter().map(|p| p.lag).sum::<u64>(),
                    "partitions": partitions,
                })
            })
            .collect();
        return out.json(&json!({ "groups": groups }));
    }
    if groups.is_empty() {
        return out.line("no consumer groups");
    }
    let mut table = Table::new(&["GROUP", "TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"]);
    for g in &groups {
        for p in &g.partitions {
            table.row(vec![
                g.group.clone(),
                g.topic.clone(),
                p.partition.to_string(),
                p.committed.map_or_else(|| "-".to_string(), |c| c.to_string()),
                p.high_watermark.to_string(),
                p.lag.to_string(),
            ]);
        }
    }
    out.write(&table.render())
}
