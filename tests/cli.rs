//! The `millpond` command-line tool, run as the real binary on broker
//! directories this test builds: every subcommand's stdout, stderr and
//! exit code.
//!
//! The reading commands open the directory with `Broker::open_existing`
//! until the library has a read-only open, so every test closes its own
//! broker before it runs the tool (except where it holds the lock on
//! purpose); the one test of a live writer is ignored until then.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use millpond::{Broker, Record, ResetTo, TopicConfig};
use serde_json::{Value, json};
use support::dir::TempDir;
use support::{frames, layout};

/// 2026-12-01T10:00:00Z.
const T0: i64 = 1_796_119_200_000;

/// What one run of the tool did.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn lines(&self) -> Vec<String> {
        self.out().lines().map(str::to_string).collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.out()))
    }

    /// Fails unless the run exited with `code`, showing what it printed.
    fn expect(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.out(), self.stderr);
        self
    }
}

/// The tool, with neither `MILLPOND_DIR` nor stdin from the environment.
fn tool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_millpond"));
    cmd.env_remove("MILLPOND_DIR").stdin(Stdio::null());
    cmd
}

/// Runs the tool with `args` (and `stdin`, if any) to its end.
fn run(mut cmd: Command, args: &[&str], stdin: Option<&[u8]>) -> Run {
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("run the millpond binary");
    if let Some(input) = stdin {
        match child.stdin.take().expect("piped stdin").write_all(input) {
            // The tool may end before it reads stdin (a locked directory).
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.expect("write stdin"),
        }
    }
    let out = child.wait_with_output().expect("wait for millpond");
    Run {
        code: out.status.code().expect("millpond exited, not killed"),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `millpond --dir <dir> <args>`.
fn cli(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir);
    run(cmd, args, None)
}

/// A shop: topic `orders` (2 partitions) holding
/// partition 0: `order-1` (key alice, header source=web), `order-3`, a
/// non-UTF-8 value; partition 1: `order-2` (key bob), a tombstone of bob;
/// and groups `billing` (committed 2 and 1) and `audit` (3 on partition 0).
fn shop(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    let broker = Broker::open(dir.path()).unwrap();
    let orders = broker.create_topic("orders", TopicConfig::default().partitions(2)).unwrap();
    let p = orders.producer();
    p.send(Record::new("order-1").key("alice").header("source", "web").partition(0).timestamp(T0)).unwrap();
    p.send(Record::new("order-2").key("bob").partition(1).timestamp(T0 + 1000)).unwrap();
    p.send(Record::new("order-3").partition(0).timestamp(T0 + 2000)).unwrap();
    p.send(Record::new(vec![0xFF, 0x00, 0x01]).partition(0).timestamp(T0 + 3000)).unwrap();
    p.send(Record::tombstone("bob").partition(1).timestamp(T0 + 4000)).unwrap();
    let billing = orders.group("billing").unwrap();
    billing.reset_partition_offsets(&[0], ResetTo::Offset(2)).unwrap();
    billing.reset_partition_offsets(&[1], ResetTo::Offset(1)).unwrap();
    orders.group("audit").unwrap().reset_partition_offsets(&[0], ResetTo::Offset(3)).unwrap();
    drop((p, billing, orders));
    broker.close().unwrap();
    dir
}

/// A topic `events` of small segments: 60 records of 100 bytes, one frame
/// each, over a few segment files.
fn events(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    let broker = Broker::open(dir.path()).unwrap();
    let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024);
    let topic = broker.create_topic("events", cfg).unwrap();
    let p = topic.producer();
    for i in 0..60 {
        p.send(Record::new(format!("{i:0>100}")).timestamp(T0 + i)).unwrap();
    }
    drop((p, topic));
    broker.close().unwrap();
    assert!(layout::segment_files(dir.path(), "events", 0).len() >= 2, "several segments");
    dir
}

/// The committed offsets of `group` on `topic`, read with the library.
fn committed(dir: &Path, group: &str, topic: &str) -> Vec<(u32, u64)> {
    let broker = Broker::open_existing(dir).unwrap();
    let c = broker.topic(topic).unwrap().group(group).unwrap().committed().unwrap();
    c.into_iter().collect()
}

/// Flips one byte inside the fourth frame of `segment`; returns the
/// frame's position.
fn damage_fourth_frame(segment: &Path) -> usize {
    let mut bytes = std::fs::read(segment).unwrap();
    let (start, len) = frames::frame_bounds(&bytes)[3];
    bytes[start + len - 2] ^= 0x01;
    std::fs::write(segment, bytes).unwrap();
    start
}

#[test]
fn help_documents_every_exit_code() {
    let r = run(tool(), &["--help"], None).expect(0);
    let help = r.out();
    for line in [
        "Exit codes:",
        "0  success",
        "1  the operation failed",
        "2  usage error",
        "3  not found",
        "4  another process holds the broker's writer lock",
        "5  damaged data found",
    ] {
        assert!(help.contains(line), "{line:?} missing from:\n{help}");
    }
}

#[test]
fn topics_table_lists_partitions_records_and_bytes() {
    let dir = shop("cli-topics");
    let bytes = Broker::open_existing(dir.path()).unwrap().topic("orders").unwrap().stats().bytes();
    let r = cli(dir.path(), &["topics"]).expect(0);
    assert_eq!(
        r.lines(),
        ["TOPIC   PARTITIONS  RECORDS  BYTES".to_string(), format!("orders           2        5  {bytes:>5}")]
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn topics_json_is_one_document_for_scripts() {
    let dir = shop("cli-topics-json");
    let bytes = Broker::open_existing(dir.path()).unwrap().topic("orders").unwrap().stats().bytes();
    let r = cli(dir.path(), &["--json", "topics"]).expect(0);
    assert_eq!(
        r.json(),
        json!({ "topics": [{ "topic": "orders", "partitions": 2, "records": 5, "bytes": bytes }], "damaged": [] })
    );
    let empty = TempDir::new("cli-topics-empty");
    drop(Broker::open(empty.path()).unwrap());
    assert_eq!(cli(empty.path(), &["topics"]).expect(0).out(), "no topics\n");
}

#[test]
fn describe_shows_each_partitions_offsets_segments_bytes_and_the_config() {
    let dir = shop("cli-describe");
    let stats = Broker::open_existing(dir.path()).unwrap().topic("orders").unwrap().stats();
    let (b0, b1) = (stats.partitions[0].bytes, stats.partitions[1].bytes);
    let r = cli(dir.path(), &["describe", "orders"]).expect(0);
    let lines = r.lines();
    assert_eq!(lines[0], format!("topic orders: 2 partitions, 5 records, {} bytes", b0 + b1));
    assert_eq!(lines[1], "PARTITION  LOG-START  HIGH-WATERMARK  RECORDS  SEGMENTS  BYTES");
    let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(cells(&lines[2]), ["0", "0", "3", "3", "1", &b0.to_string()]);
    assert_eq!(cells(&lines[3]), ["1", "0", "2", "2", "1", &b1.to_string()]);
    assert_eq!(lines[4], "");
    assert_eq!(cells(&lines[5]), ["SETTING", "VALUE"]);
    for setting in [["partitions", "2"], ["segment_bytes", "67108864"], ["fsync", "never"], ["cleanup", "delete"]] {
        assert!(lines.iter().any(|l| cells(l) == setting), "{setting:?} missing:\n{}", r.out());
    }
    let j = cli(dir.path(), &["--json", "describe", "orders"]).expect(0).json();
    assert_eq!(
        j["partitions"][0],
        json!({ "partition": 0, "log_start": 0, "high_watermark": 3, "records": 3, "segments": 1, "bytes": b0 })
    );
    assert_eq!(j["config"]["partitions"], 2);
    assert_eq!(j["config"]["retention_ms"], Value::Null);
    assert_eq!(j["config"]["tombstone_retention_ms"], 86_400_000);
    let r = cli(dir.path(), &["describe", "missing"]).expect(3);
    assert_eq!(r.stderr, "millpond: error: unknown topic \"missing\"\n");
}

#[test]
fn consume_text_prints_every_record_once_in_order_per_partition() {
    let dir = shop("cli-consume-text");
    let r = cli(dir.path(), &["consume", "orders"]).expect(0);
    let lines = r.lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let of = |p: &str| lines.iter().filter(|l| l.starts_with(p)).cloned().collect::<Vec<_>>();
    assert_eq!(
        of("0\t"),
        [
            format!("0\t0\t{T0}\talice\torder-1"),
            format!("0\t1\t{}\t\torder-3", T0 + 2000),
            format!("0\t2\t{}\t\t\u{FFFD}\u{0}\u{1}", T0 + 3000),
        ]
    );
    assert_eq!(of("1\t"), [format!("1\t0\t{}\tbob\torder-2", T0 + 1000), format!("1\t1\t{}\tbob\t", T0 + 4000)]);
    assert_eq!(r.stderr, "");
}

#[test]
fn consume_raw_prints_the_exact_value_bytes() {
    let dir = shop("cli-consume-raw");
    let r = cli(dir.path(), &["consume", "orders", "--partition", "0", "--format", "raw"]).expect(0);
    assert_eq!(r.stdout, b"order-1\norder-3\n\xFF\x00\x01\n");
}

#[test]
fn consume_json_gives_text_as_strings_other_bytes_as_base64_and_tombstones_as_null() {
    let dir = shop("cli-consume-json");
    let r = cli(dir.path(), &["consume", "orders", "--partition", "0", "--format", "json"]).expect(0);
    let objects: Vec<Value> = r.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        objects,
        [
            json!({ "partition": 0, "offset": 0, "timestamp": T0, "key": "alice", "value": "order-1",
                    "headers": [{ "name": "source", "value": "web" }] }),
            json!({ "partition": 0, "offset": 1, "timestamp": T0 + 2000, "key": null, "value": "order-3", "headers": [] }),
            json!({ "partition": 0, "offset": 2, "timestamp": T0 + 3000, "key": null, "value": { "base64": "/wAB" },
                    "headers": [] }),
        ]
    );
    // `--json` alone means `--format json`.
    let r = cli(dir.path(), &["--json", "consume", "orders", "--partition", "1"]).expect(0);
    let last: Value = serde_json::from_str(&r.lines()[1]).unwrap();
    assert_eq!((last["key"].clone(), last["value"].clone()), (json!("bob"), Value::Null));
}

#[test]
fn consume_from_an_offset_a_time_or_latest_starts_there_in_every_partition() {
    let dir = shop("cli-consume-from");
    let offsets = |args: &[&str]| -> Vec<(u32, u64)> {
        let mut all = vec!["consume", "orders", "--format", "json"];
        all.extend_from_slice(args);
        let r = cli(dir.path(), &all).expect(0);
        let mut got: Vec<(u32, u64)> = r
            .lines()
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["partition"].as_u64().unwrap() as u32, v["offset"].as_u64().unwrap()))
            .collect();
        got.sort();
        got
    };
    assert_eq!(offsets(&["--from", "earliest"]), [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
    assert_eq!(offsets(&["--from", "1"]), [(0, 1), (0, 2), (1, 1)]);
    assert_eq!(offsets(&["--from", "2026-12-01T10:00:02Z"]), [(0, 1), (0, 2), (1, 1)]);
    assert_eq!(offsets(&["--from", "2026-12-01T11:00:01.5+01:00"]), [(0, 1), (0, 2), (1, 1)]);
    assert_eq!(offsets(&["--from", "latest"]), []);
    assert_eq!(offsets(&["--from", "99"]), [], "an offset past the end starts at the end");
    let r = cli(dir.path(), &["consume", "orders", "--from", "soon"]).expect(2);
    assert!(r.stderr.contains("not a position"), "{}", r.stderr);
}

#[test]
fn consume_from_a_time_before_now_reads_only_newer_records() {
    let dir = TempDir::new("cli-consume-ago");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("recent", TopicConfig::default()).unwrap();
    let now = millpond::now_millis();
    topic.producer().send(Record::new("two hours ago").timestamp(now - 7_200_000)).unwrap();
    topic.producer().send(Record::new("just now").timestamp(now)).unwrap();
    drop(topic);
    broker.close().unwrap();
    let r = cli(dir.path(), &["consume", "recent", "--from", "-1h", "--format", "raw"]).expect(0);
    assert_eq!(r.out(), "just now\n");
    let r = cli(dir.path(), &["consume", "recent", "--from", "-3h", "--format", "raw"]).expect(0);
    assert_eq!(r.out(), "two hours ago\njust now\n");
}

#[test]
fn consume_partition_and_max_restrict_what_is_printed() {
    let dir = shop("cli-consume-max");
    let r = cli(dir.path(), &["consume", "orders", "--partition", "0", "--max", "2", "--format", "raw"]).expect(0);
    assert_eq!(r.out(), "order-1\norder-3\n");
    let r = cli(dir.path(), &["consume", "orders", "--partition", "1", "--format", "raw"]).expect(0);
    assert_eq!(r.out(), "order-2\n\n", "a tombstone's value is empty");
    let r = cli(dir.path(), &["consume", "orders", "--partition", "5"]).expect(3);
    assert_eq!(r.stderr, "millpond: error: topic \"orders\" has 2 partitions; partition 5 does not exist\n");
    let r = cli(dir.path(), &["consume", "nothing"]).expect(3);
    assert_eq!(r.stderr, "millpond: error: unknown topic \"nothing\"\n");
}

#[test]
fn produce_sends_stdin_lines_with_keys_and_consume_reads_them_back() {
    let dir = shop("cli-produce");
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path());
    let input = b"carol:order-4\ndave:order:5\nno separator\r\n\xFEbytes";
    let r = run(cmd, &["produce", "orders", "--key-separator", ":", "--partition", "1"], Some(input)).expect(0);
    assert_eq!(r.stdout, b"");
    assert_eq!(r.stderr, "millpond: produced 4 records to orders (partition 1: 4)\n");
    let r = cli(dir.path(), &["consume", "orders", "--partition", "1", "--from", "2", "--format", "json"]).expect(0);
    let got: Vec<(Value, Value)> = r
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["key"].clone(), v["value"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("carol"), json!("order-4")),
            (json!("dave"), json!("order:5")),
            (Value::Null, json!("no separator")),
            (Value::Null, json!({ "base64": "/mJ5dGVz" })),
        ]
    );
    // A line the topic cannot take: what came before it is kept and counted.
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path());
    let mut input = b"fits\n".repeat(1500);
    input.extend(vec![b'x'; 2 << 20]);
    let r = run(cmd, &["produce", "orders", "--partition", "0"], Some(&input)).expect(1);
    let said: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(said[0], "millpond: 1000 records of earlier lines were produced before the failure");
    assert!(
        said[1].starts_with("millpond: error: record of ") && said[1].ends_with("exceeds max_record_bytes (1048576)")
    );
    assert_eq!(said.len(), 2, "{}", r.stderr);
    // --json: the summary for scripts on stdout.
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path());
    let r = run(cmd, &["--json", "produce", "orders"], Some(b"x\ny\n")).expect(0);
    let j = r.json();
    assert_eq!((j["topic"].clone(), j["records"].clone()), (json!("orders"), json!(2)));
    assert_eq!(j["partitions"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum::<u64>(), 2);
}

#[test]
fn produce_into_a_directory_another_process_holds_exits_4_and_says_so() {
    let dir = shop("cli-produce-locked");
    let writer = Broker::open(dir.path()).unwrap();
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path());
    let r = run(cmd, &["produce", "orders"], Some(b"lost\n")).expect(4);
    let lock = dir.join("millpond.lock");
    assert_eq!(
        r.stderr,
        format!(
            "millpond: error: another process holds the broker's writer lock ({}); stop it or produce through it\n",
            lock.display()
        )
    );
    assert_eq!(writer.topic("orders").unwrap().stats().records(), 5, "nothing was sent");
}

#[test]
fn a_missing_directory_is_not_found_exit_3_and_nothing_is_created() {
    let root = TempDir::new("cli-missing");
    let missing = root.join("no-broker-here");
    for args in [&["topics"][..], &["consume", "orders"], &["verify"], &["groups"]] {
        let r = cli(&missing, args).expect(3);
        assert_eq!(
            r.stderr,
            format!(
                "millpond: error: no millpond broker at {} (no millpond.lock there); nothing was created\n",
                missing.display()
            )
        );
    }
    let mut cmd = tool();
    cmd.arg("--dir").arg(&missing);
    run(cmd, &["produce", "orders"], Some(b"x\n")).expect(3);
    assert!(!missing.exists(), "the tool created {}", missing.display());
    // Without --dir or MILLPOND_DIR: a usage error.
    let r = run(tool(), &["topics"], None).expect(2);
    assert!(r.stderr.contains("--dir"), "{}", r.stderr);
    // MILLPOND_DIR works as --dir does.
    let dir = shop("cli-env-dir");
    let mut cmd = tool();
    cmd.env("MILLPOND_DIR", dir.path());
    assert_eq!(run(cmd, &["topics"], None).expect(0).lines().len(), 2);
}

#[test]
fn groups_show_committed_offset_high_watermark_and_lag_per_partition() {
    let dir = shop("cli-groups");
    let r = cli(dir.path(), &["groups"]).expect(0);
    assert_eq!(
        r.lines(),
        [
            "GROUP    TOPIC   PARTITION  COMMITTED  HIGH-WATERMARK  LAG",
            "audit    orders          0          3               3    0",
            "audit    orders          1          -               2    2",
            "billing  orders          0          2               3    1",
            "billing  orders          1          1               2    1",
        ]
    );
    let j = cli(dir.path(), &["--json", "groups", "--group", "billing"]).expect(0).json();
    assert_eq!(
        j,
        json!({ "groups": [{ "group": "billing", "topic": "orders", "members": 0, "lag": 2, "partitions": [
            { "partition": 0, "committed": 2, "high_watermark": 3, "lag": 1 },
            { "partition": 1, "committed": 1, "high_watermark": 2, "lag": 1 },
        ] }] })
    );
    let r = cli(dir.path(), &["groups", "--group", "nobody"]).expect(3);
    assert_eq!(r.stderr, "millpond: error: consumer group \"nobody\" has no committed offsets on any topic\n");
    cli(dir.path(), &["groups", "--topic", "nothing"]).expect(3);
}

#[test]
fn reset_offsets_moves_a_groups_committed_offsets_durably() {
    let dir = shop("cli-reset");
    let reset = |args: &[&str]| {
        let mut all = vec!["group", "reset-offsets", "billing", "--topic", "orders"];
        all.extend_from_slice(args);
        cli(dir.path(), &all)
    };
    let r = reset(&["--to", "earliest"]).expect(0);
    assert_eq!(
        r.lines(),
        [
            "reset group billing on topic orders:",
            "PARTITION  PREVIOUS  COMMITTED",
            "        0         2          0",
            "        1         1          0",
        ]
    );
    assert_eq!(committed(dir.path(), "billing", "orders"), [(0, 0), (1, 0)]);
    reset(&["--to", "latest"]).expect(0);
    assert_eq!(committed(dir.path(), "billing", "orders"), [(0, 3), (1, 2)]);
    reset(&["--to", "1", "--partition", "0"]).expect(0);
    assert_eq!(committed(dir.path(), "billing", "orders"), [(0, 1), (1, 2)]);
    let j = reset(&["--to", "2026-12-01T10:00:02Z", "--json"]).expect(0).json();
    assert_eq!(
        j,
        json!({ "group": "billing", "topic": "orders", "partitions": [
            { "partition": 0, "previous": 1, "committed": 1 },
            { "partition": 1, "previous": 2, "committed": 1 },
        ] })
    );
    assert_eq!(committed(dir.path(), "billing", "orders"), [(0, 1), (1, 1)]);
    reset(&["--to", "-5m"]).expect(0);
    assert_eq!(committed(dir.path(), "billing", "orders"), [(0, 3), (1, 2)], "no record is that recent");
    let r = cli(dir.path(), &["group", "reset-offsets", "no/slash", "--topic", "orders", "--to", "0"]).expect(2);
    assert!(r.stderr.contains("invalid group name"), "{}", r.stderr);
    cli(dir.path(), &["group", "reset-offsets", "billing", "--topic", "nothing", "--to", "0"]).expect(3);
}

#[test]
fn reset_offsets_while_another_process_holds_the_directory_exits_4() {
    let dir = shop("cli-reset-locked");
    let writer = Broker::open(dir.path()).unwrap();
    let r = cli(dir.path(), &["group", "reset-offsets", "billing", "--topic", "orders", "--to", "earliest"]).expect(4);
    assert!(r.stderr.contains("stop it or reset the group's offsets through it"), "{}", r.stderr);
    drop(writer);
    assert_eq!(committed(dir.path(), "billing", "orders"), [(0, 2), (1, 1)], "nothing changed");
}

#[test]
fn dump_lists_every_frame_of_a_good_segment_and_where_it_ends() {
    let dir = events("cli-dump");
    let segment = layout::segment_files(dir.path(), "events", 0).remove(0);
    let bytes = std::fs::read(&segment).unwrap();
    let bounds = frames::frame_bounds(&bytes);
    let r = run(tool(), &["dump", segment.to_str().unwrap()], None).expect(0);
    let lines = r.lines();
    assert_eq!(lines[0], format!("segment {} ({} bytes)", segment.display(), bytes.len()));
    assert!(
        lines[1].starts_with("topic id ") && lines[1].contains("  partition 0  base offset 0  epoch "),
        "{}",
        lines[1]
    );
    assert!(lines[2].trim_start().starts_with("POSITION    LENGTH  BASE-OFFSET"), "{}", lines[2]);
    let rows: Vec<Vec<&str>> = lines[3..3 + bounds.len()].iter().map(|l| l.split_whitespace().collect()).collect();
    for (i, (row, (start, len))) in rows.iter().zip(&bounds).enumerate() {
        let (offset, ts) = (i.to_string(), millpond_time(T0 + i as i64));
        assert_eq!(row[..], [&start.to_string(), &len.to_string(), &offset, &offset, "1", &ts, "ok"], "frame {i}");
    }
    let n = bounds.len();
    assert_eq!(lines[3 + n], format!("end at byte {}: end of file", bytes.len()));
    assert_eq!(lines[4 + n], format!("{n} frames, {n} records, offsets 0..={}", n - 1));
    assert_eq!(lines.len(), 5 + n);
    let j = run(tool(), &["--json", "dump", segment.to_str().unwrap()], None).expect(0).json();
    assert_eq!(j["frames"].as_array().unwrap().len(), n);
    assert_eq!(j["frames"][1]["position"], bounds[1].0);
    assert_eq!(j["end"], json!({ "position": bytes.len(), "kind": "end_of_file", "reason": null }));
    assert_eq!((j["damage"].clone(), j["header"]["base_offset"].clone()), (json!(false), json!(0)));
}

#[test]
fn dump_marks_a_transactions_frames_and_its_commit_marker_and_consume_skips_the_marker() {
    let dir = TempDir::new("cli-dump-txn");
    {
        let broker = Broker::open(dir.path()).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send(Record::new("plain")).unwrap();
        let mut txn = broker.transaction().unwrap();
        txn.send_batch(&topic, [Record::new("a"), Record::new("b")]).unwrap();
        txn.commit().unwrap();
    }
    let segment = layout::segment_files(dir.path(), "t", 0).remove(0);
    let j = run(tool(), &["--json", "dump", segment.to_str().unwrap()], None).expect(0).json();
    let frames = j["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!((frames[0]["transaction"].clone(), frames[0]["commit_marker"].clone()), (json!(null), json!(false)));
    let id = frames[1]["transaction"].as_str().unwrap().to_string();
    assert_eq!((frames[1]["record_count"].clone(), frames[1]["commit_marker"].clone()), (json!(2), json!(false)));
    assert_eq!(
        (frames[2]["transaction"].as_str(), frames[2]["commit_marker"].clone()),
        (Some(id.as_str()), json!(true))
    );
    let text = run(tool(), &["dump", segment.to_str().unwrap()], None).expect(0);
    assert!(
        text.lines().iter().any(|l| l.ends_with(&format!("ok  commit marker of transaction {id}"))),
        "{:?}",
        text.lines()
    );
    let r = cli(dir.path(), &["consume", "t", "--from", "earliest", "--format", "raw"]).expect(0);
    assert_eq!(r.lines(), ["plain", "a", "b"]);
}

/// `ms` as the tool prints times: RFC 3339 in UTC with milliseconds.
fn millpond_time(ms: i64) -> String {
    assert!((T0..T0 + 60_000).contains(&ms), "only times of the first minute of T0 are spelled here");
    format!("2026-12-01T10:00:{:02}.{:03}Z", (ms - T0) / 1000, (ms - T0) % 1000)
}

#[test]
fn dump_with_records_shows_keys_values_and_tombstones() {
    let dir = shop("cli-dump-records");
    let segment = layout::segment_files(dir.path(), "orders", 1).remove(0);
    let r = run(tool(), &["dump", "--records", segment.to_str().unwrap()], None).expect(0);
    let records: Vec<String> = r.lines().into_iter().filter(|l| l.trim_start().starts_with("record ")).collect();
    assert_eq!(
        records.iter().map(|l| l.trim()).collect::<Vec<_>>(),
        [
            "record offset 0  timestamp 2026-12-01T10:00:01.000Z  key 3 bytes \"bob\"  value 7 bytes \"order-2\"  headers 0",
            "record offset 1  timestamp 2026-12-01T10:00:04.000Z  key 3 bytes \"bob\"  value tombstone  headers 0",
        ]
    );
    let j = run(tool(), &["--json", "dump", "--records", segment.to_str().unwrap()], None).expect(0).json();
    assert_eq!(
        j["frames"][0]["records"],
        json!([{ "offset": 0, "timestamp": T0 + 1000, "key": "bob", "value": "order-2", "headers": [] }])
    );
}

#[test]
fn dump_of_a_segment_with_a_corrupted_byte_exits_5_and_reports_the_position() {
    let dir = events("cli-dump-damaged");
    let segment = layout::segment_files(dir.path(), "events", 0).remove(0);
    let at = damage_fourth_frame(&segment);
    let r = run(tool(), &["dump", segment.to_str().unwrap()], None).expect(5);
    let lines = r.lines();
    assert_eq!(lines.iter().filter(|l| l.ends_with("  ok")).count(), 3, "the three frames before it");
    let end = lines.iter().find(|l| l.starts_with("end at byte")).unwrap();
    assert!(end.starts_with(&format!("end at byte {at}: corrupt: frame CRC mismatch")), "{end}");
    assert!(
        r.stderr
            .starts_with(&format!("millpond: error: damage in {} at byte {at}: frame CRC mismatch", segment.display())),
        "{}",
        r.stderr
    );
    let j = run(tool(), &["--json", "dump", segment.to_str().unwrap()], None).expect(5).json();
    assert_eq!((j["end"]["kind"].clone(), j["end"]["position"].clone()), (json!("corrupt"), json!(at)));
    assert_eq!(j["damage"], true);
}

#[test]
fn dump_of_the_segment_a_live_writer_appends_to_never_reports_damage() {
    let dir = TempDir::new("cli-dump-live");
    let broker = Broker::open(dir.path()).unwrap();
    let cfg = TopicConfig::default().segment_bytes(1 << 20).max_record_bytes(64 << 10);
    let topic = broker.create_topic("live", cfg).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (producer, stop) = (topic.producer(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Frames of every size up to tens of KiB, written while the tool reads.
                let batch = (0..1 + i % 5).map(|k| Record::new(vec![b'v'; 100 + (i * 997 + k * 4099) % 20_000]));
                producer.send_batch(batch).unwrap();
                i += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut ends = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        let active = layout::active_segment(dir.path(), "live", 0);
        let r = run(tool(), &["--json", "dump", active.to_str().unwrap()], None);
        if r.code == 1 && r.stderr.contains("No such file") {
            continue; // an empty segment removed as it was rolled
        }
        let j = r.expect(0).json();
        *ends.entry(j["end"]["kind"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        ends.get("unwritten").is_some_and(|&n| n > 0),
        "the active segment was never caught being written: {ends:?}"
    );
}

#[test]
fn dump_of_a_file_that_is_not_a_segment_exits_5_without_a_panic() {
    let dir = TempDir::new("cli-dump-garbage");
    let file = dir.join("notes.log");
    std::fs::write(&file, b"these are not the frames you are looking for").unwrap();
    let r = run(tool(), &["dump", file.to_str().unwrap()], None).expect(5);
    assert_eq!(r.stdout, b"");
    assert!(r.stderr.contains("not a valid segment header"), "{}", r.stderr);
    let r = run(tool(), &["dump", dir.join("absent.log").to_str().unwrap()], None).expect(1);
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);
}

#[test]
fn verify_of_a_clean_directory_exits_0_with_its_figures() {
    let dir = events("cli-verify-clean");
    let segments = layout::segment_files(dir.path(), "events", 0).len();
    let r = cli(dir.path(), &["verify"]).expect(0);
    let lines = r.lines();
    assert_eq!(lines[0], "TOPIC   PARTITIONS  SEGMENTS  FRAMES  RECORDS  DAMAGE");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["events", "1", &segments.to_string(), "60", "60", "0"]
    );
    assert_eq!(lines[2], format!("1 topic, {segments} segments, 60 records: clean"));
    assert_eq!(r.stderr, "", "no progress bar when stderr is not a terminal");
    let j = cli(dir.path(), &["--json", "verify"]).expect(0).json();
    assert_eq!((j["clean"].clone(), j["topics"][0]["records"].clone()), (json!(true), json!(60)));
}

#[test]
fn verify_of_a_damaged_segment_exits_5_and_names_the_file_and_position() {
    let dir = events("cli-verify-damaged");
    let segment = layout::segment_files(dir.path(), "events", 0).remove(0);
    let at = damage_fourth_frame(&segment);
    let r = cli(dir.path(), &["verify"]).expect(5);
    let damage = format!(
        "damage: corrupt data in topic \"events\" partition 0, file {} at byte {at}: frame CRC mismatch",
        segment.display()
    );
    assert!(r.lines().contains(&damage), "{damage:?} missing from:\n{}", r.out());
    assert!(r.lines().last().unwrap().ends_with(": 1 damaged place"), "{}", r.out());
    assert_eq!(r.stderr, format!("millpond: error: verify found 1 damaged place in {}\n", dir.path().display()));
    let j = cli(dir.path(), &["--json", "verify"]).expect(5).json();
    assert_eq!(j["clean"], false);
    let d = &j["topics"][0]["damage"][0];
    assert_eq!((d["path"].clone(), d["position"].clone()), (json!(segment), json!(at)));
}

#[test]
fn reading_commands_never_repair_a_damaged_active_segment() {
    let dir = events("cli-read-no-repair");
    let active = layout::active_segment(dir.path(), "events", 0);
    damage_fourth_frame(&active);
    let before = std::fs::read(&active).unwrap();
    let r = cli(dir.path(), &["verify"]).expect(5);
    let said = format!("{}{}", r.out(), r.stderr);
    assert!(said.contains(&active.display().to_string()), "verify does not name the segment: {said}");
    // A reader cannot tell a damaged frame at the end of the active
    // segment from one being written: it prints the records before it.
    let sealed: usize = layout::segment_files(dir.path(), "events", 0)
        .iter()
        .filter(|p| **p != active)
        .map(|p| frames::frame_bounds(&std::fs::read(p).unwrap()).len())
        .sum();
    let r = cli(dir.path(), &["consume", "events", "--format", "raw"]).expect(0);
    assert_eq!(r.out().lines().count(), sealed + 3, "the records before the damage: {}", r.out());
    assert_eq!(std::fs::read(&active).unwrap(), before, "a reading command changed the segment");
}

#[test]
fn consume_into_a_closed_pipe_ends_quietly_with_exit_0() {
    let dir = TempDir::new("cli-broken-pipe");
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("big", TopicConfig::default()).unwrap();
    // Far more than a pipe holds, so the tool is still writing when the
    // reader goes (as `millpond consume big | head -1`).
    topic.producer().send_batch((0..200_000).map(|i| Record::new(format!("record-{i:06}")))).unwrap();
    drop(topic);
    broker.close().unwrap();
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path()).args(["consume", "big", "--format", "raw"]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap(); // the reader dropped here
    assert_eq!(first, "record-000000\n");
    let status = support::child::wait_timeout(&mut child, Duration::from_secs(30)).expect("millpond ended");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
}

/// The lines `child` prints (lossy UTF-8), read on a thread of their own.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { return };
            if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn consume_follow_prints_what_is_there_and_ends_cleanly_on_sigterm() {
    let dir = shop("cli-follow-signal");
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path()).args(["consume", "orders", "--partition", "0", "--follow", "--format", "raw"]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let lines = line_reader(&mut child);
    let wait = Duration::from_secs(20);
    // Each record reaches the pipe as it is printed, not at exit.
    for expected in ["order-1", "order-3"] {
        assert_eq!(lines.recv_timeout(wait).expect("a record while following"), expected);
    }
    assert_eq!(lines.recv_timeout(wait).expect("the third record"), "\u{FFFD}\u{0}\u{1}");
    assert!(support::child::wait_timeout(&mut child, Duration::from_millis(300)).is_none(), "it keeps following");
    // SAFETY: a signal to the child this test started, by its process id.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let status = support::child::wait_timeout(&mut child, wait).expect("millpond stopped on SIGTERM");
    assert_eq!(status.code(), Some(0));
}

/// The next line from `lines`, or the test fails with `what` and the
/// child's stderr.
fn next_line(lines: &mpsc::Receiver<String>, child: &mut Child, what: &str) -> String {
    lines.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|e| {
        let _ = child.kill(); // the child this test started, by its handle
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        panic!("{what}: {e}; millpond's stderr:\n{stderr}")
    })
}

#[test]
fn consume_follow_max_prints_records_a_live_writer_appends_after_it_started() {
    let dir = shop("cli-follow-live");
    // The writer keeps the directory open (and locked) the whole time.
    let writer = Broker::open(dir.path()).unwrap();
    let orders = writer.topic("orders").unwrap();
    let mut cmd = tool();
    cmd.arg("--dir").arg(dir.path());
    cmd.args(["consume", "orders", "--partition", "0", "--follow", "--max", "6", "--format", "raw"]);
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let lines = line_reader(&mut child);
    for _ in 0..3 {
        next_line(&lines, &mut child, "the records there before it started");
    }
    for i in 0..3 {
        let value = format!("live-{i}");
        orders.producer().send(Record::new(value.as_str()).partition(0)).unwrap();
        assert_eq!(next_line(&lines, &mut child, "the appended record, at once"), value);
    }
    let status =
        support::child::wait_timeout(&mut child, Duration::from_secs(20)).expect("millpond stopped after --max");
    assert_eq!(status.code(), Some(0));
}
