//! Event sourcing: an event log as the source of truth, and a compacted
//! topic of snapshots to rebuild state from quickly.
//!
//! A bank publishes what happens to accounts — opened, deposited, withdrawn,
//! closed — to `account-events`, keyed by account. That topic keeps every
//! event: it is the history. A projector, a consumer-group member, applies
//! the events and publishes each account's new balance (a typed snapshot,
//! keyed by account) to `balances`, a [`CleanupPolicy::Compact`] topic with
//! small segments; a closed account gets a tombstone. Compaction keeps only
//! the latest snapshot of each account in sealed segments, so rebuilding
//! every balance means reading a few records per account instead of the
//! whole history.
//!
//! The example calls `Topic::compact`, rebuilds the balances by replaying
//! `balances` from the start (and, for comparison, by replaying every
//! event), checks both against the bank's own model, checks that compaction
//! removed records, and checks the rebuild again after a restart.
//!
//! Compaction also runs on its own in the broker's maintenance thread soon
//! after each segment rolls, so part of the removal is usually done before
//! `compact()` is called; the check counts all of it (snapshots written minus
//! snapshots left), and the figures show how much `compact()` itself did.
//!
//! `cargo run --release --example event_sourcing [events]`

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use millpond::{
    AutoCommit, Bincode, Broker, CleanupPolicy, CompactionReport, Decoder, Error, Record, StartFrom, Topic,
    TopicConfig, TypedConsumer,
};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What happened to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Event {
    Opened,
    Deposited { cents: u64 },
    Withdrawn { cents: u64 },
    Closed,
}

/// An event of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct AccountEvent {
    account: u32,
    event: Event,
}

/// An account's state after an event: the snapshot in `balances`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Balance {
    account: u32,
    cents: u64,
    /// Events applied to this account so far.
    version: u64,
}

/// Open accounts by number.
type Balances = BTreeMap<u32, Balance>;

/// What the run measured.
#[derive(Debug)]
struct Outcome {
    accounts: u32,
    events: u64,
    closed: u64,
    snapshots_written: u64,
    snapshots_left: u64,
    report: CompactionReport,
    bytes_before: u64,
    bytes_after: u64,
    rebuild_from_snapshots_ms: f64,
    rebuild_from_events_ms: f64,
}

fn key(account: u32) -> String {
    format!("account-{account:05}")
}

/// Applies one event; a withdrawal the balance cannot cover is an error
/// (the bank never publishes one).
fn apply(balances: &mut Balances, e: &AccountEvent) -> Result<Option<Balance>, String> {
    let account = e.account;
    match e.event {
        Event::Opened => {
            let b = Balance { account, cents: 0, version: 1 };
            balances.insert(account, b);
            return Ok(Some(b));
        }
        Event::Closed => {
            balances.remove(&account).ok_or(format!("closing unknown account {account}"))?;
            return Ok(None);
        }
        _ => {}
    }
    let b = balances.get_mut(&account).ok_or(format!("event for unknown account {account}: {e:?}"))?;
    b.cents = match e.event {
        Event::Deposited { cents } => b.cents + cents,
        Event::Withdrawn { cents } => b.cents.checked_sub(cents).ok_or(format!("account {account} overdrawn"))?,
        Event::Opened | Event::Closed => b.cents,
    };
    b.version += 1;
    Ok(Some(*b))
}

/// The bank: opens `accounts` accounts, publishes `events` deposits and
/// withdrawals (never more than the balance), then closes every tenth
/// account. Returns its own model of the balances.
fn bank(events_topic: &Topic, accounts: u32, events: u64) -> Result<(Balances, u64), BoxError> {
    let producer = events_topic.typed_producer::<AccountEvent>();
    let mut model = Balances::new();
    let publish = |model: &mut Balances, e: AccountEvent| -> Result<(), BoxError> {
        apply(model, &e)?;
        producer.send_keyed(key(e.account), &e)?;
        Ok(())
    };
    for account in 0..accounts {
        publish(&mut model, AccountEvent { account, event: Event::Opened })?;
    }
    let mut rng: u64 = 0x853c_49e6_748f_ea9b;
    for _ in 0..events {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let account = ((rng >> 33) % u64::from(accounts)) as u32;
        let cents = (rng >> 13) % 10_000 + 1;
        let event = if (rng >> 40) & 1 == 1 && model[&account].cents >= cents {
            Event::Withdrawn { cents }
        } else {
            Event::Deposited { cents }
        };
        publish(&mut model, AccountEvent { account, event })?;
    }
    let mut closed = 0;
    for account in (0..accounts).filter(|a| a % 10 == 9) {
        publish(&mut model, AccountEvent { account, event: Event::Closed })?;
        closed += 1;
    }
    Ok((model, closed))
}

/// The projector: applies every event and publishes each account's new
/// snapshot (or a tombstone when it closes) to `balances`. Commits when
/// idle. Returns the number of snapshots and tombstones written.
fn project(events_topic: &Topic, balances_topic: &Topic, stop: &AtomicBool) -> Result<u64, BoxError> {
    let member = events_topic.group("balance-projector")?.auto_commit(AutoCommit::Off).join()?;
    let mut events = TypedConsumer::<AccountEvent, Bincode, _>::new(member, Bincode);
    let snapshots = balances_topic.typed_producer::<Balance>();
    let tombstones = balances_topic.producer();
    let (mut state, mut written, mut uncommitted) = (Balances::new(), 0, false);
    loop {
        // Read before receiving: if the bank was done before this receive
        // found nothing, every event has been applied.
        let stopping = stop.load(Ordering::SeqCst);
        let Some(m) = events.recv_timeout(Duration::from_millis(20))? else {
            if uncommitted {
                events.source_mut().commit()?;
                uncommitted = false;
            }
            if stopping {
                break;
            }
            continue;
        };
        match apply(&mut state, &m.value)? {
            Some(balance) => snapshots.send_keyed(key(balance.account), &balance)?,
            None => tombstones.send(Record::tombstone(key(m.value.account)))?,
        };
        written += 1;
        uncommitted = true;
    }
    events.into_inner().close()?;
    Ok(written)
}

/// Rebuilds the balances from the snapshots in `balances`, returning them
/// and the number of records read.
fn rebuild_from_snapshots(balances_topic: &Topic) -> Result<(Balances, u64), BoxError> {
    let (mut balances, mut read) = (Balances::new(), 0);
    for m in balances_topic.consumer(StartFrom::Earliest)?.try_iter() {
        let m = m?;
        read += 1;
        let account: u32 =
            std::str::from_utf8(m.key().ok_or("a snapshot without a key")?)?.trim_start_matches("account-").parse()?;
        if m.is_tombstone() {
            balances.remove(&account);
        } else {
            let b: Balance = Bincode.decode(m.value()).map_err(|reason| Error::Decode {
                topic: balances_topic.name().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                reason,
            })?;
            balances.insert(account, b);
        }
    }
    Ok((balances, read))
}

/// Rebuilds the balances from the whole event history.
fn rebuild_from_events(events_topic: &Topic) -> Result<Balances, BoxError> {
    let mut balances = Balances::new();
    let mut events = events_topic.typed_consumer::<AccountEvent>(StartFrom::Earliest)?;
    while let Some(m) = events.try_recv()? {
        apply(&mut balances, &m.value)?;
    }
    Ok(balances)
}

fn open_topics(broker: &Broker) -> Result<(Topic, Topic), BoxError> {
    let events = broker.create_topic("account-events", TopicConfig::default().partitions(4))?;
    let snapshots = TopicConfig::default()
        .partitions(4)
        .segment_bytes(16 << 10)
        .max_record_bytes(1024)
        .cleanup(CleanupPolicy::Compact);
    Ok((events, broker.create_topic("balances", snapshots)?))
}

fn run(dir: &Path, accounts: u32, events: u64) -> Result<Outcome, BoxError> {
    let broker = Broker::open(dir)?;
    let (events_topic, balances_topic) = open_topics(&broker)?;

    let stop = Arc::new(AtomicBool::new(false));
    let projector = {
        let (e, b, stop) = (events_topic.clone(), balances_topic.clone(), Arc::clone(&stop));
        std::thread::spawn(move || project(&e, &b, &stop))
    };
    let bank_result = bank(&events_topic, accounts, events);
    stop.store(true, Ordering::SeqCst);
    let snapshots_written = projector.join().map_err(|_| "the projector panicked")??;
    let (model, closed) = bank_result?;
    let published = u64::from(accounts) + events + closed;
    if snapshots_written != published {
        return Err(format!("{snapshots_written} snapshots for {published} events").into());
    }

    let bytes_before = balances_topic.stats().bytes();
    let report = balances_topic.compact()?;
    let bytes_after = balances_topic.stats().bytes();

    let t = Instant::now();
    let (from_snapshots, snapshots_left) = rebuild_from_snapshots(&balances_topic)?;
    let rebuild_from_snapshots_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let from_events = rebuild_from_events(&events_topic)?;
    let rebuild_from_events_ms = t.elapsed().as_secs_f64() * 1e3;
    if from_snapshots != model {
        return Err("the balances rebuilt from the compacted snapshots differ from the bank's".into());
    }
    if from_events != model {
        return Err("the balances rebuilt from the event history differ from the bank's".into());
    }
    let removed = snapshots_written - snapshots_left;
    if removed == 0 || report.records_removed > removed {
        return Err(format!("compaction removed {removed} snapshots in all, compact() reported {report:?}").into());
    }

    // After a restart the compacted topic still rebuilds the same balances.
    drop((events_topic, balances_topic));
    drop(broker);
    let broker = Broker::open(dir)?;
    let (after_restart, left_after_restart) = rebuild_from_snapshots(&broker.topic("balances")?)?;
    if after_restart != model || left_after_restart > snapshots_left {
        return Err("after a restart the compacted topic rebuilt different balances".into());
    }

    Ok(Outcome {
        accounts,
        events,
        closed,
        snapshots_written,
        snapshots_left,
        report,
        bytes_before,
        bytes_after,
        rebuild_from_snapshots_ms,
        rebuild_from_events_ms,
    })
}

fn main() -> Result<(), BoxError> {
    let events: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    let dir = std::env::temp_dir().join(format!("millpond-event-sourcing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a fresh directory
    let outcome = run(&dir, 1_000, events);
    std::fs::remove_dir_all(&dir)?;
    let o = outcome?;
    let history = u64::from(o.accounts) + o.events + o.closed;
    println!(
        "{} accounts, {} deposits and withdrawals, {} accounts closed: {history} events in the log",
        o.accounts, o.events, o.closed
    );
    println!(
        "  balances topic: {} snapshots written, {} left after compaction ({} removed in all)",
        o.snapshots_written,
        o.snapshots_left,
        o.snapshots_written - o.snapshots_left
    );
    println!(
        "  compact() itself: {} records removed from {} segments; topic {} -> {} bytes (the maintenance thread did the rest as segments rolled)",
        o.report.records_removed, o.report.segments_rewritten, o.bytes_before, o.bytes_after
    );
    println!(
        "  rebuild: {} snapshot records in {:.1} ms vs {history} events in {:.1} ms",
        o.snapshots_left, o.rebuild_from_snapshots_ms, o.rebuild_from_events_ms
    );
    println!("ok: balances rebuilt from the compacted topic (also after a restart) equal the bank's");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn compacted_snapshots_rebuild_the_balances() {
        let dir = std::env::temp_dir().join(format!("millpond-event-sourcing-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let outcome = super::run(&dir, 50, 10_000);
        std::fs::remove_dir_all(&dir).unwrap();
        let o = outcome.unwrap();
        assert_eq!(o.snapshots_written, 50 + 10_000 + 5);
        assert!(o.snapshots_left < o.snapshots_written / 2);
    }
}
