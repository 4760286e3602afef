//! `millpond consume <topic>`: prints records, every one once and in order
//! per partition, from a position to the high watermark seen at the start,
//! or (`--follow`) on as new ones arrive.

use std::collections::BTreeMap;
use std::time::Duration;

use millpond::{Broker, Error, Message, StartFrom};
use serde_json::json;

use crate::cli::{ConsumeArgs, Format};
use crate::exit::CliError;
use crate::json_bytes::{bytes_value, optional_bytes_value};
use crate::output::Out;
use crate::position::Position;
use crate::signals;

/// How long a following consumer waits before it looks at the signal flag again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Prints the records `args` asks for; `json` is the global `--json`.
pub(crate) fn run(broker: &Broker, args: &ConsumeArgs, json: bool, out: &mut Out) -> Result<(), CliError> {
    let format = args.format.unwrap_or(if json { Format::Json } else { Format::Text });
    let topic = broker.topic(&args.topic)?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) => vec![p],
        None => (0..topic.partitions()).collect(),
    };
    // Where a run without --follow stops: the high watermarks now, before
    // the consumer starts, so `--from latest` prints nothing.
    let mut stop_at = BTreeMap::new();
    for &p in &partitions {
        stop_at.insert(p, topic.high_watermark(p)?);
    }
    let start = match args.from {
        Position::Earliest | Position::Offset(_) => StartFrom::Earliest,
        Position::Latest => StartFrom::Latest,
        Position::Timestamp(ms) => StartFrom::Timestamp(ms),
    };
    let mut consumer = topic.consumer_of(&partitions, start)?;
    if let Position::Offset(offset) = args.from {
        // Each partition from `offset`, kept within its log (as Kafka's
        // offset reset does): a partition holding fewer records gives none.
        for &p in &partitions {
            consumer.seek(p, offset.clamp(topic.log_start(p)?, topic.high_watermark(p)?))?;
        }
    }
    if args.follow {
        signals::stop_on_signals();
    }
    let mut printed = 0u64;
    while args.max.is_none_or(|max| printed < max) {
        if args.follow {
            if signals::stopped() {
                break;
            }
        } else if stop_at.iter().all(|(&p, &end)| consumer.position(p).is_ok_and(|at| at >= end)) {
            break;
        }
        let received = if args.follow { consumer.recv_timeout(POLL) } else { consumer.try_recv() };
        match received {
            Ok(Some(m)) => {
                if !args.follow && m.offset() >= stop_at.get(&m.partition()).copied().unwrap_or(0) {
                    continue; // appended after the start: not this run's
                }
                print(&m, format, out)?;
                printed += 1;
                if args.follow {
                    out.flush()?;
                }
            }
            Ok(None) if args.follow => {}
            Ok(None) => break,
            Err(e @ Error::Lagged { .. }) => {
                // Retention deleted records before they were printed: say
                // which, and go on from where the log goes on.
                crate::warn(&e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()
}

/// Prints one record in `format`.
fn print(m: &Message, format: Format, out: &mut Out) -> Result<(), CliError> {
    match format {
        Format::Raw => {
            out.bytes(m.value())?;
            out.bytes(b"\n")
        }
        Format::Text => {
            let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
            let value = String::from_utf8_lossy(m.value());
            out.line(&format!("{}\t{}\t{}\t{key}\t{value}", m.partition(), m.offset(), m.timestamp()))
        }
        Format::Json => {
            let headers: Vec<_> =
                m.headers().map(|(name, value)| json!({ "name": name, "value": bytes_value(value) })).collect();
            let value = if m.is_tombstone() { serde_json::Value::Null } else { bytes_value(m.value()) };
            out.json(&json!({
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": m.timestamp(),
                "key": optional_bytes_value(m.key()),
                "value": value,
                "headers": headers,
            }))
        }
    }
}
