//! The performance table: millpond against crossbeam-channel (the in-memory
//! baseline), commitlog 0.2 (the persistent one: a segmented, indexed log
//! written with `write(2)`), a raw memcpy into a mapped file, and, for the
//! async consumer, tokio's unbounded mpsc channel, on the same workloads, in
//! the same run.
//!
//! `cargo run --release --example bench` prints one row per workload with
//! every figure and its ratio against each baseline. 100-byte records
//! throughout. Pass `quick` for a smaller run, `contended` for only the row
//! of four producers on one partition (to compare changes to the append
//! path; with `quick`, on fewer records), `cross` for only the rows of
//! reader processes, `txn` for only the rows of transactions, `send` for
//! only single sends on a fresh topic (one line: to compare two builds by
//! their whole process's time). The figures are only
//! meaningful in release mode on an otherwise idle machine; `cargo test`
//! runs a tiny version that checks every workload delivers every record, not
//! the speed.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use commitlog::message::MessageSet;
use commitlog::{CommitLog, LogOptions, ReadLimit};
use hdrhistogram::Histogram;
use millpond::{AutoCommit, Broker, BrokerConfig, FsyncPolicy, Record, StartFrom, TopicConfig, WaitStrategy};

#[path = "bench_support/cross_process.rs"]
mod cross_process;
#[path = "bench_support/transactions.rs"]
mod transactions;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const RECORD: usize = 100;

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    records: u64,
    latency_records: u64,
    latency_rate: u64,
    big_backlog: u64,
    /// Events of the service rows (publish -> handled by an async task).
    service_events: u64,
    /// Their rate per second.
    service_rate: u64,
    /// Records of each cross-process latency run (at 10k/s).
    cross_records: u64,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    workload: &'static str,
    millpond: String,
    baseline: String,
    /// millpond's figure against each baseline of the row, with what it is
    /// against ("crossbeam", "commitlog", ...).
    ratios: Vec<(f64, &'static str)>,
    target: &'static str,
}

impl Row {
    fn ratio_text(&self) -> String {
        let parts: Vec<String> = self.ratios.iter().map(|(r, against)| format!("{r:.2}× {against}")).collect();
        parts.join(", ")
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn mps(r: f64) -> String {
    format!("{:.2} M/s", r / 1e6)
}

fn ms(d: f64) -> String {
    format!("{:.2} ms", d * 1e3)
}

/// Runs `f` `runs` times and returns the median of each of its `K` figures.
/// `f` measures every side of a row once, so the sides are interleaved and
/// share whatever the machine is doing.
fn medians<const K: usize>(
    runs: usize,
    mut f: impl FnMut() -> Result<[f64; K], BoxError>,
) -> Result<[f64; K], BoxError> {
    let mut all: [Vec<f64>; K] = std::array::from_fn(|_| Vec::with_capacity(runs));
    for _ in 0..runs {
        for (v, x) in all.iter_mut().zip(f()?) {
            v.push(x);
        }
    }
    Ok(all.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }))
}

fn fresh(dir: &Path) -> Result<Broker, BoxError> {
    fresh_with(dir, BrokerConfig::default())
}

fn fresh_with(dir: &Path, config: BrokerConfig) -> Result<Broker, BoxError> {
    let _ = std::fs::remove_dir_all(dir); // start empty
    settle();
    Ok(Broker::open_with(dir, config)?)
}

/// Writes back the dirty pages earlier workloads left (hundreds of MB), so
/// the kernel's writeback of one row does not land in the next one's timing.
fn settle() {
    // `sync` is in coreutils on every machine this runs on; if it is missing
    // the rows are only noisier.
    let _ = std::process::Command::new("sync").status();
}

fn big_segments() -> TopicConfig {
    TopicConfig::default().segment_bytes(1 << 30)
}

/// `n` single sends into a fresh topic; the rate.
fn send_rate(dir: &Path, n: u64, config: BrokerConfig) -> Result<f64, BoxError> {
    let broker = fresh_with(dir, config)?;
    let topic = broker.create_topic("append", big_segments())?;
    let producer = topic.producer();
    let value = [7u8; RECORD];
    let start = Instant::now();
    for _ in 0..n {
        producer.send(Record::new(&value))?;
    }
    let ours = rate(n, start.elapsed());
    if topic.high_watermark(0)? != n {
        return Err("append lost records".into());
    }
    Ok(ours)
}

/// Row 1: one producer, one `send` per record, against crossbeam's `send`
/// and commitlog's `append_msg`; and the same without the pre-fault thread
/// (`BrokerConfig::prefault_bytes(0)`), to show what it is worth.
fn append_single(dir: &Path, n: u64) -> Result<(Row, Row), BoxError> {
    // Medians of three runs each, the four configurations interleaved.
    let [ours, unprepared, theirs, logged] = medians(3, || {
        Ok([
            send_rate(dir, n, BrokerConfig::default())?,
            send_rate(dir, n, BrokerConfig::default().prefault_bytes(0))?,
            crossbeam_send_rate(n)?,
            commitlog_send_rate(&commitlog_dir(dir), n)?,
        ])
    })?;
    Ok((
        Row {
            workload: "append, 1 producer, send per record (median of 3)",
            millpond: mps(ours),
            baseline: format!("{} crossbeam send; {} commitlog append_msg", mps(theirs), mps(logged)),
            ratios: vec![(ours / theirs, "crossbeam"), (ours / logged, "commitlog")],
            target: ">= 1.0 crossbeam",
        },
        Row {
            workload: "  the same with prefault_bytes(0)",
            millpond: mps(unprepared),
            baseline: format!("{} with 4 MiB (the default)", mps(ours)),
            ratios: vec![(ours / unprepared, "the default's rate / this")],
            target: "(what pre-faulting is worth)",
        },
    ))
}

/// `n` crossbeam-channel sends of the same bytes; the rate.
fn crossbeam_send_rate(n: u64) -> Result<f64, BoxError> {
    let value = [7u8; RECORD];
    let (tx, rx) = crossbeam_channel::unbounded::<[u8; RECORD]>();
    let start = Instant::now();
    for _ in 0..n {
        tx.send(value)?;
    }
    let theirs = rate(n, start.elapsed());
    if rx.len() as u64 != n {
        return Err("crossbeam lost records".into());
    }
    Ok(theirs)
}

/// Where a run's commitlog lives: beside the broker's directory, not in it.
fn commitlog_dir(dir: &Path) -> PathBuf {
    let mut name = OsString::from(dir.as_os_str());
    name.push("-commitlog");
    PathBuf::from(name)
}

/// A commitlog with its default options (segments of up to 1 GB, grown by
/// writes rather than preallocated) in `dir`, emptied first.
fn commitlog_fresh(dir: &Path) -> Result<CommitLog, BoxError> {
    let _ = std::fs::remove_dir_all(dir); // start empty
    settle();
    Ok(CommitLog::new(LogOptions::new(dir))?)
}

/// `n` records of `[7; RECORD]`, one `append_msg` each.
fn commitlog_append(log: &mut CommitLog, n: u64) -> Result<(), BoxError> {
    let value = [7u8; RECORD];
    for _ in 0..n {
        log.append_msg(value)?;
    }
    Ok(())
}

/// `n` single `append_msg` calls into a fresh commitlog; the rate.
fn commitlog_send_rate(dir: &Path, n: u64) -> Result<f64, BoxError> {
    let mut log = commitlog_fresh(dir)?;
    let start = Instant::now();
    commitlog_append(&mut log, n)?;
    let theirs = rate(n, start.elapsed());
    if log.next_offset() != n {
        return Err("commitlog lost records".into());
    }
    Ok(theirs)
}

/// Reads all of `log` from offset 0 in batches of about 1,000 records (its
/// `read` takes a byte limit; a 100-byte record is 120 bytes framed) and
/// checks it read `n` records; the rate. Each read copies the bytes out of
/// the file and checks every record's CRC.
fn commitlog_read_rate(log: &CommitLog, n: u64) -> Result<f64, BoxError> {
    let limit = ReadLimit::max_bytes(1000 * (RECORD + 20));
    let start = Instant::now();
    let (mut next, mut got, mut bytes) = (0u64, 0u64, 0usize);
    loop {
        let batch = log.read(next, limit)?;
        if batch.is_empty() {
            break;
        }
        for m in batch.iter() {
            bytes += touch(m.payload());
            got += 1;
            next = m.offset() + 1;
        }
    }
    let theirs = rate(got, start.elapsed());
    if got != n || bytes != n as usize * TOUCHED {
        return Err(format!("commitlog read {got} of {n} records").into());
    }
    Ok(theirs)
}

/// Makes everything written to `log` durable, as millpond's `flush` does:
/// commitlog's `flush` msyncs the index only (the segment is written with
/// `write(2)`, and its `File::flush` does not sync), so each of its files,
/// then its directory, is fsynced after it.
fn commitlog_sync(log: &mut CommitLog, dir: &Path) -> Result<(), BoxError> {
    log.flush()?;
    for entry in std::fs::read_dir(dir)? {
        std::fs::File::open(entry?.path())?.sync_all()?;
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// The files under `dir`, recursively: (their sizes, the bytes the file
/// system allocated for them).
fn disk_usage(dir: &Path) -> Result<(u64, u64), BoxError> {
    let (mut len, mut allocated) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (l, a) = disk_usage(&entry.path())?;
            len += l;
            allocated += a;
        } else {
            len += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((len, allocated))
}

/// `n` records of `[7; RECORD]` memcpied into a fresh mapped file with no
/// framing at all; with `durable`, then msynced and fsynced. The rate,
/// sync included.
fn raw_mmap_rate(dir: &Path, n: u64, durable: bool) -> Result<f64, BoxError> {
    std::fs::create_dir_all(dir)?;
    let raw_path = dir.join("raw.bin");
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&raw_path)?;
    file.set_len(n * RECORD as u64)?;
    // SAFETY: the file was just created by this process and nothing else
    // maps or writes it while the map lives.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file)? };
    let value = [7u8; RECORD];
    let start = Instant::now();
    for chunk in map.chunks_exact_mut(RECORD) {
        chunk.copy_from_slice(&value);
    }
    if durable {
        map.flush()?;
        file.sync_all()?;
    }
    let theirs = rate(n, start.elapsed());
    let copied = map.chunks_exact(RECORD).filter(|c| *c == value).count() as u64;
    drop(map);
    std::fs::remove_file(raw_path)?;
    if copied != n {
        return Err("raw memcpy lost records".into());
    }
    Ok(theirs)
}

/// Row 2: `send_batch` of 1,000 against a raw memcpy into a mapped file.
fn append_batch(dir: &Path, n: u64) -> Result<Row, BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("batch", big_segments())?;
    let producer = topic.producer();
    let value = [7u8; RECORD];
    let batch: Vec<Record<'_>> = (0..1000).map(|_| Record::new(&value)).collect();
    let rounds = n.div_ceil(1000);
    let start = Instant::now();
    for _ in 0..rounds {
        producer.send_batch(batch.iter().cloned())?;
    }
    let ours = rate(rounds * 1000, start.elapsed());
    if topic.high_watermark(0)? != rounds * 1000 {
        return Err("batch append lost records".into());
    }
    let theirs = raw_mmap_rate(dir, rounds * 1000, false)?;
    Ok(Row {
        workload: "append, send_batch of 1,000",
        millpond: mps(ours),
        baseline: format!("{} raw memcpy into mmap", mps(theirs)),
        ratios: vec![(ours / theirs, "raw memcpy")],
        target: ">= 0.5",
    })
}

/// What a reader does with each record: its length plus its first and last
/// byte, so both sides really read the bytes (a `recv` whose value goes
/// unused can be optimized down to not reading it).
fn touch(v: &[u8]) -> usize {
    v.len() + usize::from(v.first().copied().unwrap_or(0)) + usize::from(v.last().copied().unwrap_or(0))
}

/// `touch` of one benchmark record (`[7; RECORD]`).
const TOUCHED: usize = RECORD + 7 + 7;

/// Row 3: reading back a backlog in batches (`poll_ref`), one borrowed
/// record at a time (`try_recv_ref`) and one owned record at a time
/// (`try_recv`); against crossbeam's `recv` and commitlog's `read` of the
/// same backlog in batches.
fn read_backlog(dir: &Path, n: u64) -> Result<[Row; 3], BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("backlog", big_segments())?;
    let value = [7u8; RECORD];
    let batch: Vec<Record<'_>> = (0..1000).map(|_| Record::new(&value)).collect();
    for _ in 0..n.div_ceil(1000) {
        topic.producer().send_batch(batch.iter().cloned())?;
    }
    let total = n.div_ceil(1000) * 1000;
    let mut consumer = topic.consumer(StartFrom::Earliest)?;
    let start = Instant::now();
    let (mut got, mut bytes) = (0u64, 0usize);
    loop {
        let batch = consumer.poll_ref(1000, Duration::ZERO)?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            bytes += touch(m.value());
            got += 1;
        }
    }
    let batched = rate(got, start.elapsed());
    if got != total || bytes != total as usize * TOUCHED {
        return Err("backlog read (batched) lost records".into());
    }
    let mut consumer = topic.consumer(StartFrom::Earliest)?;
    let start = Instant::now();
    let mut got = 0u64;
    let mut bytes = 0usize;
    while let Some(m) = consumer.try_recv_ref()? {
        bytes += touch(m.value());
        got += 1;
    }
    let ours = rate(got, start.elapsed());
    if got != total || bytes != total as usize * TOUCHED {
        return Err("backlog read lost records".into());
    }
    let mut consumer = topic.consumer(StartFrom::Earliest)?;
    let start = Instant::now();
    let (mut got, mut bytes) = (0u64, 0usize);
    while let Some(m) = consumer.try_recv()? {
        bytes += touch(m.value());
        got += 1;
    }
    let owned = rate(got, start.elapsed());
    if got != total || bytes != total as usize * TOUCHED {
        return Err("backlog read (owned) lost records".into());
    }
    let (tx, rx) = crossbeam_channel::unbounded::<[u8; RECORD]>();
    for _ in 0..total {
        tx.send(value)?;
    }
    let start = Instant::now();
    let mut sum = 0usize;
    for _ in 0..total {
        sum += touch(&rx.recv()?);
    }
    let theirs = rate(total, start.elapsed());
    if sum != total as usize * TOUCHED {
        return Err("crossbeam read lost records".into());
    }
    drop((rx, broker));
    let log_dir = commitlog_dir(dir);
    let mut log = commitlog_fresh(&log_dir)?;
    commitlog_append(&mut log, total)?;
    let logged = commitlog_read_rate(&log, total)?;
    let against = |r: f64| vec![(r / theirs, "crossbeam"), (r / logged, "commitlog")];
    let baseline = format!("{} crossbeam recv; {} commitlog read", mps(theirs), mps(logged));
    Ok([
        Row {
            workload: "read a backlog, 1 consumer (poll_ref of 1,000)",
            millpond: mps(batched),
            baseline: baseline.clone(),
            ratios: against(batched),
            target: ">= 1.0 crossbeam",
        },
        Row {
            workload: "  the same, one try_recv_ref per record",
            millpond: mps(ours),
            baseline: baseline.clone(),
            ratios: against(ours),
            target: "(borrowed, no batch)",
        },
        Row {
            workload: "  the same, one try_recv per record",
            millpond: mps(owned),
            baseline,
            ratios: against(owned),
            target: "(owned: an Arc per message)",
        },
    ])
}

/// Rows 4 to 6: producers and consumers on their own threads, producer `p`
/// sending to partition `p % partitions` (each producer on a partition of
/// its own when `partitions == producers`; all contending for one when
/// `partitions == 1`).
fn concurrent(dir: &Path, n: u64, producers: u32, consumers: u32, partitions: u32) -> Result<(f64, f64), BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("flow", big_segments().partitions(partitions))?;
    let per_producer = n / u64::from(producers);
    // Each consumer reads its share of the partitions.
    let mut readers = Vec::new();
    for c in 0..consumers {
        let mine: Vec<u32> = (0..partitions).filter(|p| p % consumers == c).collect();
        let expected = per_producer * (0..producers).filter(|p| mine.contains(&(p % partitions))).count() as u64;
        let mut consumer = topic.consumer_of(&mine, StartFrom::Earliest)?;
        readers.push(std::thread::spawn(move || -> Result<u64, millpond::Error> {
            let mut got = 0;
            while got < expected {
                // Waits for the first record, then takes what else is there.
                let batch = consumer.poll_ref(1000, Duration::from_secs(30))?;
                if batch.is_empty() {
                    break;
                }
                got += batch.filter(|m| m.value().len() == RECORD).count() as u64;
            }
            Ok(got)
        }));
    }
    let start = Instant::now();
    let writers: Vec<_> = (0..producers)
        .map(|p| {
            let producer = topic.producer();
            std::thread::spawn(move || -> Result<(), millpond::Error> {
                let value = [7u8; RECORD];
                for _ in 0..per_producer {
                    producer.send(Record::new(&value).partition(p % partitions))?;
                }
                Ok(())
            })
        })
        .collect();
    for w in writers {
        w.join().map_err(|_| "producer panicked")??;
    }
    let mut got = 0;
    for r in readers {
        got += r.join().map_err(|_| "consumer panicked")??;
    }
    let ours = rate(got, start.elapsed());
    if got != per_producer * u64::from(producers) {
        return Err(format!("concurrent run delivered {got} of {}", per_producer * u64::from(producers)).into());
    }

    let (tx, rx) = crossbeam_channel::unbounded::<[u8; RECORD]>();
    let total = per_producer * u64::from(producers);
    let start = Instant::now();
    let receivers: Vec<_> = (0..consumers)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().filter(|v| v.len() == RECORD).count() as u64)
        })
        .collect();
    drop(rx);
    let senders: Vec<_> = (0..producers)
        .map(|_| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for _ in 0..per_producer {
                    if tx.send([7u8; RECORD]).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    for s in senders {
        s.join().map_err(|_| "sender panicked")?;
    }
    let received: u64 = receivers.into_iter().map(|r| r.join().unwrap_or(0)).sum();
    let theirs = rate(received, start.elapsed());
    if received != total {
        return Err("crossbeam concurrent run lost records".into());
    }
    Ok((ours, theirs))
}

/// One producer thread, one consumer task awaiting each record
/// (`recv_async`) on a current-thread tokio runtime, against the same with
/// tokio's unbounded mpsc channel (`recv().await`).
fn async_task(dir: &Path, n: u64) -> Result<(f64, f64), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let broker = fresh(dir)?;
    let topic = broker.create_topic("async", big_segments())?;
    let mut consumer = topic.consumer(StartFrom::Earliest)?;
    let producer = topic.producer();
    let start = Instant::now();
    let writer = std::thread::spawn(move || -> Result<(), millpond::Error> {
        let value = [7u8; RECORD];
        for _ in 0..n {
            producer.send(Record::new(&value))?;
        }
        Ok(())
    });
    let got = rt.block_on(async {
        let mut got = 0u64;
        while got < n {
            if consumer.recv_async().await?.value().len() == RECORD {
                got += 1;
            }
        }
        Ok::<_, millpond::Error>(got)
    })?;
    writer.join().map_err(|_| "producer panicked")??;
    let ours = rate(got, start.elapsed());

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<[u8; RECORD]>();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        for _ in 0..n {
            if tx.send([7u8; RECORD]).is_err() {
                return;
            }
        }
    });
    let received = rt.block_on(async {
        let mut got = 0u64;
        while let Some(v) = rx.recv().await {
            if v.len() == RECORD {
                got += 1;
            }
        }
        got
    });
    sender.join().map_err(|_| "sender panicked")?;
    let theirs = rate(received, start.elapsed());
    if received != n {
        return Err("tokio mpsc lost records".into());
    }
    Ok((ours, theirs))
}

/// Row 6: four producers contending for one partition (its writer lock),
/// one consumer; against four crossbeam senders into one channel.
fn contended(dir: &Path, n: u64) -> Result<Row, BoxError> {
    let (o, t) = concurrent(dir, n, 4, 1, 1)?;
    Ok(Row {
        workload: "4 producers -> 1 partition -> 1 consumer",
        millpond: mps(o),
        baseline: format!("{} crossbeam 4 tx / 1 rx", mps(t)),
        ratios: vec![(o / t, "crossbeam")],
        target: ">= 1.0",
    })
}

/// Rows 7 and 8: produce-to-consume latency at a fixed rate.
fn latency(dir: &Path, n: u64, per_sec: u64, wait: WaitStrategy) -> Result<(Histogram<u64>, Histogram<u64>), BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("latency", big_segments())?;
    let base = Instant::now();
    let mut consumer = topic.consumer(StartFrom::Earliest)?.wait_strategy(wait);
    let reader = std::thread::spawn(move || -> Result<Histogram<u64>, BoxError> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
        for _ in 0..n {
            let m = consumer.recv()?;
            let sent = u64::from_le_bytes(m.value()[..8].try_into()?);
            let now = base.elapsed().as_nanos() as u64;
            h.record(now.saturating_sub(sent).max(1))?;
        }
        Ok(h)
    });
    let producer = topic.producer();
    publish_paced(n, per_sec, base, |value| {
        producer.send(Record::new(&value))?;
        Ok(())
    })?;
    let ours = reader.join().map_err(|_| "latency reader panicked")??;

    let (tx, rx) = crossbeam_channel::unbounded::<[u8; RECORD]>();
    let reader = std::thread::spawn(move || -> Result<Histogram<u64>, BoxError> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
        for _ in 0..n {
            let v = rx.recv()?;
            let sent = u64::from_le_bytes(v[..8].try_into()?);
            let now = base.elapsed().as_nanos() as u64;
            h.record(now.saturating_sub(sent).max(1))?;
        }
        Ok(h)
    });
    publish_paced(n, per_sec, base, |value| Ok(tx.send(value)?))?;
    let theirs = reader.join().map_err(|_| "latency reader panicked")??;
    if ours.len() != n || theirs.len() != n {
        return Err("latency run lost records".into());
    }
    Ok((ours, theirs))
}

/// Three latency runs; for each side, the run with the median p99 (one run
/// on a shared VM can catch a millisecond stall of the hypervisor).
fn median_latency(dir: &Path, s: Sizes, wait: WaitStrategy) -> Result<(Histogram<u64>, Histogram<u64>), BoxError> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..3 {
        let (o, t) = latency(dir, s.latency_records, s.latency_rate, wait)?;
        ours.push(o);
        theirs.push(t);
    }
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99);
    ours.sort_by_key(p99);
    theirs.sort_by_key(p99);
    Ok((ours.swap_remove(1), theirs.swap_remove(1)))
}

fn pct(h: &Histogram<u64>) -> String {
    let us = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.0} µs",
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}

/// How the consumer task of `service_latency` commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServiceCommit {
    Never,
    /// `commit_async` every 100 ms, handles dropped (the last one awaited).
    Async,
    /// `commit` every 100 ms: the fsync on the consuming task.
    Blocking,
}

/// Publishes `n` events at `per_sec` with `send`, each carrying its send
/// time (ns since `base`) in its first 8 bytes; spins to each due time.
fn publish_paced(
    n: u64,
    per_sec: u64,
    base: Instant,
    mut send: impl FnMut([u8; RECORD]) -> Result<(), BoxError>,
) -> Result<(), BoxError> {
    let interval = Duration::from_nanos(1_000_000_000 / per_sec);
    let mut value = [0u8; RECORD];
    let start = Instant::now();
    for i in 0..n {
        let due = start + interval * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        value[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        send(value)?;
    }
    Ok(())
}

fn record_latency(h: &mut Histogram<u64>, base: Instant, value: &[u8]) -> Result<(), BoxError> {
    let sent = u64::from_le_bytes(value[..8].try_into()?);
    let now = base.elapsed().as_nanos() as u64;
    h.record(now.saturating_sub(sent).max(1))?;
    Ok(())
}

/// The service rows, millpond's side: a service's publish -> handled latency.
/// A publisher thread sends at `per_sec`; a consumer-group member awaits
/// each event in a task (`recv_async` on a current-thread tokio runtime)
/// and commits as `commit` says. Returns the latencies and the median time
/// a commit call took on the consuming task.
fn service_latency(
    dir: &Path,
    n: u64,
    per_sec: u64,
    commit: ServiceCommit,
) -> Result<(Histogram<u64>, Duration), BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("service", big_segments())?;
    let group = topic.group("handlers")?.auto_commit(AutoCommit::Off);
    let mut member = group.join()?;
    let base = Instant::now();
    let reader = std::thread::spawn(move || -> Result<(Histogram<u64>, Duration), BoxError> {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        rt.block_on(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            let mut last_commit = Instant::now();
            let mut pending = None;
            let mut commit_calls = Vec::new();
            for _ in 0..n {
                let m = member.recv_async().await?;
                record_latency(&mut h, base, m.value())?;
                if commit != ServiceCommit::Never && last_commit.elapsed() >= Duration::from_millis(100) {
                    let called = Instant::now();
                    match commit {
                        ServiceCommit::Async => pending = Some(member.commit_async()),
                        _ => member.commit()?,
                    }
                    commit_calls.push(called.elapsed());
                    last_commit = Instant::now();
                }
            }
            if let Some(last) = pending {
                last.await?;
            }
            commit_calls.sort();
            Ok((h, commit_calls.get(commit_calls.len() / 2).copied().unwrap_or_default()))
        })
    });
    let producer = topic.producer();
    publish_paced(n, per_sec, base, |v| Ok(producer.send(Record::new(&v)).map(drop)?))?;
    let (h, commit_call) = reader.join().map_err(|_| "service consumer panicked")??;
    if h.len() != n {
        return Err("service run lost events".into());
    }
    if commit != ServiceCommit::Never && n >= per_sec / 5 && group.committed()?.is_empty() {
        return Err("service run committed nothing".into());
    }
    Ok((h, commit_call))
}

/// The service rows, the baseline: the same service with tokio's unbounded
/// mpsc channel between the publisher and the task.
fn mpsc_service_latency(n: u64, per_sec: u64) -> Result<Histogram<u64>, BoxError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<[u8; RECORD]>();
    let base = Instant::now();
    let reader = std::thread::spawn(move || -> Result<Histogram<u64>, BoxError> {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        rt.block_on(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            while let Some(v) = rx.recv().await {
                record_latency(&mut h, base, &v)?;
            }
            Ok(h)
        })
    });
    publish_paced(n, per_sec, base, |v| tx.send(v).map_err(|_| "tokio mpsc receiver gone".into()))?;
    drop(tx);
    let h = reader.join().map_err(|_| "mpsc service consumer panicked")??;
    if h.len() != n {
        return Err("tokio mpsc lost events".into());
    }
    Ok(h)
}

/// The service rows: three runs of every side, interleaved; for each side, the
/// run with the median p99. Returns tokio mpsc's, then millpond's without
/// commits, with async commits, with blocking commits; and the median time
/// of a `commit_async` call and of a blocking `commit` call.
fn service_rows(dir: &Path, s: Sizes) -> Result<([Histogram<u64>; 4], [Duration; 2]), BoxError> {
    let mut sides: [Vec<Histogram<u64>>; 4] = Default::default();
    let mut calls: [Vec<Duration>; 2] = Default::default();
    let (n, r) = (s.service_events, s.service_rate);
    for _ in 0..3 {
        sides[0].push(mpsc_service_latency(n, r)?);
        sides[1].push(service_latency(dir, n, r, ServiceCommit::Never)?.0);
        for (i, way) in [ServiceCommit::Async, ServiceCommit::Blocking].into_iter().enumerate() {
            let (h, call) = service_latency(dir, n, r, way)?;
            sides[2 + i].push(h);
            calls[i].push(call);
        }
    }
    let sides = sides.map(|mut runs| {
        runs.sort_by_key(|h| h.value_at_quantile(0.99));
        runs.swap_remove(1)
    });
    Ok((
        sides,
        calls.map(|mut c| {
            c.sort();
            c[1]
        }),
    ))
}

/// Row 9: opening a topic with many sealed segments.
fn open_time(dir: &Path, segments: u64) -> Result<f64, BoxError> {
    let broker = fresh(dir)?;
    let cfg = TopicConfig::default().segment_bytes(64 << 10).max_record_bytes(4096);
    let topic = broker.create_topic("segments", cfg)?;
    let value = [7u8; RECORD];
    // ~400 records of 166 bytes fill a 64 KiB segment.
    let per_segment = (64 << 10) / 166;
    let batch: Vec<Record<'_>> = (0..per_segment).map(|_| Record::new(&value)).collect();
    while (topic.stats().partitions[0].segments as u64) < segments + 1 {
        topic.producer().send_batch(batch.iter().cloned())?;
    }
    broker.close()?;
    drop((topic, broker));
    // The median of several opens: one sub-millisecond timing is noise.
    let [time] = medians(15, || {
        let start = Instant::now();
        let broker = Broker::open(dir)?;
        let time = start.elapsed().as_secs_f64();
        if broker.topic("segments")?.stats().partitions[0].segments as u64 != segments + 1 {
            return Err("reopen lost segments".into());
        }
        broker.close()?;
        Ok([time])
    })?;
    Ok(time)
}

/// Opening from nothing: a broker on an empty directory plus one topic with
/// the default config (its first segment preallocated), against commitlog
/// creating its log; [millpond, of which `Broker::open`, commitlog] in
/// seconds, medians of 15 interleaved runs.
fn open_fresh(dir: &Path) -> Result<[f64; 3], BoxError> {
    let log_dir = commitlog_dir(dir);
    settle();
    medians(15, || {
        let _ = std::fs::remove_dir_all(dir);
        let start = Instant::now();
        let broker = Broker::open(dir)?;
        let opened = start.elapsed().as_secs_f64();
        let topic = broker.create_topic("fresh", TopicConfig::default())?;
        let ours = start.elapsed().as_secs_f64();
        if topic.high_watermark(0)? != 0 || broker.topics().len() != 1 {
            return Err("fresh broker is not empty".into());
        }
        broker.close()?;
        let _ = std::fs::remove_dir_all(&log_dir);
        let start = Instant::now();
        let log = CommitLog::new(LogOptions::new(&log_dir))?;
        let theirs = start.elapsed().as_secs_f64();
        if log.next_offset() != 0 {
            return Err("fresh commitlog is not empty".into());
        }
        Ok([ours, opened, theirs])
    })
}

/// What one durable-append run measured.
struct Durable {
    /// Rates of `n` appends plus the sync: millpond, commitlog, raw memcpy.
    rates: [f64; 3],
    /// millpond: the partition's committed bytes (`stats().bytes()`) and
    /// the bytes allocated for the topic's files.
    ours: (u64, u64),
    /// commitlog: its files' sizes (segment + index) and allocated bytes.
    theirs: (u64, u64),
}

/// One durable-append run: `n` single sends into a topic with the default
/// config then `flush()` (msync + fsync); `n` `append_msg` then flush and
/// fsync (see `commitlog_sync`); `n` records memcpied into a mapped file
/// then msync + fsync. Afterwards, what each left on disk.
fn durable_run(dir: &Path, n: u64) -> Result<Durable, BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("durable", TopicConfig::default())?;
    let producer = topic.producer();
    let value = [7u8; RECORD];
    let start = Instant::now();
    for _ in 0..n {
        producer.send(Record::new(&value))?;
    }
    producer.flush()?;
    let ours = rate(n, start.elapsed());
    let stats = topic.stats();
    if stats.records() != n || topic.high_watermark(0)? != n {
        return Err("durable append lost records".into());
    }
    let (_, allocated) = disk_usage(&dir.join("topics").join("durable"))?;
    let ours_disk = (stats.bytes(), allocated);
    drop((producer, topic, broker));

    let log_dir = commitlog_dir(dir);
    let mut log = commitlog_fresh(&log_dir)?;
    let start = Instant::now();
    commitlog_append(&mut log, n)?;
    commitlog_sync(&mut log, &log_dir)?;
    let theirs = rate(n, start.elapsed());
    if log.next_offset() != n {
        return Err("commitlog durable append lost records".into());
    }
    let theirs_disk = disk_usage(&log_dir)?;
    drop(log);

    settle();
    let raw = raw_mmap_rate(dir, n, true)?;
    Ok(Durable { rates: [ours, theirs, raw], ours: ours_disk, theirs: theirs_disk })
}

/// The durable-append row and the bytes-on-disk row: three interleaved
/// runs, median rates; the sizes are those of the last run (they are the
/// same every run but for the file system's allocation).
fn durable(dir: &Path, n: u64) -> Result<(Row, Row), BoxError> {
    let mut last = None;
    let [ours, theirs, raw] = medians(3, || {
        let run = durable_run(dir, n)?;
        let rates = run.rates;
        last = Some(run);
        Ok(rates)
    })?;
    let run = last.ok_or("no durable run")?;
    let per = |b: u64| b as f64 / n as f64;
    let (committed, allocated) = (per(run.ours.0), per(run.ours.1));
    let (their_len, their_allocated) = (per(run.theirs.0), per(run.theirs.1));
    // Both store every record's bytes and a frame around them.
    if committed <= RECORD as f64 || their_len <= RECORD as f64 {
        return Err(format!("{committed} / {their_len} bytes a record: less than the records").into());
    }
    let ours_text = if run.ours.0 == run.ours.1 {
        format!("{committed:.1} B committed")
    } else {
        format!("{committed:.1} B committed ({allocated:.1} B allocated)")
    };
    let theirs_text = if run.theirs.0 == run.theirs.1 {
        format!("{their_len:.1} B commitlog segment + index")
    } else {
        format!("{their_len:.1} B commitlog segment + index ({their_allocated:.1} B allocated)")
    };
    Ok((
        Row {
            workload: "append, send per record, then flush (fsync) (median of 3)",
            millpond: mps(ours),
            baseline: format!(
                "{} commitlog append_msg + flush + fsync; {} raw memcpy into mmap + msync + fsync",
                mps(theirs),
                mps(raw)
            ),
            ratios: vec![(ours / theirs, "commitlog"), (ours / raw, "raw memcpy")],
            target: "(the rate includes the sync)",
        },
        Row {
            workload: "bytes on disk per record",
            millpond: ours_text,
            baseline: format!("{theirs_text}; {RECORD} B raw"),
            ratios: vec![(committed / their_len, "commitlog"), (committed / RECORD as f64, "raw")],
            target: "(lower is better)",
        },
    ))
}

/// The process's anonymous resident memory (heap), in KiB.
fn rss_anon_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Row 10: heap growth with the backlog.
fn memory(dir: &Path, small: u64, big: u64) -> Result<(u64, u64), BoxError> {
    let mut growth = Vec::new();
    for n in [small, big] {
        let broker = fresh(dir)?;
        let topic = broker.create_topic("memory", big_segments())?;
        let before = rss_anon_kib().unwrap_or(0);
        let value = [7u8; RECORD];
        let batch: Vec<Record<'_>> = (0..1000.min(n)).map(|_| Record::new(&value)).collect();
        let mut written = 0;
        while written < n {
            written += topic.producer().send_batch(batch.iter().cloned())?.len() as u64;
        }
        let after = rss_anon_kib().unwrap_or(0);
        growth.push(after.saturating_sub(before));
    }
    Ok((growth[0], growth[1]))
}

fn run(dir: &Path, s: Sizes) -> Result<Vec<Row>, BoxError> {
    let (single, prepared) = append_single(dir, s.records)?;
    let mut rows = vec![single, prepared, append_batch(dir, s.records)?];
    rows.extend(read_backlog(dir, s.records)?);
    let (synced, disk) = durable(dir, s.records)?;
    rows.extend([synced, disk]);
    let (o, t) = concurrent(dir, s.records, 1, 1, 1)?;
    rows.push(Row {
        workload: "1 producer -> 1 consumer, concurrent",
        millpond: mps(o),
        baseline: format!("{} crossbeam", mps(t)),
        ratios: vec![(o / t, "crossbeam")],
        target: ">= 1.0",
    });
    let (o, t) = async_task(dir, s.records)?;
    rows.push(Row {
        workload: "1 producer -> 1 async consumer task (recv_async)",
        millpond: mps(o),
        baseline: format!("{} tokio mpsc unbounded", mps(t)),
        ratios: vec![(o / t, "tokio mpsc")],
        target: ">= 1.0",
    });
    let (o, t) = concurrent(dir, s.records, 4, 2, 4)?;
    rows.push(Row {
        workload: "4 producers -> 2 consumers",
        millpond: mps(o),
        baseline: format!("{} crossbeam 4 tx / 2 rx", mps(t)),
        ratios: vec![(o / t, "crossbeam")],
        target: ">= 1.0",
    });
    rows.push(contended(dir, s.records)?);
    let (o, t) = median_latency(dir, s, WaitStrategy::SpinThenPark)?;
    rows.push(Row {
        workload: "latency at 100k/s, blocking (p99; median of 3 runs)",
        millpond: pct(&o),
        baseline: format!("crossbeam recv: {}", pct(&t)),
        ratios: vec![(t.value_at_quantile(0.99) as f64 / o.value_at_quantile(0.99) as f64, "crossbeam's p99 / ours")],
        target: "p50, p99 <= crossbeam",
    });
    let (o, t) = median_latency(dir, s, WaitStrategy::BusySpin)?;
    rows.push(Row {
        workload: "latency at 100k/s, busy-spin (p50; median of 3 runs)",
        millpond: pct(&o),
        baseline: format!("crossbeam recv: {}", pct(&t)),
        ratios: vec![(1000.0 / o.value_at_quantile(0.5) as f64, "1 µs / p50")],
        target: "p50 <= 1 µs (ratio = 1 µs / p50)",
    });
    let ([mpsc, quiet, async_commits, blocking_commits], [async_call, blocking_call]) = service_rows(dir, s)?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let q = |h: &Histogram<u64>, at: f64| h.value_at_quantile(at) as f64;
    rows.push(Row {
        workload: "publish -> handled at 1,000/s, async consumer task (group member, recv_async; median of 3)",
        millpond: pct(&quiet),
        baseline: format!("tokio mpsc: {}", pct(&mpsc)),
        ratios: vec![
            (q(&quiet, 0.5) / q(&mpsc, 0.5), "p50 / tokio's p50"),
            (q(&quiet, 0.99) / q(&mpsc, 0.99), "p99 / tokio's p99"),
        ],
        target: "<= 2.0 each",
    });
    rows.push(Row {
        workload: "same, with a commit_async every 100 ms",
        millpond: format!("{} (a commit_async call: {:.1} µs)", pct(&async_commits), us(async_call)),
        baseline: format!(
            "without commits: p99 {:.1} µs; a blocking commit() every 100 ms: p99 {:.1} µs (a commit call: {:.0} µs)",
            q(&quiet, 0.99) / 1000.0,
            q(&blocking_commits, 0.99) / 1000.0,
            us(blocking_call)
        ),
        ratios: vec![
            (q(&async_commits, 0.99) / q(&quiet, 0.99), "p99 / p99 without commits"),
            (q(&blocking_commits, 0.99) / q(&async_commits, 0.99), "blocking commit's p99 / ours"),
        ],
        target: "p99 <= 2.0× without commits",
    });
    rows.extend(cross_process_rows(dir, s)?);
    let few = open_time(dir, 10)?;
    let many = open_time(dir, 100)?;
    rows.push(Row {
        workload: "open a topic with 100 sealed segments",
        millpond: ms(many),
        baseline: format!("{} with 10 segments", ms(few)),
        ratios: vec![(few / many, "10 segments' time / ours")],
        target: "~1.0 (independent of count)",
    });
    let [o, opened, t] = open_fresh(dir)?;
    rows.push(Row {
        workload: "open a fresh broker + create_topic (median of 15)",
        millpond: format!("{} (Broker::open {})", ms(o), ms(opened)),
        baseline: format!("{} commitlog CommitLog::new", ms(t)),
        ratios: vec![(o / t, "commitlog's time")],
        target: "(lower is better)",
    });
    let (small, big) = memory(dir, 1000, s.big_backlog)?;
    rows.push(Row {
        workload: "heap growth (RssAnon) with the backlog",
        millpond: format!("{big} KiB for {} records", s.big_backlog),
        baseline: format!("{small} KiB for 1,000 records"),
        ratios: vec![((small.max(1) as f64) / (big.max(1) as f64), "1,000 records' growth / ours")],
        target: "~1.0 (flat)",
    });
    rows.extend(transactions::rows(dir, s.records)?);
    Ok(rows)
}

/// The rows of readers in other processes (`Broker::open_read_only`).
fn cross_process_rows(dir: &Path, s: Sizes) -> Result<Vec<Row>, BoxError> {
    const PER_SEC: u64 = 10_000;
    let us = |ns: u64| ns as f64 / 1000.0;
    let show = |r: [u64; 4]| {
        format!("p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.0} µs", us(r[0]), us(r[1]), us(r[2]), us(r[3]))
    };
    let parked = cross_process::median_latency(dir, s.cross_records, PER_SEC, false)?;
    let (local_parked, _) = latency(dir, s.cross_records, PER_SEC, WaitStrategy::SpinThenPark)?;
    let spun = cross_process::median_latency(dir, s.cross_records, PER_SEC, true)?;
    let (local_spun, _) = latency(dir, s.cross_records, PER_SEC, WaitStrategy::BusySpin)?;
    let (ours, theirs, open) = cross_process::backlog(dir, s.records)?;
    let (alone, niced, watched) = cross_process::writer_with_readers(dir, s.records)?;
    Ok(vec![
        Row {
            workload: "writer -> reader in another process at 10k/s, default wait (median p99 of 3)",
            millpond: show(parked),
            baseline: format!("same in one process: {}", pct(&local_parked)),
            ratios: vec![(20_000.0 / parked[0] as f64, "20 µs / p50"), (200_000.0 / parked[1] as f64, "200 µs / p99")],
            target: "p50 <= 20 µs, p99 <= 200 µs (ratios >= 1)",
        },
        Row {
            workload: "same, busy-spin wait",
            millpond: show(spun),
            baseline: format!("same in one process: {}", pct(&local_spun)),
            ratios: vec![(2_000.0 / spun[0] as f64, "2 µs / p50")],
            target: "p50 <= 2 µs (ratio >= 1)",
        },
        Row {
            workload: "another process reading the backlog (read-only broker; median of 3)",
            millpond: format!("{} (opening it: {})", mps(theirs), ms(open)),
            baseline: format!("{} read in the writer's process", mps(ours)),
            ratios: vec![(theirs / ours, "in-process rate")],
            target: ">= 0.9",
        },
        Row {
            workload: "writer's single sends with two reader processes following at nice 19 (median of 3)",
            millpond: format!("{} (readers at normal priority: {})", mps(niced), mps(watched)),
            baseline: format!("{} with no reader", mps(alone)),
            ratios: vec![(niced / alone, "rate with none"), (watched / alone, "normal priority / none")],
            target: ">= 0.95 (first ratio)",
        },
    ])
}

/// The cost of each fsync policy: single sends, rate relative to `Never`,
/// and the slowest single send (a sync that holds producers back shows
/// there). Every policy pays the same clock read per send.
fn fsync_costs(dir: &Path, n: u64) -> Result<Vec<(String, f64, Duration)>, BoxError> {
    let policies = [
        FsyncPolicy::Never,
        FsyncPolicy::EveryN(1000),
        FsyncPolicy::Interval(Duration::from_millis(10)),
        FsyncPolicy::Always,
    ];
    let mut out = Vec::new();
    for policy in policies {
        // Syncing every record is slow: measure it on fewer records.
        let count = if policy == FsyncPolicy::Always { (n / 100).max(100) } else { n };
        let broker = fresh(dir)?;
        let topic = broker.create_topic("fsync", TopicConfig::default().segment_bytes(256 << 20).fsync(policy))?;
        let producer = topic.producer();
        let value = [7u8; RECORD];
        let start = Instant::now();
        let mut slowest = Duration::ZERO;
        for _ in 0..count {
            let sent = Instant::now();
            producer.send(Record::new(&value))?;
            slowest = slowest.max(sent.elapsed());
        }
        producer.flush()?;
        out.push((format!("{policy:?}"), rate(count, start.elapsed()), slowest));
        if topic.high_watermark(0)? != count {
            return Err("fsync run lost records".into());
        }
    }
    Ok(out)
}

fn print_fsync(costs: &[(String, f64, Duration)]) {
    let never = costs.first().map_or(1.0, |c| c.1);
    println!();
    println!("| FsyncPolicy | send rate | relative to Never | slowest send |");
    println!("| --- | --- | --- | --- |");
    for (name, r, slowest) in costs {
        let rate = if *r >= 1e5 { mps(*r) } else { format!("{:.0} /s", r) };
        println!("| {name} | {rate} | {:.3} | {:.1} ms |", r / never, slowest.as_secs_f64() * 1e3);
    }
}

fn print(rows: &[Row]) {
    println!("| workload (100-byte records) | millpond | baseline, same run | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    for r in rows {
        println!("| {} | {} | {} | {} | {} |", r.workload, r.millpond, r.baseline, r.ratio_text(), r.target);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("millpond-bench-{tag}-{}", std::process::id()))
}

/// Removes a run's directories: the broker's and the commitlog's beside it.
fn tidy(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir); // tidy-up only
    let _ = std::fs::remove_dir_all(commitlog_dir(dir));
}

fn main() -> Result<(), BoxError> {
    if let Some(child) = cross_process::run_child_if_asked() {
        return child;
    }
    let quick = std::env::args().any(|a| a == "quick");
    let sizes = if quick {
        Sizes {
            records: 500_000,
            latency_records: 50_000,
            latency_rate: 100_000,
            big_backlog: 500_000,
            service_events: 3_000,
            service_rate: 1_000,
            cross_records: 5_000,
        }
    } else {
        Sizes {
            records: 2_000_000,
            latency_records: 200_000,
            latency_rate: 100_000,
            big_backlog: 2_000_000,
            service_events: 10_000,
            service_rate: 1_000,
            cross_records: 20_000,
        }
    };
    let dir = temp_dir("main");
    if std::env::args().any(|a| a == "contended") {
        // Only the contended row, for comparing changes to the append path.
        let row = contended(&dir, sizes.records);
        tidy(&dir);
        print(&[row?]);
        return Ok(());
    }
    if std::env::args().any(|a| a == "txn") {
        // Only the rows of transactions.
        let rows = transactions::rows(&dir, sizes.records);
        tidy(&dir);
        print(&rows?);
        return Ok(());
    }
    if std::env::args().any(|a| a == "send") {
        // Only single sends on a fresh topic, for comparing builds.
        let ours = medians(3, || Ok([send_rate(&dir, sizes.records, BrokerConfig::default())?]));
        tidy(&dir);
        println!("append, 1 producer, send per record (median of 3): {}", mps(ours?[0]));
        return Ok(());
    }
    if std::env::args().any(|a| a == "cross") {
        // Only the rows of reader processes.
        let rows = cross_process_rows(&dir, sizes);
        tidy(&dir);
        print(&rows?);
        return Ok(());
    }
    let rows = run(&dir, sizes);
    tidy(&dir);
    let rows = rows?;
    println!(
        "millpond {} on {} cores; crossbeam-channel, commitlog 0.2 and tokio's mpsc in the same run",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    print(&rows);
    let costs = fsync_costs(&dir, sizes.records / 4);
    tidy(&dir);
    print_fsync(&costs?);
    Ok(())
}

#[cfg(test)]
mod tests {
    /// A reader process of the cross-process rows, started by them (a
    /// no-op when the test harness runs it on its own).
    #[test]
    fn cross_process_child() {
        if let Some(child) = super::cross_process::run_child_if_asked() {
            child.unwrap();
        }
    }

    #[test]
    fn every_bench_workload_delivers_every_record() {
        let dir = super::temp_dir("test");
        let sizes = super::Sizes {
            records: 20_000,
            latency_records: 2_000,
            latency_rate: 20_000,
            big_backlog: 20_000,
            service_events: 300,
            service_rate: 1_000,
            cross_records: 500,
        };
        let rows = super::run(&dir, sizes);
        super::tidy(&dir);
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 26);
        assert!(rows.iter().all(|r| !r.ratios.is_empty() && r.ratios.iter().all(|(x, _)| x.is_finite() && *x > 0.0)));
        // Every row that has commitlog as a baseline says so in its ratios.
        let against_commitlog =
            rows.iter().filter(|r| r.ratios.iter().any(|(_, a)| a.starts_with("commitlog"))).count();
        assert_eq!(against_commitlog, 7);
        super::print(&rows);
        let costs = super::fsync_costs(&dir, 2_000);
        let _ = std::fs::remove_dir_all(&dir);
        let costs = costs.unwrap();
        assert_eq!(costs.len(), 4);
        super::print_fsync(&costs);
    }
}
