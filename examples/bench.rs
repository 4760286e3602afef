//! The performance table: millpond against crossbeam-channel (and a raw
//! memcpy into a mapped file) on the same workloads, in the same run.
//!
//! `cargo run --release --example bench` prints one row per workload with
//! both rates and their ratio. 100-byte records throughout. Pass `quick` for
//! a smaller run. The figures are only meaningful in release mode on an
//! otherwise idle machine; `cargo test` runs a tiny version that checks every
//! workload delivers every record, not the speed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use millpond::{Broker, BrokerConfig, FsyncPolicy, Record, StartFrom, TopicConfig, WaitStrategy};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const RECORD: usize = 100;

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    records: u64,
    latency_records: u64,
    latency_rate: u64,
    big_backlog: u64,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    workload: &'static str,
    millpond: String,
    baseline: String,
    ratio: f64,
    target: &'static str,
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn mps(r: f64) -> String {
    format!("{:.2} M/s", r / 1e6)
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

/// Row 1: one producer, one `send` per record; and the same with the
/// pre-fault thread (`BrokerConfig::prefault_bytes`), to show what it is worth.
fn append_single(dir: &Path, n: u64) -> Result<(Row, Row), BoxError> {
    // Medians of three runs each, the three configurations interleaved.
    let (mut ours, mut prepared, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        ours.push(send_rate(dir, n, BrokerConfig::default())?);
        prepared.push(send_rate(dir, n, BrokerConfig::default().prefault_bytes(4 << 20))?);
        theirs.push(crossbeam_send_rate(n)?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ours, prepared, theirs) = (median(ours), median(prepared), median(theirs));
    Ok((
        Row {
            workload: "append, 1 producer, send per record",
            millpond: mps(ours),
            baseline: format!("{} crossbeam send", mps(theirs)),
            ratio: ours / theirs,
            target: ">= 1.0",
        },
        Row {
            workload: "  the same with prefault_bytes(4 MiB)",
            millpond: mps(prepared),
            baseline: format!("{} without (the default)", mps(ours)),
            ratio: prepared / ours,
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
    let raw_path = dir.join("raw.bin");
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&raw_path)?;
    let len = (rounds * 1000) as usize * RECORD;
    file.set_len(len as u64)?;
    // SAFETY: the file was just created by this process and nothing else
    // maps or writes it while the map lives.
    let mut map = unsafe { memmap2::MmapMut::map_mut(&file)? };
    let start = Instant::now();
    for chunk in map.chunks_exact_mut(RECORD) {
        chunk.copy_from_slice(&value);
    }
    let theirs = rate(rounds * 1000, start.elapsed());
    drop(map);
    std::fs::remove_file(raw_path)?;
    Ok(Row {
        workload: "append, send_batch of 1,000",
        millpond: mps(ours),
        baseline: format!("{} raw memcpy into mmap", mps(theirs)),
        ratio: ours / theirs,
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
/// (`try_recv`).
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
    Ok([
        Row {
            workload: "read a backlog, 1 consumer (poll_ref of 1,000)",
            millpond: mps(batched),
            baseline: format!("{} crossbeam recv", mps(theirs)),
            ratio: batched / theirs,
            target: ">= 1.0",
        },
        Row {
            workload: "  the same, one try_recv_ref per record",
            millpond: mps(ours),
            baseline: format!("{} crossbeam recv", mps(theirs)),
            ratio: ours / theirs,
            target: "(borrowed, no batch)",
        },
        Row {
            workload: "  the same, one try_recv per record",
            millpond: mps(owned),
            baseline: format!("{} crossbeam recv", mps(theirs)),
            ratio: owned / theirs,
            target: "(owned: an Arc per message)",
        },
    ])
}

/// Rows 4 and 5: producers and consumers on their own threads.
fn concurrent(dir: &Path, n: u64, producers: u32, consumers: u32) -> Result<(f64, f64), BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("flow", big_segments().partitions(producers))?;
    let per_producer = n / u64::from(producers);
    // Each consumer reads its share of the partitions.
    let mut readers = Vec::new();
    for c in 0..consumers {
        let mine: Vec<u32> = (0..producers).filter(|p| p % consumers == c).collect();
        let expected = per_producer * mine.len() as u64;
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
                    producer.send(Record::new(&value).partition(p))?;
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

/// Rows 6 and 7: produce-to-consume latency at a fixed rate.
fn latency(dir: &Path, n: u64, per_sec: u64, wait: WaitStrategy) -> Result<(Histogram<u64>, Histogram<u64>), BoxError> {
    let broker = fresh(dir)?;
    let topic = broker.create_topic("latency", big_segments())?;
    let base = Instant::now();
    let interval = Duration::from_nanos(1_000_000_000 / per_sec);
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
    let mut value = [0u8; RECORD];
    let start = Instant::now();
    for i in 0..n {
        let due = start + interval * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        value[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        producer.send(Record::new(&value))?;
    }
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
    let start = Instant::now();
    for i in 0..n {
        let due = start + interval * i as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        value[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        tx.send(value)?;
    }
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

/// Row 8: opening a topic with many sealed segments.
fn open_time(dir: &Path, segments: u64) -> Result<Duration, BoxError> {
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
    let mut times = Vec::new();
    for _ in 0..15 {
        let start = Instant::now();
        let broker = Broker::open(dir)?;
        times.push(start.elapsed());
        if broker.topic("segments")?.stats().partitions[0].segments as u64 != segments + 1 {
            return Err("reopen lost segments".into());
        }
        broker.close()?;
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// The process's anonymous resident memory (heap), in KiB.
fn rss_anon_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Row 9: heap growth with the backlog.
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
    let (o, t) = concurrent(dir, s.records, 1, 1)?;
    rows.push(Row {
        workload: "1 producer -> 1 consumer, concurrent",
        millpond: mps(o),
        baseline: format!("{} crossbeam", mps(t)),
        ratio: o / t,
        target: ">= 1.0",
    });
    let (o, t) = concurrent(dir, s.records, 4, 2)?;
    rows.push(Row {
        workload: "4 producers -> 2 consumers",
        millpond: mps(o),
        baseline: format!("{} crossbeam 4 tx / 2 rx", mps(t)),
        ratio: o / t,
        target: ">= 1.0",
    });
    let (o, t) = median_latency(dir, s, WaitStrategy::SpinThenPark)?;
    rows.push(Row {
        workload: "latency at 100k/s, blocking (p99; median of 3 runs)",
        millpond: pct(&o),
        baseline: format!("crossbeam recv: {}", pct(&t)),
        ratio: t.value_at_quantile(0.99) as f64 / o.value_at_quantile(0.99) as f64,
        target: "p50, p99 <= crossbeam",
    });
    let (o, t) = median_latency(dir, s, WaitStrategy::BusySpin)?;
    rows.push(Row {
        workload: "latency at 100k/s, busy-spin (p50; median of 3 runs)",
        millpond: pct(&o),
        baseline: format!("crossbeam recv: {}", pct(&t)),
        ratio: 1000.0 / o.value_at_quantile(0.5) as f64,
        target: "p50 <= 1 µs (ratio = 1 µs / p50)",
    });
    let few = open_time(dir, 10)?;
    let many = open_time(dir, 100)?;
    rows.push(Row {
        workload: "open a topic with 100 sealed segments",
        millpond: format!("{:.2} ms", many.as_secs_f64() * 1e3),
        baseline: format!("{:.2} ms with 10 segments", few.as_secs_f64() * 1e3),
        ratio: few.as_secs_f64() / many.as_secs_f64(),
        target: "~1.0 (independent of count)",
    });
    let (small, big) = memory(dir, 1000, s.big_backlog)?;
    rows.push(Row {
        workload: "heap growth (RssAnon) with the backlog",
        millpond: format!("{big} KiB for {} records", s.big_backlog),
        baseline: format!("{small} KiB for 1,000 records"),
        ratio: (small.max(1) as f64) / (big.max(1) as f64),
        target: "~1.0 (flat)",
    });
    Ok(rows)
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
        println!("| {} | {} | {} | {:.2} | {} |", r.workload, r.millpond, r.baseline, r.ratio, r.target);
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("millpond-bench-{tag}-{}", std::process::id()))
}

fn main() -> Result<(), BoxError> {
    let quick = std::env::args().any(|a| a == "quick");
    let sizes = if quick {
        Sizes { records: 500_000, latency_records: 50_000, latency_rate: 100_000, big_backlog: 500_000 }
    } else {
        Sizes { records: 2_000_000, latency_records: 200_000, latency_rate: 100_000, big_backlog: 2_000_000 }
    };
    let dir = temp_dir("main");
    let rows = run(&dir, sizes);
    let _ = std::fs::remove_dir_all(&dir); // tidy-up only
    let rows = rows?;
    println!(
        "millpond {} on {} cores; crossbeam-channel in the same run",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    print(&rows);
    let costs = fsync_costs(&dir, sizes.records / 4);
    let _ = std::fs::remove_dir_all(&dir); // tidy-up only
    print_fsync(&costs?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_bench_workload_delivers_every_record() {
        let dir = super::temp_dir("test");
        let sizes = super::Sizes { records: 20_000, latency_records: 2_000, latency_rate: 20_000, big_backlog: 20_000 };
        let rows = super::run(&dir, sizes);
        let _ = std::fs::remove_dir_all(&dir);
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 12);
        assert!(rows.iter().all(|r| r.ratio.is_finite() && r.ratio > 0.0));
        super::print(&rows);
        let costs = super::fsync_costs(&dir, 2_000);
        let _ = std::fs::remove_dir_all(&dir);
        let costs = costs.unwrap();
        assert_eq!(costs.len(), 4);
        super::print_fsync(&costs);
    }
}
