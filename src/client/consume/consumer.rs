//! [`Consumer`]: reads a topic's partitions from a position of its own, with
//! crossbeam-channel's receive vocabulary and Kafka's `poll`/`seek`.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::broker::topic::Topic;
use crate::client::consume::cursor_set::CursorSet;
use crate::client::consume::start_from::StartFrom;
use crate::client::consume::waiting::{WaitStrategy, Waiter};
use crate::client::consume::wakeup::WakeupHandle;
use crate::client::consumer_group::membership::Membership;
use crate::client::consumer_group::policy::OffsetReset;
use crate::error::{Error, Result};
use crate::storage::batch::Batch;
use crate::storage::cursor::Found;
use crate::storage::health::{BackgroundError, BackgroundTask};
use crate::storage::message::Message;
use crate::storage::message_ref::MessageRef;
use crate::storage::notify::{Notifier, WaitCell};

/// Reads records from a topic's partitions, at its own pace, from its own
/// position per partition.
///
/// A consumer is owned by one thread (`Send`, not `Sync`). It takes records
/// from its partitions in turn, one at a time, so a busy partition never
/// starves a quiet one. Receiving never takes the producers' lock.
///
/// | method | waits? | returns |
/// | --- | --- | --- |
/// | [`try_recv`](Consumer::try_recv) | never | `Ok(None)` if nothing is there |
/// | [`recv`](Consumer::recv) | until a record arrives | the record |
/// | [`recv_timeout`](Consumer::recv_timeout), [`recv_deadline`](Consumer::recv_deadline) | at most until the timeout | `Ok(None)` on timeout |
/// | [`poll`](Consumer::poll) | at most the timeout, for the first record | up to `max` records |
/// | [`iter`](Consumer::iter) | yes | records until the broker closes |
/// | [`try_iter`](Consumer::try_iter) | never | the records available now |
///
/// Waiting follows the consumer's [`WaitStrategy`]: by default it spins
/// briefly, then parks until a producer wakes it. When the broker is closed
/// or dropped, or the topic deleted, waiting consumers wake with
/// [`Error::Closed`] or [`Error::TopicDeleted`].
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-consumer-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("jobs", TopicConfig::default().partitions(2))?;
/// let mut consumer = topic.consumer(StartFrom::Earliest)?;
///
/// let producer = topic.producer();
/// let worker = std::thread::spawn(move || producer.send(Record::new("job-1")));
///
/// let m = consumer.recv()?; // blocks until the record arrives
/// assert_eq!(m.value(), b"job-1");
/// assert!(consumer.try_recv()?.is_none());
/// assert!(consumer.recv_timeout(Duration::from_millis(10))?.is_none());
/// worker.join().unwrap()?;
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Consumer {
    cursors: CursorSet,
    waiter: Waiter,
    /// Present when this consumer is a group member: it updates the
    /// cursor set at the start of each receive call.
    pub(crate) membership: Option<Box<Membership>>,
    /// The places of the records of the last [`Batch`], reused by every
    /// `poll_ref` so batches allocate nothing once it has grown.
    batch: Vec<Found>,
    /// An error met while `poll` was gathering records after the first,
    /// whose effect already happened (a `Lagged` jump): returned by the
    /// next receive call, so it is reported once, after the records
    /// gathered before it.
    pending: Option<Error>,
    /// A consumer is used from one thread at a time.
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("topic", &self.cursors.topic().name())
            .field("positions", &self.positions())
            .finish()
    }
}

impl Consumer {
    pub(crate) fn new(topic: Topic, partitions: Vec<u32>, from: StartFrom) -> Result<Consumer> {
        Ok(Consumer {
            cursors: CursorSet::new(topic, partitions, from)?,
            waiter: Waiter::default(),
            membership: None,
            batch: Vec::new(),
            pending: None,
            _not_sync: PhantomData,
        })
    }

    /// Sets how this consumer waits for records.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig, WaitStrategy};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-wait-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let c = topic.consumer(StartFrom::Latest)?.wait_strategy(WaitStrategy::BusySpin);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Self {
        self.waiter.set_strategy(wait);
        self
    }

    /// The topic this consumer reads.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-ctopic-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let c = broker.create_topic("t", TopicConfig::default())?.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.topic().name(), "t");
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topic(&self) -> &Topic {
        self.cursors.topic()
    }

    /// The partitions this consumer reads, in order.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-assign-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let c = broker.create_topic("t", TopicConfig::default().partitions(3))?.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.assignment(), [0, 1, 2]);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn assignment(&self) -> Vec<u32> {
        self.cursors.assignment()
    }

    /// The offset of the next record this consumer will return from
    /// `partition` (Kafka's position).
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-position-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("a"))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.position(0)?, 0);
    /// c.recv()?;
    /// assert_eq!(c.position(0)?, 1);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self, partition: u32) -> Result<u64> {
        self.cursors.position(partition)
    }

    /// `(partition, position)` for every assigned partition.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-positions-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let c = broker.create_topic("t", TopicConfig::default().partitions(2))?.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.positions(), [(0, 0), (1, 0)]);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn positions(&self) -> Vec<(u32, u64)> {
        self.cursors.positions()
    }

    /// Records not yet read: the sum over partitions of high watermark minus
    /// position.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-lag-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// topic.producer().send_batch((0..5).map(|i| Record::new(format!("{i}"))))?;
    /// assert_eq!(c.lag(), 5);
    /// c.recv()?;
    /// assert_eq!(c.lag(), 4);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lag(&self) -> u64 {
        self.cursors.lag()
    }

    /// Moves `partition`'s position to `offset`, which must lie within the
    /// stored range (`log_start..=high_watermark`), else
    /// [`Error::OffsetOutOfRange`] and the position is unchanged.
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-seek-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..10).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// c.seek(0, 7)?;
    /// assert_eq!(c.recv()?.value(), b"7");
    /// assert!(matches!(c.seek(0, 11), Err(Error::OffsetOutOfRange { start: 0, end: 10, .. })));
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek(&mut self, partition: u32, offset: u64) -> Result<()> {
        self.cursors.seek(partition, offset)
    }

    /// Moves every partition's position to its earliest stored offset.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-seekb-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("again"))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// c.recv()?;
    /// c.seek_to_beginning()?;
    /// assert_eq!(c.recv()?.value(), b"again");
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek_to_beginning(&mut self) -> Result<()> {
        self.cursors.seek_to_beginning()
    }

    /// Moves every partition's position to its high watermark, skipping
    /// everything stored so far.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-seeke-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("old"))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// c.seek_to_end()?;
    /// assert!(c.try_recv()?.is_none());
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seek_to_end(&mut self) -> Result<()> {
        self.cursors.seek_to_end()
    }

    /// Returns the next record if one is available, without waiting.
    ///
    /// `Ok(None)` means every partition is read up to its high watermark.
    /// After the broker closes, records already stored can still be read;
    /// once they are exhausted this returns [`Error::Closed`].
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tryrecv-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert!(c.try_recv()?.is_none());
    /// topic.producer().send(Record::new("x"))?;
    /// assert_eq!(c.try_recv()?.unwrap().value(), b"x");
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv(&mut self) -> Result<Option<Message>> {
        Ok(self.try_found()?.map(|(i, f)| self.cursors.message(i, &f)))
    }

    /// Like [`try_recv`](Consumer::try_recv), but the record is borrowed
    /// straight from the mapped log: no copy, no reference count, the
    /// fastest way to read (see [`MessageRef`]). The consumer cannot read
    /// on until the `MessageRef` is dropped.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tryrecvref-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..1000).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// let mut sum = 0u64;
    /// while let Some(m) = c.try_recv_ref()? {
    ///     sum += std::str::from_utf8(m.value())?.parse::<u64>()?;
    /// }
    /// assert_eq!(sum, 499_500);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_ref(&mut self) -> Result<Option<MessageRef<'_>>> {
        Ok(self.try_found()?.map(|(i, f)| self.cursors.view(i, &f)))
    }

    /// Like [`recv`](Consumer::recv), but returns a [`MessageRef`] borrowed
    /// from the mapped log (see [`Consumer::try_recv_ref`]).
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-recvref-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let producer = topic.producer();
    /// let mut c = topic.consumer(StartFrom::Latest)?;
    /// std::thread::spawn(move || producer.send(Record::new("late")));
    /// assert_eq!(c.recv_ref()?.value(), b"late"); // waited for it
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_ref(&mut self) -> Result<MessageRef<'_>> {
        match self.found_by(None)? {
            Some((i, f)) => Ok(self.cursors.view(i, &f)),
            None => Err(Error::Closed),
        }
    }

    /// Like [`recv_timeout`](Consumer::recv_timeout), but returns a
    /// [`MessageRef`] borrowed from the mapped log (see
    /// [`Consumer::try_recv_ref`]).
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-recvreftimeout-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert!(c.recv_ref_timeout(Duration::from_millis(5))?.is_none());
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Option<MessageRef<'_>>> {
        // A timeout too long to add to now waits for ever.
        let found = self.found_by(Instant::now().checked_add(timeout))?;
        Ok(found.map(|(i, f)| self.cursors.view(i, &f)))
    }

    /// Waits up to `timeout` for a record, then returns it with the records
    /// that follow it in the same partition and segment and are available
    /// at once, up to `max` in all, borrowed from the mapped log: the
    /// fastest way to read (see [`Batch`]). An empty batch means the
    /// timeout passed with nothing to read. Successive calls take the
    /// partitions in turn, as every receive call does.
    ///
    /// A record that does not decode ends the batch before it; the
    /// partition's position stays before it, so a later call (the next one
    /// that reads that partition) reports it as an error.
    ///
    /// See [`Batch`] for an example.
    pub fn poll_ref(&mut self, max: usize, timeout: Duration) -> Result<Batch<'_>> {
        if max == 0 {
            return Ok(Batch::empty());
        }
        let first = if timeout.is_zero() {
            self.try_found()? // no waiting loop to enter and leave
        } else {
            self.found_by(Instant::now().checked_add(timeout))?
        };
        let Some((i, first)) = first else { return Ok(Batch::empty()) };
        let mut found = std::mem::take(&mut self.batch);
        found.clear();
        found.push(first);
        self.cursors.fill_in_segment(i, max - 1, &mut found);
        self.batch = found;
        Ok(Batch::new(self.cursors.cursor(i), &self.batch))
    }

    /// The next record's cursor and place, if one is available now; the
    /// shared start of every receive call.
    #[inline]
    fn try_found(&mut self) -> Result<Option<(usize, Found)>> {
        // Reported before anything else: it concerns records before any
        // this call could return.
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        // Group changes and auto-commits happen once, at the start of a
        // receive call, so they only ever cover records returned by earlier
        // calls (never ones `poll` is still gathering).
        if self.membership.is_some() {
            self.sync_group()?;
        }
        if let Some(found) = self.cursors.take_found(self.reset())? {
            return Ok(Some(found));
        }
        match self.cursors.closed_error() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Waits for a record until `deadline` (forever if `None`), or until
    /// interrupted by a channel bridge (then `Ok(None)`).
    fn found_by(&mut self, deadline: Option<Instant>) -> Result<Option<(usize, Found)>> {
        loop {
            if let Some(found) = self.try_found()? {
                return Ok(Some(found));
            }
            if self.waiter.take_wakeup() {
                return Err(Error::Interrupted);
            }
            if self.waiter.interrupted() || !self.wait_for_data(deadline) {
                return Ok(None);
            }
        }
    }

    /// One record from the partitions in turn, starting after the one that
    /// gave the last record.
    fn take_available(&mut self) -> Result<Option<Message>> {
        Ok(self.cursors.take_found(self.reset())?.map(|(i, f)| self.cursors.message(i, &f)))
    }

    /// Blocks until a record is available and returns it.
    ///
    /// See [`Consumer`] for an example.
    pub fn recv(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.recv_deadline_inner(None)? {
                return Ok(m);
            }
            if self.waiter.interrupted() {
                return Err(Error::Closed);
            }
        }
    }

    /// Waits at most `timeout` for a record; `Ok(None)` on timeout.
    ///
    /// See [`Consumer`] for an example.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.recv_deadline(deadline),
            None => self.recv().map(Some),
        }
    }

    /// Waits until `deadline` at most for a record; `Ok(None)` on timeout.
    ///
    /// ```
    /// use millpond::{Broker, StartFrom, TopicConfig};
    /// use std::time::{Duration, Instant};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-deadline-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let mut c = broker.create_topic("t", TopicConfig::default())?.consumer(StartFrom::Latest)?;
    /// let deadline = Instant::now() + Duration::from_millis(20);
    /// assert!(c.recv_deadline(deadline)?.is_none());
    /// assert!(Instant::now() >= deadline);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>> {
        self.recv_deadline_inner(Some(deadline))
    }

    /// Waits for a record until `deadline` (forever if `None`), or until
    /// interrupted by a channel bridge (then `Ok(None)`).
    fn recv_deadline_inner(&mut self, deadline: Option<Instant>) -> Result<Option<Message>> {
        Ok(self.found_by(deadline)?.map(|(i, f)| self.cursors.message(i, &f)))
    }

    /// Waits for up to `timeout` for the first record, then returns it with
    /// every record available at once, up to `max` in all (Kafka's `poll`).
    /// An empty `Vec` means the timeout passed with nothing to read. A
    /// damaged record after the first ends the `Vec` before it; a later
    /// call reports it as an error, so nothing received is lost. Likewise
    /// when retention deleted the next records of a partition: the `Vec`
    /// ends before the gap and the next receive call (of any kind) returns
    /// [`Error::Lagged`], once, then reading goes on at its `resumed_at`.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-poll-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..800).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.poll(500, Duration::from_millis(10))?.len(), 500);
    /// assert_eq!(c.poll(500, Duration::from_millis(10))?.len(), 300);
    /// assert!(c.poll(500, Duration::from_millis(10))?.is_empty());
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        match self.recv_timeout(timeout)? {
            Some(m) => Ok(self.gather(m, max)),
            None => Ok(Vec::new()),
        }
    }

    /// `first` and the records available at once after it, up to `max` in
    /// all: the rest of a [`poll`](Consumer::poll), blocking or async.
    pub(crate) fn gather(&mut self, first: Message, max: usize) -> Vec<Message> {
        let mut out = vec![first];
        while out.len() < max {
            match self.take_available() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                // The records gathered so far are received (the position is
                // past them): return them. A `Lagged` jump already happened,
                // so it is kept for the next call to report; for any other
                // error the cursor stays before the damage, so a later call
                // reports it.
                Err(e @ Error::Lagged { .. }) => {
                    self.pending = Some(e);
                    break;
                }
                Err(_) => break,
            }
        }
        out
    }

    /// One poll of an async receive: the next record if one is there (the
    /// position moves past it only then), else `Pending` with the task's
    /// waker left in this consumer's cell, registered with every notifier
    /// that can make a record or a group change appear.
    ///
    /// `armed` belongs to the future being polled: whether its last poll
    /// left the cell armed. An armed cell is disarmed before anything else,
    /// because looking for records may change the partitions (a
    /// rebalance) and so the notifiers to register with; nothing else can
    /// change them meanwhile, as the future borrows the consumer. The
    /// future must call [`disarm_task`](Consumer::disarm_task) when it is
    /// dropped armed.
    pub(crate) fn poll_found(&mut self, cx: &mut Context<'_>, armed: &mut bool) -> Poll<Result<(usize, Found)>> {
        // Two looks at most in one poll: when the re-check keeps saying
        // "ready" and there is still nothing (a segment being rolled), the
        // task is woken at once to look again later, giving its thread
        // back to the executor meanwhile instead of spinning in `poll`.
        for _ in 0..2 {
            if std::mem::take(armed) {
                self.disarm_task();
            }
            if let Some(found) = self.try_found().transpose() {
                return Poll::Ready(found);
            }
            if self.waiter.take_wakeup() {
                return Poll::Ready(Err(Error::Interrupted));
            }
            self.waiter.cell().arm_task(cx.waker(), |visit| self.each_notifier(visit));
            *armed = true;
            // Re-check after registering (see storage/notify.rs: no lost
            // wake-ups, for tasks as for threads).
            if !self.ready_to_look() {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One poll of an async receive of an owned record (see
    /// [`poll_found`](Consumer::poll_found)).
    pub(crate) fn poll_message(&mut self, cx: &mut Context<'_>, armed: &mut bool) -> Poll<Result<Message>> {
        self.poll_found(cx, armed).map_ok(|(i, f)| self.cursors.message(i, &f))
    }

    /// Ends the registration an async receive's last `Pending` poll left.
    pub(crate) fn disarm_task(&self) {
        self.waiter.cell().disarm_task(|visit| self.each_notifier(visit));
    }

    /// A handle another thread or task uses to wake this consumer out of a
    /// blocking receive (Kafka's `consumer.wakeup()`): the receive that is
    /// waiting, or the next one that would wait, returns
    /// [`Error::Interrupted`] once per [`WakeupHandle::wake`]. Records that
    /// are already there are returned first; nothing is lost or skipped. For
    /// shutting a consumer thread down without closing the broker.
    ///
    /// ```
    /// use millpond::{Broker, Error, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-wakeup-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut consumer = topic.consumer(StartFrom::Latest)?;
    /// let wakeup = consumer.wakeup_handle();
    /// let worker = std::thread::spawn(move || consumer.recv().map(|m| m.offset()));
    /// wakeup.wake(); // shutting down: the blocked recv returns
    /// assert!(matches!(worker.join().unwrap(), Err(Error::Interrupted)));
    /// # drop(topic); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wakeup_handle(&self) -> WakeupHandle {
        WakeupHandle::new(Arc::clone(self.waiter.wakeup_flag()), Arc::clone(self.waiter.cell()))
    }

    /// Installs the flag a channel bridge sets to stop a blocked receive, and
    /// returns the cell to wake.
    pub(crate) fn set_interrupt(&mut self, flag: Arc<AtomicBool>) -> Arc<WaitCell> {
        self.waiter.set_interrupt(flag)
    }

    /// Removes the interrupt flag (when a bridge hands the consumer back).
    pub(crate) fn clear_interrupt(&mut self) {
        self.waiter.clear_interrupt();
    }

    /// How a partition that retention moved past is caught up: the
    /// group's reset policy, or `Earliest` for an independent consumer.
    #[inline]
    fn reset(&self) -> OffsetReset {
        self.membership.as_ref().map_or(OffsetReset::Earliest, |m| m.reset())
    }

    /// Whether a receive call has something to look at: a partition that
    /// may have data, or a group change.
    fn any_ready(&self) -> bool {
        self.cursors.may_have_data() || self.membership.as_ref().is_some_and(|m| m.changed())
    }

    /// Whether a receive call should look again: something may be ready,
    /// or nothing more can arrive.
    fn ready_to_look(&self) -> bool {
        self.any_ready() || self.cursors.closed_error().is_some() || self.waiter.wakeup_requested()
    }

    /// Waits until some partition may have data, the consumer is closed or
    /// interrupted (`true`), or `deadline` passes (`false`).
    fn wait_for_data(&self, deadline: Option<Instant>) -> bool {
        let costly = self.cursors.cursors().iter().any(|c| c.log().is_follower());
        self.waiter.wait(deadline, || self.ready_to_look(), |visit| self.each_notifier(visit), costly)
    }

    /// Visits every notifier that can wake this consumer: its partitions',
    /// its group's, and, for a consumer without partitions nor a group, one
    /// partition's, which tells it that the broker closed or the topic was
    /// deleted (appends there wake it for nothing; it re-checks and sleeps
    /// again).
    fn each_notifier(&self, visit: &mut dyn FnMut(&Notifier)) {
        for c in self.cursors.cursors() {
            visit(&c.log().notifier);
        }
        match &self.membership {
            Some(m) => visit(m.notifier()),
            None if self.cursors.is_empty() => {
                if let Ok(log) = self.cursors.topic().partition_log(0) {
                    visit(&log.notifier);
                }
            }
            None => {}
        }
    }

    /// Lets the group update the cursor set (rebalance, auto-commit) at the
    /// start of a receive call.
    ///
    /// The membership is out of the consumer while it syncs: if the
    /// rebalance listener panics, it is dropped during the unwinding, so
    /// the member leaves the group and its partitions go to the others even
    /// when the caller catches the panic.
    pub(crate) fn sync_group(&mut self) -> Result<()> {
        let Some(mut m) = self.membership.take() else { return Ok(()) };
        let result = m.sync(&mut self.cursors);
        self.membership = Some(m);
        result
    }

    /// A new group member's first assignment, taken at `join` (see
    /// `Membership::take_initial_assignment`).
    pub(crate) fn take_initial_assignment(&mut self) {
        if let Some(m) = self.membership.as_mut() {
            m.take_initial_assignment(&mut self.cursors);
        }
    }

    /// Leaves the group, if a member, committing the positions first when
    /// `commit` and the group auto-commits.
    pub(crate) fn leave_group(&mut self, commit: bool) -> Result<()> {
        match self.membership.take() {
            Some(m) => m.leave(&self.cursors, commit),
            None => Ok(()),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let Some(group) = self.membership.as_ref().map(|m| m.group_name().to_string()) else { return };
        // While unwinding, the record being handled failed: committing past
        // it would lose it, so leave without committing.
        let topic = self.cursors.topic().clone();
        let health = &topic.shared.health;
        match self.leave_group(!std::thread::panicking()) {
            Ok(()) => health.resolved_group(BackgroundTask::DropCommit, &group, topic.name()),
            // Drop cannot return it (`GroupMember::close` does): reported.
            Err(e) => health.report(BackgroundError::new(BackgroundTask::DropCommit, e).of_group(&group, topic.name())),
        }
    }
}

impl Topic {
    /// A new independent consumer of all partitions, starting at `from`.
    ///
    /// See [`Consumer`] for an example.
    pub fn consumer(&self, from: StartFrom) -> Result<Consumer> {
        Consumer::new(self.clone(), (0..self.partitions()).collect(), from)
    }

    /// A new independent consumer of the given partitions only (Kafka's
    /// `assign`), starting at `from`.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-consof-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(3))?;
    /// topic.producer().send(Record::new("p1").partition(1))?;
    /// topic.producer().send(Record::new("p2").partition(2))?;
    /// let mut c = topic.consumer_of(&[2], StartFrom::Earliest)?;
    /// assert_eq!(c.try_recv()?.unwrap().value(), b"p2");
    /// assert!(c.try_recv()?.is_none());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn consumer_of(&self, partitions: &[u32], from: StartFrom) -> Result<Consumer> {
        for &p in partitions {
            self.partition_log(p)?;
        }
        let mut ps = partitions.to_vec();
        ps.sort_unstable();
        ps.dedup();
        Consumer::new(self.clone(), ps, from)
    }
}
