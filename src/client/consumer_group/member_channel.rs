//! [`MemberChannel`]: a group member on its own thread, feeding a
//! `crossbeam_channel::Receiver`, committing only what the application
//! acknowledged as handled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};
use parking_lot::Mutex;

use crate::client::consume::wakeup::WakeupHandle;
use crate::client::consumer_group::member::GroupMember;
use crate::client::consumer_group::policy::AutoCommit;
use crate::client::consumer_group::rebalance::{RebalanceEvent, RebalanceKind};
use crate::error::{Error, Result};
use crate::storage::background::spawn_thread;
use crate::storage::message::Message;

/// How often a thread blocked on a full channel checks for a stop request.
const STOP_CHECK: Duration = Duration::from_millis(20);
/// How often acknowledged offsets are committed when the group does not
/// auto-commit on an interval of its own.
const DEFAULT_COMMIT_EVERY: Duration = Duration::from_secs(1);

/// What the application has handled: per partition, the offset after the
/// last record acknowledged.
#[derive(Debug, Default)]
struct Acks {
    next: Mutex<BTreeMap<u32, u64>>,
}

impl Acks {
    fn ack(&self, partition: u32, offset: u64) {
        let mut next = self.next.lock();
        let e = next.entry(partition).or_insert(0);
        *e = (*e).max(offset.saturating_add(1));
    }

    /// The acknowledged offsets of `partitions`.
    fn of(&self, partitions: &[u32]) -> Vec<(u32, u64)> {
        let next = self.next.lock();
        partitions.iter().filter_map(|p| next.get(p).map(|&o| (*p, o))).collect()
    }

    fn forget(&self, partitions: &[u32]) {
        let mut next = self.next.lock();
        for p in partitions {
            next.remove(p);
        }
    }
}

/// Acknowledges records of a [`MemberChannel`] as handled, from any
/// thread: `Clone + Send + Sync`. From [`MemberChannel::acker`].
///
/// See [`MemberChannel`] for an example.
#[derive(Debug, Clone)]
pub struct Acker {
    acks: Arc<Acks>,
}

impl Acker {
    /// Marks `message`, and every earlier record of its partition, as
    /// handled: the member may commit past it. Acknowledge in order per
    /// partition (a later record acknowledged first covers the earlier
    /// ones).
    ///
    /// See [`MemberChannel`] for an example.
    pub fn ack(&self, message: &Message) {
        self.acks.ack(message.partition(), message.offset());
    }

    /// Marks the records of `partition` up to and including `offset` as
    /// handled.
    ///
    /// See [`MemberChannel`] for an example.
    pub fn ack_offset(&self, partition: u32, offset: u64) {
        self.acks.ack(partition, offset);
    }
}

/// A [`GroupMember`] running on a thread of its own, forwarding each record
/// into a bounded crossbeam channel (for `select!`), that commits only the
/// records the application acknowledged ([`MemberChannel::ack`] or an
/// [`Acker`] from any thread): never records still waiting in the channel.
/// Made by [`GroupMember::into_channel`].
///
/// Commits happen on the member's thread: every interval of the group's
/// [`AutoCommit::Interval`] (1 s when the group does not auto-commit), when
/// a partition is revoked (its acknowledged offset, before the next owner
/// takes it, in place of the position a member commits by itself), and
/// when the channel stops. So a crash re-delivers at most what was received
/// but not acknowledged, or acknowledged since the last commit:
/// at-least-once. Records of a partition the member lost that are still in
/// the channel are read again by their new owner (their acknowledgements
/// no longer count). A rebalance listener installed before still runs,
/// after this one's commit.
///
/// The channel yields `Ok(message)` and at most one `Err` for a failure,
/// after which the thread stops ([`Error::Lagged`] is passed on and the
/// thread goes on); when the broker closes or the topic is deleted it
/// disconnects. A full channel holds the thread back.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, TopicConfig};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-memberchan-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("jobs", TopicConfig::default())?;
/// topic.producer().send_batch((0..10).map(|i| Record::new(format!("job-{i}"))))?;
/// let group = topic.group("workers")?;
/// let jobs = group.join()?.into_channel(4);
/// for _ in 0..6 {
///     let job = jobs.receiver().recv_timeout(Duration::from_secs(5))??;
///     // ... handle it, then:
///     jobs.ack(&job);
/// }
/// jobs.stop()?; // commits what was acknowledged, and leaves
/// assert_eq!(group.committed()?[&0], 6); // not the records left in the channel
/// # drop((group, topic, broker)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemberChannel {
    rx: Receiver<Result<Message>>,
    acks: Arc<Acks>,
    stop: Arc<AtomicBool>,
    wakeup: WakeupHandle,
    thread: Option<JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for MemberChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberChannel").field("buffered", &self.rx.len()).finish()
    }
}

impl MemberChannel {
    fn spawn(mut member: GroupMember, capacity: usize) -> MemberChannel {
        let (tx, rx) = bounded(capacity);
        let acks = Arc::new(Acks::default());
        let stop = Arc::new(AtomicBool::new(false));
        let wakeup = member.wakeup_handle();
        let (auto, earlier) = member.membership_mut().map_or((AutoCommit::Off, None), |m| m.hand_over_commits());
        let every = match auto {
            AutoCommit::Interval(d) => d,
            _ => DEFAULT_COMMIT_EVERY,
        };
        let on_revoke = Arc::clone(&acks);
        let mut earlier = earlier;
        member.on_rebalance(move |e: &RebalanceEvent<'_>| {
            if e.kind() == RebalanceKind::Revoked {
                // Still owned until the listener returns: commit what was
                // handled, so the next owner starts there.
                let handled = on_revoke.of(e.partitions());
                if !handled.is_empty()
                    && let Err(err) = e.commit(&handled)
                {
                    log::warn!("millpond: member channel: commit at revocation failed: {err}");
                }
                on_revoke.forget(e.partitions());
            }
            if let Some(l) = earlier.as_mut() {
                l(e);
            }
        });
        let (flag, thread_acks) = (Arc::clone(&stop), Arc::clone(&acks));
        let name = format!("millpond-member-{}", member.topic().name());
        let thread = spawn_thread(name, move || run(member, &tx, &flag, &thread_acks, every));
        match thread {
            Ok(handle) => MemberChannel { rx, acks, stop, wakeup, thread: Some(handle) },
            Err(e) => {
                // No thread: the channel reports why and is disconnected.
                let (tx, rx) = bounded(1);
                let _ = tx.send(Err(e)); // cannot fail: capacity 1
                MemberChannel { rx, acks, stop, wakeup, thread: None }
            }
        }
    }

    /// The receiving end, for `recv`, `iter` or `select!`. It may be cloned.
    ///
    /// See [`MemberChannel`] for an example.
    pub fn receiver(&self) -> &Receiver<Result<Message>> {
        &self.rx
    }

    /// Marks `message` (and the earlier records of its partition) handled.
    ///
    /// See [`MemberChannel`] for an example.
    pub fn ack(&self, message: &Message) {
        self.acks.ack(message.partition(), message.offset());
    }

    /// A handle for acknowledging from other threads or tasks.
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-acker-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("x"))?;
    /// let group = topic.group("g")?;
    /// let channel = group.join()?.into_channel(8);
    /// let acker = channel.acker();
    /// let m = channel.receiver().recv_timeout(Duration::from_secs(5))??;
    /// std::thread::spawn(move || acker.ack(&m)).join().unwrap();
    /// channel.stop()?;
    /// assert_eq!(group.committed()?[&0], 1);
    /// # drop((group, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acker(&self) -> Acker {
        Acker { acks: Arc::clone(&self.acks) }
    }

    /// Stops the thread, commits what was acknowledged and leaves the
    /// group; the error of that last commit, or of the thread, if any.
    ///
    /// See [`MemberChannel`] for an example.
    pub fn stop(mut self) -> Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.wakeup.wake();
        match self.thread.take() {
            Some(t) => t.join().unwrap_or(Err(Error::ThreadPanicked { what: "member channel" })),
            None => Ok(()),
        }
    }
}

impl Drop for MemberChannel {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            log::warn!("millpond: member channel: final commit failed: {e}");
        }
    }
}

/// Commits the acknowledged offsets of the partitions `member` owns.
fn commit_acked(member: &mut GroupMember, acks: &Acks) -> Result<()> {
    let handled = acks.of(&member.assignment());
    if handled.is_empty() { Ok(()) } else { member.commit_offsets(&handled) }
}

/// The thread: receive, forward, commit what was acknowledged, until
/// stopped, closed or disconnected; then a last commit and leave.
fn run(
    mut member: GroupMember,
    tx: &Sender<Result<Message>>,
    stop: &AtomicBool,
    acks: &Acks,
    every: Duration,
) -> Result<()> {
    let mut last_commit = Instant::now();
    // Commits on the interval, also while the thread waits for room in a
    // full channel (the application acknowledges meanwhile).
    let mut commit_if_due = |member: &mut GroupMember| {
        if last_commit.elapsed() >= every {
            if let Err(e) = commit_acked(member, acks) {
                log::warn!("millpond: member channel: commit failed: {e}");
            }
            last_commit = Instant::now();
        }
    };
    let mut result = Ok(());
    'receive: while !stop.load(Ordering::SeqCst) {
        commit_if_due(&mut member);
        let item = match member.recv_timeout(every) {
            Ok(Some(m)) => Ok(m),
            Ok(None) | Err(Error::Interrupted) => continue, // re-check the flag and the clock
            Err(Error::Closed | Error::TopicDeleted { .. }) => return Ok(()),
            Err(e) => Err(e),
        };
        let last = matches!(&item, Err(e) if !matches!(e, Error::Lagged { .. }));
        let mut item = item;
        loop {
            match tx.send_timeout(item, STOP_CHECK) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(back)) if !stop.load(Ordering::SeqCst) => {
                    commit_if_due(&mut member);
                    item = back;
                }
                // Stopped or nobody listens: what was not forwarded was not
                // acknowledged, so it is not committed either.
                Err(_) => break 'receive,
            }
        }
        if last {
            break;
        }
    }
    if member.topic().unusable().is_none() {
        result = commit_acked(&mut member, acks);
    }
    // Auto-commit was handed over, so closing commits nothing more.
    result.and(member.close())
}

impl GroupMember {
    /// Moves this member onto a thread of its own that forwards records
    /// into a bounded `crossbeam_channel` of `capacity`, committing only
    /// what the application acknowledges (see [`MemberChannel`]).
    ///
    /// See [`MemberChannel`] for an example.
    pub fn into_channel(self, capacity: usize) -> MemberChannel {
        MemberChannel::spawn(self, capacity)
    }
}
