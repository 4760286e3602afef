//! [`Consumer`]: reads a topic's partitions from a position of its own, with
//! crossbeam-channel's receive vocabulary and Kafka's `poll`/`seek`.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::broker::topic::Topic;
use crate::client::consume::channel::ConsumerChannel;
use crate::client::consume::start_from::StartFrom;
use crate::client::consume::waiting::WaitStrategy;
use crate::client::consumer_group::group::{Membership, OffsetReset};
use crate::error::{Error, Result};
use crate::storage::batch::Batch;
use crate::storage::cursor::Cursor;
use crate::storage::cursor::Found;
use crate::storage::message::Message;
use crate::storage::message_ref::MessageRef;
use crate::storage::notify::WaitCell;

/// Spin iterations before a waiting consumer yields or parks.
const SPINS: u32 = 200;
/// `yield_now` iterations, after spinning, before a `SpinThenPark` consumer parks.
const YIELDS: u32 = 20;

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
    topic: Topic,
    cursors: Vec<Cursor>,
    /// Index of the cursor to try first (round-robin fairness).
    next: usize,
    cell: Arc<WaitCell>,
    wait: WaitStrategy,
    /// Set by a channel bridge to stop a blocked receive.
    interrupt: Option<Arc<AtomicBool>>,
    /// Present when this consumer is a group member.
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
        f.debug_struct("Consumer").field("topic", &self.topic.name()).field("positions", &self.positions()).finish()
    }
}

impl Consumer {
    pub(crate) fn new(topic: Topic, partitions: Vec<u32>, from: StartFrom) -> Result<Consumer> {
        if let Some(e) = topic.unusable() {
            return Err(e);
        }
        let mut cursors = Vec::with_capacity(partitions.len());
        for p in partitions {
            let log = topic.partition_log(p)?;
            let offset = match from {
                StartFrom::Earliest => log.log_start(),
                StartFrom::Latest => log.high_watermark(),
                StartFrom::Offset(o) => o,
                StartFrom::Timestamp(ts) => log.offset_for_timestamp(ts)?,
            };
            cursors.push(log.cursor_at(offset)?);
        }
        Ok(Consumer {
            topic,
            cursors,
            next: 0,
            cell: Arc::new(WaitCell::default()),
            wait: WaitStrategy::default(),
            interrupt: None,
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
        self.wait = wait;
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
        &self.topic
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
        self.cursors.iter().map(|c| c.log().partition()).collect()
    }

    fn cursor_index(&self, partition: u32) -> Result<usize> {
        self.cursors.iter().position(|c| c.log().partition() == partition).ok_or_else(|| Error::InvalidPartition {
            topic: self.topic.name().to_string(),
            partition,
            partitions: self.topic.partitions(),
        })
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
        Ok(self.cursors[self.cursor_index(partition)?].position())
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
        self.cursors.iter().map(|c| (c.log().partition(), c.position())).collect()
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
        self.cursors.iter().map(|c| c.log().high_watermark().saturating_sub(c.position())).sum()
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
        let i = self.cursor_index(partition)?;
        let cursor = self.cursors[i].log().cursor_at(offset)?;
        self.cursors[i] = cursor;
        Ok(())
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
        for c in &mut self.cursors {
            let log = Arc::clone(c.log());
            *c = log.cursor_at(log.log_start())?;
        }
        Ok(())
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
        for c in &mut self.cursors {
            let log = Arc::clone(c.log());
            *c = log.cursor_at(log.high_watermark())?;
        }
        Ok(())
    }

    /// Why receiving can never succeed again, if it cannot.
    fn closed_error(&self) -> Option<Error> {
        if let Some(e) = self.topic.unusable() {
            return Some(e);
        }
        if self.cursors.iter().any(|c| c.log().notifier.is_closed()) {
            return Some(Error::Closed);
        }
        None
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
        Ok(self.try_found()?.map(|(i, f)| self.cursors[i].message(&f)))
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
        Ok(self.try_found()?.map(|(i, f)| self.cursors[i].view(&f)))
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
            Some((i, f)) => Ok(self.cursors[i].view(&f)),
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
        Ok(found.map(|(i, f)| self.cursors[i].view(&f)))
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
        self.cursors[i].fill_in_segment(max - 1, &mut found);
        self.batch = found;
        Ok(Batch::new(&self.cursors[i], &self.batch))
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
        if let Some(found) = self.take_found()? {
            return Ok(Some(found));
        }
        match self.closed_error() {
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
            if self.interrupted() || !self.wait_for_data(deadline) {
                return Ok(None);
            }
        }
    }

    /// One record from the partitions in turn, starting after the one that
    /// gave the last record.
    fn take_available(&mut self) -> Result<Option<Message>> {
        Ok(self.take_found()?.map(|(i, f)| self.cursors[i].message(&f)))
    }

    /// Where the next record is, trying the partitions in turn, starting
    /// after the one that gave the last record.
    #[inline]
    fn take_found(&mut self) -> Result<Option<(usize, Found)>> {
        let n = self.cursors.len();
        // `next` may be past the end after a rebalance removed cursors.
        // (Wrapping by comparison, not `%`: a division per record is a
        // measurable share of a read.)
        let mut i = if self.next < n { self.next } else { 0 };
        for _ in 0..n {
            let after = if i + 1 == n { 0 } else { i + 1 };
            match self.cursors[i].next_found() {
                Ok(Some(m)) => {
                    self.next = after;
                    return Ok(Some((i, m)));
                }
                Ok(None) => {}
                Err(Error::Lagged { from, resumed_at, .. }) => {
                    self.next = after;
                    return Err(self.catch_up(i, from, resumed_at));
                }
                Err(e) => {
                    // Let the other partitions be read on the next call.
                    self.next = after;
                    return Err(e);
                }
            }
            i = after;
        }
        Ok(None)
    }

    /// Cursor `i` fell behind retention: the records from `from` to
    /// `resumed_at` (the next ones the log still stores) are gone. Moves it
    /// where the reset policy says (`resumed_at`, or the log start if
    /// retention went further meanwhile, for an independent consumer and
    /// `OffsetReset::Earliest`; the high watermark for `Latest`) and returns
    /// the `Lagged` error that reports the jump; with `Fail` it stays and
    /// the error is `OffsetOutOfRange`.
    ///
    /// A position only ever moves forward here: if the log names a place at
    /// or before `from` (inconsistent segments), the cursor stays and the
    /// error is `PositionRegressed`, rather than reading the same records
    /// again and again.
    fn catch_up(&mut self, i: usize, from: u64, resumed_at: u64) -> Error {
        let log = Arc::clone(self.cursors[i].log());
        let regressed = |resumed_at| Error::PositionRegressed {
            topic: log.topic_name().to_string(),
            partition: log.partition(),
            position: from,
            resumed_at,
        };
        if resumed_at <= from {
            return regressed(resumed_at);
        }
        let reset = self.membership.as_ref().map_or(OffsetReset::Earliest, |m| m.reset());
        let to = match reset {
            OffsetReset::Fail => return log.out_of_range(from),
            OffsetReset::Latest => log.high_watermark(),
            OffsetReset::Earliest => log.log_start().max(resumed_at),
        };
        if to <= from {
            return regressed(to);
        }
        match log.cursor_at(to) {
            Ok(cursor) => {
                self.cursors[i] = cursor;
                Error::Lagged { topic: log.topic_name().to_string(), partition: log.partition(), from, resumed_at: to }
            }
            // Retention moved on again meanwhile: the next call finds the
            // gap again and catches up then.
            Err(e) => e,
        }
    }

    /// Blocks until a record is available and returns it.
    ///
    /// See [`Consumer`] for an example.
    pub fn recv(&mut self) -> Result<Message> {
        loop {
            if let Some(m) = self.recv_deadline_inner(None)? {
                return Ok(m);
            }
            if self.interrupted() {
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
        Ok(self.found_by(deadline)?.map(|(i, f)| self.cursors[i].message(&f)))
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
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        match self.recv_timeout(timeout)? {
            Some(m) => out.push(m),
            None => return Ok(out),
        }
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
        Ok(out)
    }

    /// A blocking iterator over records. It ends when the broker closes or
    /// the topic is deleted; other errors are yielded as `Err`. After an
    /// error that the next receive call would return again (damage such as
    /// [`Error::Corrupt`], a failed read) the iterator ends instead of
    /// yielding it a second time, so a loop over it never spins on the same
    /// error; [`Error::Lagged`] is yielded and iteration goes on, since the
    /// reader has already moved past it.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-iter-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// let closer = broker.clone();
    /// let closing = std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_millis(50)); closer.close() });
    /// let values: Vec<Vec<u8>> = c.iter().map(|m| m.map(|m| m.value().to_vec())).collect::<Result<_, _>>()?;
    /// assert_eq!(values, [b"0", b"1", b"2"]); // ended when the broker closed
    /// closing.join().expect("closed")?; // close finished writing before the directory goes
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { consumer: self, fuse: ErrorFuse::default() }
    }

    /// A non-blocking iterator over the records available now. Errors end
    /// it as they end [`Consumer::iter`]: an error that repeats is yielded
    /// once, [`Error::Lagged`] never ends it.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tryiter-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.try_iter().count(), 3);
    /// assert_eq!(c.try_iter().count(), 0);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter { consumer: self, fuse: ErrorFuse::default() }
    }

    /// Moves this consumer onto a thread of its own that forwards records
    /// into a bounded `crossbeam_channel` of `capacity`, so a service can
    /// `select!` over topics, timers and its own channels.
    ///
    /// See [`ConsumerChannel`] for an example.
    pub fn into_channel(self, capacity: usize) -> ConsumerChannel {
        ConsumerChannel::spawn(self, capacity)
    }

    /// Installs the flag a channel bridge sets to stop a blocked receive, and
    /// returns the cell to wake.
    pub(crate) fn set_interrupt(&mut self, flag: Arc<AtomicBool>) -> Arc<WaitCell> {
        self.interrupt = Some(flag);
        Arc::clone(&self.cell)
    }

    /// Removes the interrupt flag (when a bridge hands the consumer back).
    pub(crate) fn clear_interrupt(&mut self) {
        self.interrupt = None;
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    fn any_ready(&self) -> bool {
        self.cursors.iter().any(Cursor::may_have_data) || self.membership.as_ref().is_some_and(|m| m.changed())
    }

    /// Starts reading another partition (a group member was given it).
    pub(crate) fn add_cursor(&mut self, cursor: Cursor) {
        let at = self.cursors.partition_point(|c| c.log().partition() < cursor.log().partition());
        self.cursors.insert(at, cursor);
    }

    /// Stops reading `partition` (a group member gave it up).
    pub(crate) fn remove_cursor(&mut self, partition: u32) {
        self.cursors.retain(|c| c.log().partition() != partition);
        self.next = if self.cursors.is_empty() { 0 } else { self.next % self.cursors.len() };
    }

    /// Waits until some partition may have data, the consumer is closed or
    /// interrupted (`true`), or `deadline` passes (`false`).
    fn wait_for_data(&mut self, deadline: Option<Instant>) -> bool {
        let mut i: u32 = 0;
        loop {
            if self.any_ready() || self.interrupted() || self.closed_error().is_some() {
                return true;
            }
            if i % 64 == 63 && deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            match self.wait {
                WaitStrategy::BusySpin => std::hint::spin_loop(),
                WaitStrategy::Yield if i < SPINS => std::hint::spin_loop(),
                WaitStrategy::Yield => std::thread::yield_now(),
                WaitStrategy::SpinThenPark if i < SPINS => std::hint::spin_loop(),
                WaitStrategy::SpinThenPark if i < SPINS + YIELDS => std::thread::yield_now(),
                WaitStrategy::SpinThenPark => return self.park(deadline),
            }
            i = i.wrapping_add(1);
        }
    }

    /// The notifier that tells a consumer without partitions (nor a group,
    /// whose notifier does it) that the broker closed or the topic was
    /// deleted: one partition's, which both close. Appends to that
    /// partition wake it for nothing; it re-checks and sleeps again.
    fn close_watch(&self) -> Option<&crate::storage::notify::Notifier> {
        if !self.cursors.is_empty() || self.membership.is_some() {
            return None;
        }
        self.topic.partition_log(0).ok().map(|log| &*log.notifier)
    }

    /// Registers with every partition's notifier, re-checks, and sleeps.
    fn park(&self, deadline: Option<Instant>) -> bool {
        for c in &self.cursors {
            c.log().notifier.register(&self.cell);
        }
        if let Some(m) = &self.membership {
            m.notifier().register(&self.cell);
        }
        let watch = self.close_watch();
        if let Some(n) = watch {
            n.register(&self.cell);
        }
        // Re-check after registering (see notify.rs: no lost wake-ups).
        let woken = if self.any_ready() || self.interrupted() || self.closed_error().is_some() {
            true
        } else {
            self.cell.sleep(deadline)
        };
        for c in &self.cursors {
            c.log().notifier.unregister(&self.cell);
        }
        if let Some(m) = &self.membership {
            m.notifier().unregister(&self.cell);
        }
        if let Some(n) = watch {
            n.unregister(&self.cell);
        }
        woken || deadline.is_none_or(|d| Instant::now() < d)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // While unwinding, the record being handled failed: committing past
        // it would lose it, so leave without committing.
        if let Err(e) = self.leave_group(!std::thread::panicking()) {
            // Drop cannot return it; `GroupMember::close` does.
            eprintln!("millpond: error while leaving group on drop: {e}");
        }
    }
}

/// Blocking iterator from [`Consumer::iter`].
///
/// See [`Consumer::iter`] for an example.
#[derive(Debug)]
pub struct Iter<'c> {
    consumer: &'c mut Consumer,
    fuse: ErrorFuse,
}

impl Iterator for Iter<'_> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| blocking_item(self.consumer.recv()))
    }
}

/// An item of a blocking iterator over receive results: the iteration ends
/// when the broker closed or the topic was deleted; other errors are items.
pub(crate) fn blocking_item<T>(received: Result<T>) -> Option<Result<T>> {
    match received {
        Ok(m) => Some(Ok(m)),
        Err(Error::Closed | Error::TopicDeleted { .. }) => None,
        Err(e) => Some(Err(e)),
    }
}

/// An item of a non-blocking iterator: like [`blocking_item`], and the
/// iteration also ends when nothing more is available.
pub(crate) fn available_item<T>(received: Result<Option<T>>) -> Option<Result<T>> {
    blocking_item(received).and_then(Result::transpose)
}

/// Ends an iteration instead of yielding the same error twice in a row:
/// the reader stays where it is on damage, so every further call would
/// return it again, and a `for m in consumer.try_iter()` must not spin on
/// it. An error that does not repeat (`Lagged`, `Decode`, a damaged
/// partition a group member reports once) leaves the iteration going.
#[derive(Debug, Default)]
pub(crate) struct ErrorFuse {
    ended: bool,
    last_error: Option<String>,
}

impl ErrorFuse {
    /// The next item of the iteration: what `receive` gives, or `None`
    /// once the iteration ended.
    pub(crate) fn next<T>(&mut self, receive: impl FnOnce() -> Option<Result<T>>) -> Option<Result<T>> {
        if self.ended {
            return None;
        }
        let item = receive();
        match &item {
            Some(Err(e)) => {
                let text = e.to_string();
                if self.last_error.as_deref() == Some(text.as_str()) {
                    self.ended = true;
                    return None;
                }
                self.last_error = Some(text);
            }
            _ => self.last_error = None,
        }
        item
    }
}

/// Non-blocking iterator from [`Consumer::try_iter`]. Errors other than
/// closing are yielded as `Err`; it ends when nothing more is available.
///
/// See [`Consumer::try_iter`] for an example.
#[derive(Debug)]
pub struct TryIter<'c> {
    consumer: &'c mut Consumer,
    fuse: ErrorFuse,
}

impl Iterator for TryIter<'_> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| available_item(self.consumer.try_recv()))
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

#[cfg(test)]
mod tests {
    use crate::{Broker, Error, Record, StartFrom, TopicConfig};

    fn topic_with_records(label: &str, n: usize) -> (std::path::PathBuf, Broker, crate::Topic) {
        let dir = std::env::temp_dir().join(format!("millpond-unit-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send_batch((0..n).map(|i| Record::new(format!("{i}")))).unwrap();
        (dir, broker, topic)
    }

    #[test]
    fn lagged_recovery_resumes_where_the_log_said_not_at_the_log_start_behind_the_reader() {
        let (dir, broker, topic) = topic_with_records("catchup-forward", 30);
        let mut c = topic.consumer(StartFrom::Offset(3)).unwrap();
        // The log says records 3..20 are gone while the log start is still
        // 0 (inconsistent segments): going on at the log start would read
        // 0..20 again, and meet the same gap again, for ever.
        match c.catch_up(0, 3, 20) {
            Error::Lagged { from: 3, resumed_at: 20, .. } => {}
            other => panic!("expected Lagged 3 -> 20, got {other:?}"),
        }
        assert_eq!(c.position(0).unwrap(), 20, "moved forward to where the log said");
        assert_eq!(c.try_recv().unwrap().map(|m| m.offset()), Some(20));
        drop((c, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lagged_recovery_that_would_move_backwards_is_position_regressed_and_stays() {
        let (dir, broker, topic) = topic_with_records("catchup-back", 30);
        let mut c = topic.consumer(StartFrom::Offset(15)).unwrap();
        for resumed_at in [15, 10, 0] {
            match c.catch_up(0, 15, resumed_at) {
                Error::PositionRegressed { partition: 0, position: 15, resumed_at: r, .. } => assert_eq!(r, resumed_at),
                other => panic!("expected PositionRegressed for 15 -> {resumed_at}, got {other:?}"),
            }
            assert_eq!(c.position(0).unwrap(), 15, "the position never moves backwards by itself");
        }
        assert_eq!(c.try_recv().unwrap().map(|m| m.offset()), Some(15));
        drop((c, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
