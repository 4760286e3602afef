//! `millpond dump <segment file>`: every frame of one segment (position,
//! length, offsets, record count, max timestamp, checksum), optionally its
//! records, and where and why the frames end, like Kafka's kafka-dump-log.
//! Needs no broker: it reads the file alone, takes no lock, writes nothing.

use millpond::{DumpEntry, DumpedFrame, DumpedRecord, SegmentDump, SegmentEnd, SegmentInfo};
use serde_json::{Value, json};

use crate::cli::DumpArgs;
use crate::exit::CliError;
use crate::json_bytes::{bytes_value, optional_bytes_value};
use crate::output::{Out, count};
use crate::progress::Progress;
use crate::time::format_rfc3339;

/// Characters of a key or value shown by `--records`.
const PREVIEW: usize = 32;

/// Totals over the frames.
#[derive(Default)]
struct Totals {
    frames: u64,
    records: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
}

/// Dumps the segment file `args` names.
pub(crate) fn run(args: &DumpArgs, json: bool, out: &mut Out) -> Result<(), CliError> {
    let dump = SegmentDump::open(&args.file)?;
    let info = dump.header().copied();
    let misplaced = info.map(|i| misplacement(&args.file, &i)).unwrap_or_default();
    if json {
        let header = info.map_or(Value::Null, |i| {
            json!({
                "topic_id": i.topic_id_hex(),
                "partition": i.partition,
                "base_offset": i.base_offset,
                "epoch": i.epoch,
                "base_timestamp": i.base_timestamp,
            })
        });
        let head = json!({ "file": args.file, "file_len": dump.file_len(), "header": header, "misplaced": misplaced });
        // One document, streamed: the header's fields, then the frames one
        // by one, then the end (a segment may hold millions of frames).
        let head = head.to_string();
        out.write(&head[..head.len() - 1])?;
        out.write(",\"frames\":[")?;
    } else {
        out.line(&format!("segment {} ({} bytes)", args.file.display(), dump.file_len()))?;
        out.line(&match info {
            Some(i) => format!(
                "topic id {}  partition {}  base offset {}  epoch {}  base timestamp {}",
                i.topic_id_hex(),
                i.partition,
                i.base_offset,
                i.epoch,
                format_rfc3339(i.base_timestamp)
            ),
            None => "no segment header yet: its bytes are zero (a segment just created, or never written)".into(),
        })?;
        for m in &misplaced {
            out.line(&format!("misplaced: {m}"))?;
        }
        out.line(&frame_row("POSITION", "LENGTH", "BASE-OFFSET", "LAST-OFFSET", "RECORDS", "MAX-TIMESTAMP", "CRC"))?;
    }
    let mut totals = Totals::default();
    let mut progress = Progress::new(format!("dumping {}", args.file.display()));
    let mut frames = dump.frames();
    let (position, end) = loop {
        progress.update(frames.position(), dump.file_len(), "bytes");
        let Some(entry) = frames.next() else { unreachable!("the frames always end with an End entry") };
        match entry? {
            DumpEntry::Frame(f) => {
                if json {
                    let mut v = frame_json(&f);
                    if args.records {
                        v["records"] = f.records().iter().map(record_json).collect();
                    }
                    out.write(if totals.frames == 0 { "" } else { "," })?;
                    out.write(&v.to_string())?;
                } else {
                    print_frame(&f, args.records, out)?;
                }
                totals.frames += 1;
                totals.records += u64::from(f.record_count);
                totals.first_offset.get_or_insert(f.base_offset);
                totals.last_offset = Some(f.last_offset);
            }
            DumpEntry::End { position, end } => break (position, end),
            _ => {} // no other kind in this release
        }
    };
    progress.finish();
    if json {
        let (kind, reason) = end_kind(&end);
        let tail = json!({
            "end": { "position": position, "kind": kind, "reason": reason },
            "frame_count": totals.frames,
            "record_count": totals.records,
            "damage": end.is_damage() || !misplaced.is_empty(),
        })
        .to_string();
        out.write("],")?;
        out.line(&tail[1..])?;
    } else {
        out.line(&format!("end at byte {position}: {end}"))?;
        let offsets = match (totals.first_offset, totals.last_offset) {
            (Some(a), Some(b)) => format!(", offsets {a}..={b}"),
            _ => String::new(),
        };
        let (frames, records) = (count(totals.frames, "frame", "frames"), count(totals.records, "record", "records"));
        out.line(&format!("{frames}, {records}{offsets}"))?;
    }
    out.flush()?;
    let file = args.file.display();
    if let SegmentEnd::Corrupt { reason } = &end {
        return Err(CliError::Damage(format!("damage in {file} at byte {position}: {reason}")));
    }
    if let Some(m) = misplaced.first() {
        return Err(CliError::Damage(format!("{file} is not where its header says it belongs: {m}")));
    }
    Ok(())
}

/// Where the file's name or directory contradicts its header (a broker
/// refuses such a segment): the base offset in `<base>.log`, the
/// partition of its directory.
fn misplacement(path: &std::path::Path, info: &SegmentInfo) -> Vec<String> {
    let mut found = Vec::new();
    let stem = path.file_stem().and_then(|s| s.to_str()).filter(|s| s.len() == 20);
    if let Some(base) = stem.and_then(|s| s.parse::<u64>().ok())
        && base != info.base_offset
    {
        found.push(format!("the file name says base offset {base}, the header {}", info.base_offset));
    }
    let dir = path.parent().and_then(|d| d.file_name()).and_then(|d| d.to_str());
    if let Some(partition) = dir.and_then(|d| d.parse::<u32>().ok())
        && partition != info.partition
    {
        found.push(format!("the directory says partition {partition}, the header {}", info.partition));
    }
    found
}

fn frame_row(pos: &str, len: &str, base: &str, last: &str, records: &str, ts: &str, crc: &str) -> String {
    format!("{pos:>10}  {len:>8}  {base:>11}  {last:>11}  {records:>7}  {ts:<24}  {crc}")
}

fn print_frame(f: &DumpedFrame, records: bool, out: &mut Out) -> Result<(), CliError> {
    out.line(&frame_row(
        &f.position.to_string(),
        &f.len.to_string(),
        &f.base_offset.to_string(),
        &f.last_offset.to_string(),
        &f.record_count.to_string(),
        &format_rfc3339(f.max_timestamp),
        &match (f.transaction, f.commit_marker) {
            (Some(t), true) => format!("ok  commit marker of transaction {t:016x}"),
            (Some(t), false) => format!("ok  transaction {t:016x}"),
            _ => "ok".to_string(),
        },
    ))?;
    if records {
        for r in f.records() {
            out.line(&format!(
                "            record offset {}  timestamp {}  key {}  value {}  headers {}",
                r.offset,
                format_rfc3339(r.timestamp),
                preview(r.key.as_deref(), "-"),
                preview(r.value.as_deref(), "tombstone"),
                r.headers.len()
            ))?;
        }
    }
    Ok(())
}

/// `N bytes "start…"` (escaped, lossy UTF-8), or `none` for no bytes.
fn preview(bytes: Option<&[u8]>, none: &str) -> String {
    let Some(b) = bytes else { return none.to_string() };
    let text = String::from_utf8_lossy(b);
    let mut shown: String = text.chars().take(PREVIEW).flat_map(char::escape_debug).collect();
    if text.chars().count() > PREVIEW {
        shown.push('…');
    }
    format!("{} bytes \"{shown}\"", b.len())
}

fn frame_json(f: &DumpedFrame) -> Value {
    json!({
        "position": f.position,
        "len": f.len,
        "base_offset": f.base_offset,
        "last_offset": f.last_offset,
        "record_count": f.record_count,
        "base_timestamp": f.base_timestamp,
        "max_timestamp": f.max_timestamp,
        "transaction": f.transaction.map(|t| format!("{t:016x}")),
        "commit_marker": f.commit_marker,
        "crc": "ok",
    })
}

fn record_json(r: &DumpedRecord) -> Value {
    let headers: Vec<_> =
        r.headers.iter().map(|(name, value)| json!({ "name": name, "value": bytes_value(value) })).collect();
    json!({
        "offset": r.offset,
        "timestamp": r.timestamp,
        "key": optional_bytes_value(r.key.as_deref()),
        "value": optional_bytes_value(r.value.as_deref()),
        "headers": headers,
    })
}

/// The end's kind and reason for scripts.
fn end_kind(end: &SegmentEnd) -> (&'static str, Option<&str>) {
    match end {
        SegmentEnd::EndOfFile => ("end_of_file", None),
        SegmentEnd::Unwritten => ("unwritten", None),
        SegmentEnd::Incomplete { reason } => ("incomplete", Some(reason)),
        SegmentEnd::Corrupt { reason } => ("corrupt", Some(reason)),
        _ => ("other", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_escape_and_cut_long_values() {
        assert_eq!(preview(None, "-"), "-");
        assert_eq!(preview(Some(b"a\tb"), "-"), "3 bytes \"a\\tb\"");
        let long = vec![b'x'; 40];
        assert_eq!(preview(Some(&long), "-"), format!("40 bytes \"{}…\"", "x".repeat(32)));
    }
}
