//! Logging and monitoring: structured logs through a typed topic, read by
//! two independent consumer groups.
//!
//! Three services (`api`, `billing`, `auth`) log structured records — level,
//! service, message, time — to the `logs` topic through a
//! [`TypedProducer`](millpond::TypedProducer) (bincode via serde), keyed by
//! service so each service's lines stay in order. A legacy component also
//! writes one line of plain text, which no typed consumer can decode.
//!
//! Two consumer groups read the same records, each at its own pace:
//!
//! - `archiver` appends every record to a file, one line each (the
//!   undecodable one too, marked as such), committing after it flushes;
//! - `alerting` raises an alert for every `Error` record as it arrives and
//!   measures how long after it was logged.
//!
//! The check: the archive file has exactly one line per record logged, and
//! the alerts are exactly the `Error` records, once each. The services log
//! as fast as they can, so the alert latency printed includes the time an
//! `Error` record waits behind the flood of other records.
//!
//! `cargo run --release --example logging_monitoring [records-per-service]`

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use millpond::{AutoCommit, Bincode, Broker, Error, GroupMember, Record, Topic, TopicConfig, TypedConsumer};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SERVICES: [&str; 3] = ["api", "billing", "auth"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One structured log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LogRecord {
    level: Level,
    service: String,
    message: String,
    /// When it was logged, in microseconds since the Unix epoch.
    at_micros: u64,
}

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    logged: u64,
    errors: u64,
    archived_lines: u64,
    undecodable: u64,
    alerts: u64,
    /// Alert latencies (logged -> alert raised), sorted.
    alert_latency: Vec<Duration>,
    secs: f64,
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// The level of a service's `i`-th record (deterministic, so the errors
/// can be counted).
fn level(i: u64) -> Level {
    match i {
        i if i % 97 == 13 => Level::Error,
        i if i % 10 == 0 => Level::Warn,
        i if i % 3 == 0 => Level::Debug,
        _ => Level::Info,
    }
}

fn message(service: &str, i: u64) -> String {
    format!("{service} handled request {i}")
}

/// An alert raised for an `Error` record.
#[derive(Debug)]
struct Alert {
    service: String,
    message: String,
    /// From the record being logged to the alert being raised.
    latency: Duration,
}

/// A consumer-group member reading `LogRecord`s.
type LogReader = TypedConsumer<LogRecord, Bincode, GroupMember>;

fn reader(logs: &Topic, group: &str) -> Result<LogReader, BoxError> {
    Ok(TypedConsumer::new(logs.group(group)?.auto_commit(AutoCommit::Off).join()?, Bincode))
}

/// The archiver: one line per record, flushed and committed in chunks and
/// whenever the topic is idle. Returns the number of lines written.
fn archive(mut logs: LogReader, path: &Path, stop: &AtomicBool) -> Result<u64, BoxError> {
    let mut file = BufWriter::new(std::fs::File::create(path)?);
    let (mut lines, mut unflushed) = (0, 0);
    loop {
        // Read before receiving: if everything was logged before this
        // receive found nothing, everything has been read.
        let stopping = stop.load(Ordering::SeqCst);
        match logs.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(m)) => {
                let r = m.value;
                writeln!(file, "{}\t{:?}\t{}\t{}", r.at_micros, r.level, r.service, r.message)?;
            }
            // Not a LogRecord: archive what is known about it and go on.
            Err(Error::Decode { partition, offset, reason, .. }) => {
                writeln!(file, "-\tUNDECODABLE\t-\tpartition {partition} offset {offset}: {reason}")?;
            }
            Err(e) => return Err(e.into()),
            Ok(None) => {
                if unflushed > 0 {
                    file.flush()?;
                    logs.source_mut().commit()?; // only what is safely in the file
                    unflushed = 0;
                }
                if stopping {
                    break;
                }
                continue;
            }
        }
        lines += 1;
        unflushed += 1;
        if unflushed >= 5_000 {
            file.flush()?;
            logs.source_mut().commit()?;
            unflushed = 0;
        }
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    logs.into_inner().close()?;
    Ok(lines)
}

/// The alerter: raises an alert for every `Error` record. Returns the
/// alerts and the number of undecodable records.
fn alert(mut logs: LogReader, stop: &AtomicBool) -> Result<(Vec<Alert>, u64), BoxError> {
    let (mut alerts, mut undecodable, mut uncommitted) = (Vec::new(), 0, false);
    loop {
        let stopping = stop.load(Ordering::SeqCst); // see `archive`
        match logs.recv_timeout(Duration::from_millis(20)) {
            Ok(Some(m)) => {
                uncommitted = true;
                if m.value.level == Level::Error {
                    let latency = Duration::from_micros(now_micros().saturating_sub(m.value.at_micros));
                    // "Page the on-call engineer."
                    alerts.push(Alert { service: m.value.service, message: m.value.message, latency });
                }
            }
            Err(Error::Decode { .. }) => undecodable += 1,
            Err(e) => return Err(e.into()),
            Ok(None) => {
                if uncommitted {
                    logs.source_mut().commit()?;
                    uncommitted = false;
                }
                if stopping {
                    break;
                }
            }
        }
    }
    logs.into_inner().close()?;
    Ok((alerts, undecodable))
}

fn run(dir: &Path, per_service: u64) -> Result<Outcome, BoxError> {
    std::fs::create_dir_all(dir)?;
    let archive_path = dir.join("archive.log");
    let broker = Broker::open(dir.join("broker"))?;
    let logs = broker.create_topic("logs", TopicConfig::default().partitions(3))?;
    let start = Instant::now();

    // Both groups join before anything is logged; each reads every record.
    let stop = Arc::new(AtomicBool::new(false));
    let archiver = {
        let (logs, stop, path) = (reader(&logs, "archiver")?, Arc::clone(&stop), archive_path.clone());
        std::thread::spawn(move || archive(logs, &path, &stop))
    };
    let alerter = {
        let (logs, stop) = (reader(&logs, "alerting")?, Arc::clone(&stop));
        std::thread::spawn(move || alert(logs, &stop))
    };

    // The services log.
    let mut services = Vec::new();
    for service in SERVICES {
        let producer = logs.typed_producer::<LogRecord>();
        services.push(std::thread::spawn(move || -> Result<(), millpond::Error> {
            for i in 0..per_service {
                let record = LogRecord {
                    level: level(i),
                    service: service.to_string(),
                    message: message(service, i),
                    at_micros: now_micros(),
                };
                producer.send_keyed(service, &record)?;
            }
            Ok(())
        }));
    }
    logs.producer().send(Record::new("WARN legacy-cron: disk 91% full").key("legacy-cron"))?;
    for s in services {
        s.join().map_err(|_| "a service panicked")??;
    }
    stop.store(true, Ordering::SeqCst); // everything is logged; readers drain and stop
    let archived_lines = archiver.join().map_err(|_| "the archiver panicked")??;
    let (alerts, undecodable) = alerter.join().map_err(|_| "the alerter panicked")??;
    let secs = start.elapsed().as_secs_f64();

    // Check the archive: one line per record, the right ones.
    let logged = per_service * SERVICES.len() as u64 + 1;
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    for service in SERVICES {
        for i in 0..per_service {
            expected.insert((service.to_string(), message(service, i)));
        }
    }
    let (mut archived, mut undecodable_lines) = (BTreeSet::new(), 0);
    let mut file_lines = 0;
    for line in std::io::BufReader::new(std::fs::File::open(&archive_path)?).lines() {
        let line = line?;
        file_lines += 1;
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        match fields[..] {
            [_, "UNDECODABLE", _, _] => undecodable_lines += 1,
            [_, _, service, message] => {
                if !archived.insert((service.to_string(), message.to_string())) {
                    return Err(format!("archived twice: {line}").into());
                }
            }
            _ => return Err(format!("malformed archive line {line:?}").into()),
        }
    }
    if file_lines != logged || archived_lines != logged || archived != expected || undecodable_lines != 1 {
        return Err(format!(
            "the archive has {file_lines} lines ({} typed, {undecodable_lines} undecodable), expected {logged}",
            archived.len()
        )
        .into());
    }

    // Check the alerts: exactly the Error records, once each.
    let errors: HashSet<(String, String)> = SERVICES
        .iter()
        .flat_map(|s| {
            (0..per_service).filter(|&i| level(i) == Level::Error).map(move |i| (s.to_string(), message(s, i)))
        })
        .collect();
    let alerted: HashSet<(String, String)> = alerts.iter().map(|a| (a.service.clone(), a.message.clone())).collect();
    if alerts.len() != errors.len() || alerted != errors {
        return Err(format!("{} alerts ({} distinct) for {} errors", alerts.len(), alerted.len(), errors.len()).into());
    }
    if undecodable != 1 {
        return Err(format!("the alerter saw {undecodable} undecodable records, expected 1").into());
    }
    let mut alert_latency: Vec<Duration> = alerts.iter().map(|a| a.latency).collect();
    alert_latency.sort_unstable();
    Ok(Outcome {
        logged,
        errors: errors.len() as u64,
        archived_lines,
        undecodable: undecodable_lines,
        alerts: alerts.len() as u64,
        alert_latency,
        secs,
    })
}

fn main() -> Result<(), BoxError> {
    let per_service: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-logging-monitoring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, per_service);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    let micros = |q: f64| {
        let last = o.alert_latency.len().saturating_sub(1);
        o.alert_latency.get(((last as f64) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    println!(
        "{} records logged by {} services in {:.2} s ({:.0} records/s), read by two groups",
        o.logged,
        SERVICES.len(),
        o.secs,
        o.logged as f64 / o.secs
    );
    println!(
        "  archiver: {} lines in the archive file ({} undecodable, kept as such)",
        o.archived_lines, o.undecodable
    );
    println!(
        "  alerting: {} alerts for {} errors; alert latency p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        o.alerts,
        o.errors,
        micros(0.5),
        micros(0.99),
        micros(1.0)
    );
    println!("ok: every record archived once, one alert per error");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_record_is_archived_and_every_error_alerted() {
        let dir = std::env::temp_dir().join(format!("millpond-logging-monitoring-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 5_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.logged, 15_001);
        assert_eq!(o.archived_lines, 15_001);
        assert_eq!(o.undecodable, 1);
        assert_eq!(o.alerts, o.errors);
        assert!(o.errors > 0);
    }
}
