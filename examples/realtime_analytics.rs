//! Real-time analytics: page views counted per page in tumbling one-second
//! windows of event time.
//!
//! A web tier publishes page views to `page-views`, keyed by page, each with
//! the time it happened as its record timestamp (explicit, so the run is
//! deterministic) — slightly out of order, as events from many servers are.
//! A counter, a consumer-group member, assigns each view to the one-second
//! window its timestamp falls in and counts views per page and window. It
//! keeps a watermark per partition (the largest timestamp seen minus the
//! allowed lateness); once the watermark passes a window's end, the window
//! can no longer change, and its counts are emitted to `page-view-counts`
//! (key: page, value: count, timestamp: window start). Open windows are
//! flushed when the stream ends.
//!
//! The check: the emitted counts equal the counts computed directly from
//! the generated views, each (page, window) is emitted exactly once, and no
//! view arrived later than the allowed lateness.
//!
//! `cargo run --release --example realtime_analytics [views]`

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Producer, Record, StartFrom, Topic, TopicConfig};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PAGES: u64 = 20;
const WINDOW_MS: i64 = 1_000;
const LATENESS_MS: i64 = 200;
/// Event time of the first view: 2024-01-01T00:00:00Z.
const START_MS: i64 = 1_704_067_200_000;

/// (page, window start) -> views.
type Counts = BTreeMap<(String, i64), u64>;

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    views: u64,
    windows: u64,
    results: u64,
    late: u64,
    busiest: Option<((String, i64), u64)>,
    secs: f64,
}

/// View `i`: its page and event time. Views are 3 ms apart on average and
/// up to 150 ms out of order, well within the allowed lateness.
fn view(i: u64) -> (String, i64) {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let page = (h >> 40) % PAGES;
    // Some pages are far more popular than others.
    let page = format!("/page/{}", page * page % PAGES);
    let jitter = ((h >> 20) % 150) as i64;
    (page, START_MS + i as i64 * 3 - jitter)
}

fn window_of(ts: i64) -> i64 {
    ts - ts.rem_euclid(WINDOW_MS)
}

/// The counting state of one partition.
#[derive(Default)]
struct PartitionWindows {
    max_ts: Option<i64>,
    open: BTreeMap<(i64, String), u64>, // (window start, page) -> views
}

impl PartitionWindows {
    /// Emits, in window order, every open window that ends at or before
    /// `watermark` (all of them if `None`).
    fn emit(&mut self, watermark: Option<i64>, results: &Producer) -> Result<u64, BoxError> {
        let mut done = Vec::new();
        for (&(window, ref page), &count) in &self.open {
            if watermark.is_some_and(|w| window + WINDOW_MS > w) {
                break;
            }
            done.push((window, page.clone(), count));
        }
        let emitted = done.len() as u64;
        let records = done.iter().map(|(window, page, count)| {
            Record::new(count.to_string())
                .key(page.as_str())
                .timestamp(*window)
                .header("window-end", (window + WINDOW_MS).to_string())
        });
        results.send_batch(records)?;
        for (window, page, _) in done {
            self.open.remove(&(window, page));
        }
        Ok(emitted)
    }
}

/// The counter: counts views per page and window, emits closed windows.
/// Returns (results emitted, late views).
fn count(views: &Topic, results: &Topic, stop: &AtomicBool) -> Result<(u64, u64), BoxError> {
    // The open windows live in memory, so this member commits only when it
    // has emitted everything (a job that must survive crashes would
    // checkpoint its windows with its offsets).
    let mut member = views.group("page-view-counter")?.auto_commit(AutoCommit::Off).join()?;
    let producer = results.producer();
    let mut partitions: HashMap<u32, PartitionWindows> = HashMap::new();
    let (mut emitted, mut late) = (0, 0);
    loop {
        // Read before polling: if the web tier was done before this poll
        // found nothing, every view has been counted.
        let stopping = stop.load(Ordering::SeqCst);
        let batch = member.poll(1_000, Duration::from_millis(20))?;
        if batch.is_empty() && stopping {
            break;
        }
        let mut touched = Vec::new();
        for m in &batch {
            let state = partitions.entry(m.partition()).or_default();
            let window = window_of(m.timestamp());
            let watermark = state.max_ts.map(|t| t - LATENESS_MS);
            if watermark.is_some_and(|w| window + WINDOW_MS <= w) {
                late += 1; // its window was already emitted
                continue;
            }
            let page = String::from_utf8(m.key().ok_or("a view without a page")?.to_vec())?;
            *state.open.entry((window, page)).or_insert(0) += 1;
            state.max_ts = Some(state.max_ts.map_or(m.timestamp(), |t| t.max(m.timestamp())));
            touched.push(m.partition());
        }
        touched.sort_unstable();
        touched.dedup();
        for p in touched {
            if let Some(state) = partitions.get_mut(&p) {
                let watermark = state.max_ts.map(|t| t - LATENESS_MS);
                emitted += state.emit(watermark, &producer)?;
            }
        }
    }
    // End of stream: every open window is final.
    for state in partitions.values_mut() {
        emitted += state.emit(None, &producer)?;
    }
    member.commit()?;
    member.close()?;
    Ok((emitted, late))
}

fn run(dir: &Path, views: u64) -> Result<Outcome, BoxError> {
    let broker = millpond::Broker::open(dir)?;
    let views_topic = broker.create_topic("page-views", TopicConfig::default().partitions(3))?;
    let results_topic = broker.create_topic("page-view-counts", TopicConfig::default())?;
    let start = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (v, r, stop) = (views_topic.clone(), results_topic.clone(), Arc::clone(&stop));
        std::thread::spawn(move || count(&v, &r, &stop))
    };

    // The web tier publishes the views, in batches as a web server would.
    let producer = views_topic.producer();
    let mut model = Counts::new();
    let mut batch = Vec::new();
    for i in 0..views {
        let (page, ts) = view(i);
        *model.entry((page.clone(), window_of(ts))).or_insert(0) += 1;
        batch.push(Record::new(format!("user-{}", i % 1_000)).key(page).timestamp(ts));
        if batch.len() == 100 || i + 1 == views {
            producer.send_batch(batch.drain(..))?;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (emitted, late) = counter.join().map_err(|_| "the counter panicked")??;
    let secs = start.elapsed().as_secs_f64();

    // Check: the emitted counts are the model's, each emitted once.
    let mut counted = Counts::new();
    let mut results = 0;
    for m in results_topic.consumer(StartFrom::Earliest)?.try_iter() {
        let m = m?;
        results += 1;
        let page = String::from_utf8(m.key().ok_or("a result without a page")?.to_vec())?;
        let n: u64 = std::str::from_utf8(m.value())?.parse()?;
        if counted.insert((page.clone(), m.timestamp()), n).is_some() {
            return Err(format!("window {} of {page} emitted twice", m.timestamp()).into());
        }
    }
    if late != 0 {
        return Err(format!("{late} views arrived after their window was emitted").into());
    }
    if counted != model || results != emitted {
        let wrong = model.iter().filter(|(k, v)| counted.get(*k) != Some(*v)).count();
        return Err(format!("{wrong} of {} (page, window) counts are missing or wrong", model.len()).into());
    }
    let windows = model.keys().map(|(_, w)| *w).collect::<std::collections::BTreeSet<_>>().len() as u64;
    let busiest = model.iter().max_by_key(|(_, v)| **v).map(|(k, v)| (k.clone(), *v));
    Ok(Outcome { views, windows, results, late, busiest, secs })
}

fn main() -> Result<(), BoxError> {
    let views: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-realtime-analytics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, views);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    println!(
        "{} page views over {} one-second windows of event time counted in {:.2} s ({:.0} views/s)",
        o.views,
        o.windows,
        o.secs,
        o.views as f64 / o.secs
    );
    println!("  {} (page, window) counts emitted to page-view-counts; {} late views", o.results, o.late);
    if let Some(((page, window), n)) = &o.busiest {
        println!("  busiest: {page} with {n} views in the window at +{} s", (window - START_MS) / 1_000);
    }
    println!("ok: every emitted count equals the model's, each (page, window) exactly once");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn window_counts_match_the_model() {
        let dir = std::env::temp_dir().join(format!("millpond-realtime-analytics-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 20_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.views, 20_000);
        assert_eq!(o.late, 0);
        assert!(o.windows >= 59, "20,000 views 3 ms apart span about 60 s");
        assert!(o.results > o.windows);
    }
}
