//! `millpond produce <topic>`: one record per line of standard input,
//! sent in batches, flushed to disk before the summary is printed.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use millpond::Record;
use serde_json::json;

use crate::cli::ProduceArgs;
use crate::exit::CliError;
use crate::open;
use crate::output::Out;

/// Lines sent in one `send_batch` (one frame per partition).
const BATCH: usize = 1000;
/// What produce does through the writer, for the `Locked` message.
const ACTION: &str = "produce";

/// Sends the lines of `input` to the topic `args` names in the broker at `dir`.
pub(crate) fn run(
    dir: &Path,
    args: &ProduceArgs,
    input: impl BufRead,
    json: bool,
    out: &mut Out,
) -> Result<(), CliError> {
    let broker = open::open_for_writing(dir).map_err(CliError::needing_writer(ACTION))?;
    let topic = broker.topic(&args.topic)?;
    if let Some(p) = args.partition {
        topic.high_watermark(p)?; // InvalidPartition before anything is read
    }
    let producer = topic.producer();
    let separator = args.key_separator.as_deref().map(str::as_bytes).filter(|s| !s.is_empty());
    let mut per_partition: BTreeMap<u32, u64> = BTreeMap::new();
    let mut lines = Lines { input, done: false };
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        while batch.len() < BATCH {
            match lines.next_line()? {
                Some(line) => batch.push(line),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let records = batch.iter().map(|line| {
            let record = match separator.and_then(|s| split_at(line, s)) {
                Some((key, value)) => Record::new(value).key(key),
                None => Record::new(&line[..]),
            };
            match args.partition {
                Some(p) => record.partition(p),
                None => record,
            }
        });
        let ids = producer.send_batch(records).inspect_err(|_| {
            // The batches before this one are stored: say how many.
            let sent: u64 = per_partition.values().sum();
            crate::note(&format!("{sent} records of earlier lines were produced before the failure"));
        })?;
        for id in ids {
            *per_partition.entry(id.partition).or_default() += 1;
        }
    }
    producer.flush()?;
    drop((producer, topic));
    broker.close()?;
    let total: u64 = per_partition.values().sum();
    if json {
        let partitions: BTreeMap<String, u64> = per_partition.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        out.json(&json!({ "topic": args.topic, "records": total, "partitions": partitions }))?;
    }
    let spread: Vec<String> = per_partition.iter().map(|(p, n)| format!("partition {p}: {n}")).collect();
    let spread = if spread.is_empty() { String::new() } else { format!(" ({})", spread.join(", ")) };
    let records = if total == 1 { "record" } else { "records" };
    crate::note(&format!("produced {total} {records} to {}{spread}", args.topic));
    Ok(())
}

/// The key and value of `line` split at the first `separator`, if it is there.
fn split_at<'l>(line: &'l [u8], separator: &[u8]) -> Option<(&'l [u8], &'l [u8])> {
    let at = line.windows(separator.len()).position(|w| w == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

/// Lines of bytes (any encoding), without their `\n` or `\r\n`.
struct Lines<R> {
    input: R,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, CliError> {
        if self.done {
            return Ok(None);
        }
        let mut line = Vec::new();
        let n = self
            .input
            .read_until(b'\n', &mut line)
            .map_err(|source| CliError::Io { what: "read standard input".into(), source })?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        Ok(Some(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_at_the_first_separator_only() {
        assert_eq!(split_at(b"k:v:w", b":"), Some((&b"k"[..], &b"v:w"[..])));
        assert_eq!(split_at(b"k=>v", b"=>"), Some((&b"k"[..], &b"v"[..])));
        assert_eq!(split_at(b"no key", b":"), None);
    }

    #[test]
    fn lines_lose_their_line_endings_and_keep_every_other_byte() {
        let mut lines = Lines { input: &b"a\r\nb\n\n\xffc"[..], done: false };
        let mut got = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            got.push(l);
        }
        assert_eq!(got, [b"a".to_vec(), b"b".to_vec(), Vec::new(), b"\xffc".to_vec()]);
    }
}
