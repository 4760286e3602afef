//! [`Mirror`]: copies a topic into a topic of another broker (another disk,
//! a backup directory), on a thread of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::bridge::worker::poll_past_retention;
use crate::broker::topic::Topic;
use crate::client::consumer_group::group::Group;
use crate::client::consumer_group::member::GroupMember;
use crate::client::consumer_group::policy::{AutoCommit, OffsetReset};
use crate::client::produce::producer::Producer;
use crate::error::{Error, Result};
use crate::storage::background::Worker;
use crate::storage::record::Record;

/// Records copied per round (one `send_batch`, one flush, one commit).
const BATCH: usize = 1000;
/// How long a round waits for the first record, which bounds how long
/// [`Mirror::stop`] takes.
const POLL: Duration = Duration::from_millis(50);

/// Copies every record of a source topic into a destination topic (usually
/// of another [`Broker`](crate::Broker)), preserving partition, key,
/// headers, timestamp and tombstones, on a thread of its own.
///
/// The mirror reads the source as a member of a consumer group, so it
/// resumes after a restart from where it left off. Each round it appends a
/// batch to the destination, flushes it (msync + fsync), and only then
/// commits the batch's source offsets: delivery is at-least-once, even if
/// the machine crashes (records between the last commit and a crash are
/// copied again). Records the source's retention deletes before the mirror
/// copies them cannot be copied: the mirror counts them
/// ([`Mirror::skipped`]) and goes on with the oldest record still stored.
/// Destination offsets are the destination's own; the source offset
/// travels in nothing but order, so compare by content or key.
///
/// The destination must have the same number of partitions as the source
/// ([`Error::InvalidConfig`] otherwise). Stop it with [`Mirror::stop`],
/// which finishes the round in progress, commits, and reports any error the
/// thread met; dropping a `Mirror` stops it the same way.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Mirror, Record, StartFrom, TopicConfig};
/// # let base = std::env::temp_dir().join(format!("millpond-doc-mirror-{}", std::process::id()));
/// let primary = Broker::open(base.join("primary"))?;
/// let backup = Broker::open(base.join("backup"))?;
/// let orders = primary.create_topic("orders", TopicConfig::default().partitions(2))?;
/// let copy = backup.create_topic("orders", TopicConfig::default().partitions(2))?;
/// orders.producer().send_batch((0..100).map(|i| Record::new(format!("order-{i}")).key(format!("{}", i % 7))))?;
///
/// let mirror = Mirror::start(&orders, &copy, "backup-mirror")?;
/// while mirror.lag()? > 0 {
///     std::thread::sleep(std::time::Duration::from_millis(5));
/// }
/// assert_eq!(mirror.mirrored(), 100);
/// assert_eq!(mirror.skipped(), 0); // it kept up with the source's retention
/// mirror.stop()?;
/// assert_eq!(copy.consumer(StartFrom::Earliest)?.try_iter().count(), 100);
/// # drop((orders, copy, primary, backup)); std::fs::remove_dir_all(&base)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Mirror {
    group: Group,
    mirrored: Arc<AtomicU64>,
    skipped: Arc<AtomicU64>,
    worker: Worker,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("group", &self.group.name())
            .field("mirrored", &self.mirrored())
            .field("running", &self.is_running())
            .finish()
    }
}

impl Mirror {
    /// Starts mirroring `source` into `destination`, tracking progress as
    /// consumer group `group` of the source (which starts at the source's
    /// earliest offset the first time).
    ///
    /// See [`Mirror`] for an example.
    pub fn start(source: &Topic, destination: &Topic, group: &str) -> Result<Mirror> {
        if source.partitions() != destination.partitions() {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "mirror destination {:?} has {} partitions, the source {:?} has {}; they must match",
                    destination.name(),
                    destination.partitions(),
                    source.name(),
                    source.partitions()
                ),
            });
        }
        let group = source.group(group)?.auto_commit(AutoCommit::Off).offset_reset(OffsetReset::Earliest);
        let mut member = group.join()?;
        let producer = destination.producer();
        let mirrored = Arc::new(AtomicU64::new(0));
        let skipped = Arc::new(AtomicU64::new(0));
        let counters = (Arc::clone(&mirrored), Arc::clone(&skipped));
        let worker = Worker::spawn(format!("millpond-mirror-{}", source.name()), "mirror", move |stop| {
            let copied = run(&mut member, &producer, (&counters.0, &counters.1), stop);
            // Leave the group; every copied batch is already committed.
            let left = member.close();
            copied.and(left)
        })?;
        Ok(Mirror { group, mirrored, skipped, worker })
    }

    /// Records copied since this mirror started.
    ///
    /// See [`Mirror`] for an example.
    pub fn mirrored(&self) -> u64 {
        self.mirrored.load(Ordering::Relaxed)
    }

    /// Source records retention deleted before the mirror copied them (it
    /// goes on with the oldest record still stored; see [`Error::Lagged`]).
    /// Zero unless the mirror fell behind the source's retention.
    ///
    /// See [`Mirror`] for an example.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Source records not yet copied and committed: the mirror group's lag.
    ///
    /// See [`Mirror`] for an example.
    pub fn lag(&self) -> Result<u64> {
        // The mirror's own group: before its first commit it has none, and
        // then everything is its lag (not a group that "does not exist").
        Ok(self.group.lag_of_any()?.iter().map(|l| l.lag).sum())
    }

    /// Whether the thread is still copying (it stops on [`stop`](Mirror::stop)
    /// or on an error, which [`error`](Mirror::error) then describes).
    ///
    /// ```
    /// # use millpond::{Broker, Mirror, TopicConfig};
    /// # let base = std::env::temp_dir().join(format!("millpond-doc-mirror-run-{}", std::process::id()));
    /// # let a = Broker::open(base.join("a"))?; let b = Broker::open(base.join("b"))?;
    /// # let (src, dst) = (a.create_topic("t", TopicConfig::default())?, b.create_topic("t", TopicConfig::default())?);
    /// let mirror = Mirror::start(&src, &dst, "m")?;
    /// assert!(mirror.is_running());
    /// assert_eq!(mirror.error(), None);
    /// mirror.stop()?;
    /// # drop((src, dst, a, b)); std::fs::remove_dir_all(&base)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.worker.is_running()
    }

    /// The error that stopped the thread, if any.
    ///
    /// See [`Mirror::is_running`] for an example.
    pub fn error(&self) -> Option<String> {
        self.worker.error()
    }

    /// Stops the mirror after the round in progress (which is committed) and
    /// returns the error that stopped it early, if any.
    ///
    /// See [`Mirror`] for an example.
    pub fn stop(mut self) -> Result<()> {
        self.worker.halt()
    }
}

/// The mirror thread: poll, copy, flush, commit, until told to stop.
fn run(
    member: &mut GroupMember,
    producer: &Producer,
    (mirrored, skipped): (&AtomicU64, &AtomicU64),
    stop: &AtomicBool,
) -> Result<()> {
    while !stop.load(Ordering::SeqCst) {
        let batch = poll_past_retention(member, BATCH, POLL, skipped)?;
        if batch.is_empty() {
            continue;
        }
        let records = batch.iter().map(|m| {
            let mut r =
                if m.is_tombstone() { Record::tombstone(m.key().unwrap_or_default()) } else { Record::new(m.value()) };
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            for (name, value) in m.headers() {
                r = r.header(name, value);
            }
            r.timestamp(m.timestamp()).partition(m.partition())
        });
        producer.send_batch(records)?;
        producer.flush()?;
        member.commit()?;
        mirrored.fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}
