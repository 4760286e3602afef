//! [`Transaction`]: records and group positions committed all together or
//! not at all (exactly-once), and [`Broker::transaction`], which starts one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::broker::keep_alive::KeepAlive;
use crate::broker::open::Broker;
use crate::broker::topic::Topic;
use crate::broker::transactions::{GroupInput, ShareInput};
use crate::client::consumer_group::member::GroupMember;
use crate::client::exactly_once::committed::{Committed, CommittedPart};
use crate::client::produce::producer::Producer;
use crate::error::{Error, Result};
use crate::storage::record::Record;

/// A transaction: records sent to any partitions of any topics of one
/// broker, and consumer groups' positions, that become visible and
/// committed all together when [`commit`](Transaction::commit) returns, or
/// not at all — after [`abort`](Transaction::abort), a drop, a failed
/// commit, or a crash at any point before `commit` returns, on every
/// partition and group.
///
/// This is Kafka's transactional producer with `sendOffsetsToTransaction`,
/// for a consume-transform-produce loop that is exactly-once without any
/// deduplication of its own: read input as a group member, send what it
/// produces into the transaction, add the member's positions with
/// [`commit_offsets`](Transaction::commit_offsets), commit. After a crash,
/// the group resumes at the last committed transaction's positions, and
/// the output holds exactly what those transactions wrote.
///
/// # What readers see
///
/// The records are held in the transaction (in memory) until it commits,
/// then written to each partition as one block ending with a *commit
/// marker*, and published at once. So no reader — consumers, group members,
/// mirrors, the Kafka bridge, read-only brokers in other processes — ever
/// returns a record of an open or aborted transaction; an open transaction
/// never holds a reader back; and plain producers keep writing the same
/// partitions meanwhile. Each partition keeps its order: a transaction's
/// records follow whatever was appended before its commit. A transaction
/// spanning partitions is visible on each of them from its commit on
/// (readers of different partitions may see it a moment apart, as in
/// Kafka). The marker takes one offset after the records, as Kafka's do;
/// consumers step over it.
///
/// # Durability
///
/// When `commit` returns, the transaction survives the process crashing
/// (kill -9) at any point, and a process crash never leaves it in part: a
/// crash before its decision removes its records from every partition;
/// after it, recovery completes it (its markers, its group offsets).
///
/// Against the machine crashing, a transaction with a partition of
/// [`FsyncPolicy::Always`](crate::FsyncPolicy::Always) is *durable*: its
/// records are synced before its commit is decided, the decision and every
/// partition's marker before `commit` returns; it survives whole. Any
/// other transaction is as durable as plain sends to its topics are, and
/// **not atomic against a machine crash**: the kernel writes unsynced pages
/// back in any order, so a power loss may keep one partition's share and
/// lose another's, as with `send_batch` (see the README's guarantees). Its
/// group offsets are synced when the broker's commit thread writes them,
/// within milliseconds.
///
/// # After a failed commit
///
/// On `Err` (but [`Error::TransactionNotDurable`]), nothing of the
/// transaction was written or committed — but the group member whose
/// positions it carried has read past its input: rewind it with
/// [`GroupMember::seek_to_committed`] (or drop it and join again) before
/// the next transaction, or that input is never processed.
///
/// # Limits
///
/// - A transaction older than
///   [`BrokerConfig::transaction_timeout`](crate::BrokerConfig::transaction_timeout)
///   (default 60 s) cannot send or commit: [`Error::TransactionTimedOut`].
/// - Its records for one partition go in one segment, made larger than
///   the topic's `segment_bytes` if they need it (at most 2 GiB):
///   [`Error::TransactionTooLarge`]. Where the partition's newest segment
///   is empty and too small for them (a new partition's, or one a crash
///   left), a lone commit marker closes it first, so they start one
///   offset later.
/// - A group member whose positions it commits must not commit on its own:
///   join with `auto_commit(AutoCommit::Off)` and `commit_on_revoke(false)`.
/// - Transactions do not wait for a topic's [`Backlog`](crate::Backlog)
///   limit.
///
/// # Examples
///
/// A consume-transform-produce step: totals per account, exactly once.
///
/// ```
/// use millpond::{AutoCommit, Broker, Record, StartFrom, TopicConfig};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-txn-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let payments = broker.create_topic("payments", TopicConfig::default().partitions(2))?;
/// let totals = broker.create_topic("totals", TopicConfig::default())?;
/// payments.producer().send_batch((0..10).map(|i| Record::new(format!("{i}")).key(format!("acct-{}", i % 3))))?;
///
/// let group = payments.group("totaller")?.auto_commit(AutoCommit::Off).commit_on_revoke(false);
/// let mut member = group.join()?;
/// let mut txn = broker.transaction()?;
/// while txn.len() < 10 {
///     for m in member.poll(100, Duration::from_millis(50))? {
///         txn.send(&totals, Record::new(m.value().to_vec()).key(m.key().unwrap_or_default().to_vec()))?;
///     }
/// }
/// txn.commit_offsets(&mut member)?; // the input positions, in the same step
/// let done = txn.commit()?;
/// assert_eq!(done.records(), 10);
/// assert_eq!(group.committed()?.values().sum::<u64>(), 10);
/// assert_eq!(totals.consumer(StartFrom::Earliest)?.poll(100, Duration::ZERO)?.len(), 10);
///
/// // Dropped (or aborted) instead: nothing of it is written.
/// let mut txn = broker.transaction()?;
/// txn.send(&totals, Record::new("never"))?;
/// drop(txn);
/// assert_eq!(totals.high_watermark(0)?, 11); // ten records and one marker
/// # drop((member, group, payments, totals, broker)); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Transaction {
    alive: Arc<KeepAlive>,
    id: u64,
    started: Instant,
    timeout: Duration,
    /// Records by (topic, partition).
    shares: BTreeMap<(Arc<str>, u32), ShareInput>,
    /// The offsets to commit, by (group, topic).
    groups: BTreeMap<(String, String), GroupInput>,
    /// One producer per topic: its checks, partitioner and round robin.
    producers: HashMap<Arc<str>, Producer>,
    records: usize,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &format_args!("{:016x}", self.id))
            .field("records", &self.records)
            .field("partitions", &self.shares.len())
            .field("groups", &self.groups.len())
            .field("elapsed", &self.started.elapsed())
            .finish()
    }
}

/// A new transaction's id: unique in practice (64 bits from the time, the
/// process and a counter, mixed), so that frames of a transaction a crash
/// aborted are never taken for a later one's.
fn new_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos ^ (u64::from(std::process::id()) << 40) ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(20);
    // splitmix64's finalizer.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Broker {
    /// Starts a [`Transaction`] (see there for what it guarantees and an
    /// example). Nothing is written until it commits.
    ///
    /// Errors: [`Error::ReadOnly`] on a read-only broker, [`Error::Closed`].
    ///
    /// ```
    /// use millpond::{Broker, Error};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-txnstart-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let txn = broker.transaction()?;
    /// assert!(txn.is_empty());
    /// let reader = Broker::open_read_only(&dir)?;
    /// assert!(matches!(reader.transaction(), Err(Error::ReadOnly { .. })));
    /// # drop((txn, reader, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transaction(&self) -> Result<Transaction> {
        let shared = self.shared();
        shared.check_writable("start a transaction")?;
        if shared.is_closed() {
            return Err(Error::Closed);
        }
        Ok(Transaction {
            alive: Arc::clone(self.keep_alive()),
            id: new_id(),
            started: Instant::now(),
            timeout: shared.config.transaction_timeout,
            shares: BTreeMap::new(),
            groups: BTreeMap::new(),
            producers: HashMap::new(),
            records: 0,
        })
    }
}

impl Transaction {
    fn check_open(&self) -> Result<()> {
        let elapsed = self.started.elapsed();
        if elapsed > self.timeout {
            return Err(Error::TransactionTimedOut { elapsed, timeout: self.timeout });
        }
        if self.alive.shared().is_closed() {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn producer_for(&mut self, topic: &Topic) -> Result<&Producer> {
        if !Arc::ptr_eq(&topic.shared, self.alive.shared()) {
            return Err(Error::InvalidConfig {
                reason: format!("topic {:?} belongs to another broker than the transaction", topic.name()),
            });
        }
        if let Some(e) = topic.unusable() {
            return Err(e);
        }
        let producer = self.producers.entry(Arc::clone(&topic.inner.name)).or_insert_with(|| topic.producer());
        // The same name, but a topic deleted and created again since.
        if !Arc::ptr_eq(&producer.topic().inner, &topic.inner) {
            return Err(Error::TopicDeleted { topic: topic.name().to_string() });
        }
        Ok(producer)
    }

    /// Adds a record for `topic`, to the partition a producer would choose
    /// (the record's own, its key's, or the next in turn). Returns the
    /// partition. Nothing is written until [`commit`](Transaction::commit).
    ///
    /// Errors as [`Producer::send`] for the record ([`Error::RecordTooLarge`],
    /// [`Error::InvalidPartition`], ...), [`Error::TransactionTimedOut`],
    /// and [`Error::InvalidConfig`] for a topic of another broker; the
    /// transaction is unchanged by an error and can go on.
    ///
    /// See [`Transaction`] for an example.
    pub fn send(&mut self, topic: &Topic, record: Record<'_>) -> Result<u32> {
        self.check_open()?;
        let producer = self.producer_for(topic)?;
        producer.check(&record)?;
        let partition = producer.choose(&record, || producer.round_robin())?;
        self.push(topic, partition, record.into_owned());
        Ok(partition)
    }

    /// Adds records for `topic`, as [`Producer::send_batch`] places them
    /// (keyless records without a partition of one batch go to one
    /// partition, the next in turn); all or none of them (the transaction
    /// is unchanged on error).
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-txnbatch-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(4))?;
    /// let mut txn = broker.transaction()?;
    /// txn.send_batch(&topic, (0..1000).map(|i| Record::new(format!("{i}")).key(format!("k{i}"))))?;
    /// txn.send_batch(&topic, (0..10).map(|i| Record::new(format!("keyless {i}"))))?; // one partition
    /// assert_eq!(txn.len(), 1010);
    /// assert_eq!(txn.commit()?.parts().len(), 4);
    /// # drop(topic); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_batch<'a>(&mut self, topic: &Topic, records: impl IntoIterator<Item = Record<'a>>) -> Result<()> {
        self.check_open()?;
        let producer = self.producer_for(topic)?;
        let mut checked = Vec::new();
        let sticky = producer.round_robin();
        for record in records {
            producer.check(&record)?;
            let partition = producer.choose(&record, || sticky)?;
            checked.push((partition, record.into_owned()));
        }
        for (partition, record) in checked {
            self.push(topic, partition, record);
        }
        Ok(())
    }

    fn push(&mut self, topic: &Topic, partition: u32, record: Record<'static>) {
        self.records += 1;
        self.shares
            .entry((Arc::clone(&topic.inner.name), partition))
            .or_insert_with(|| ShareInput { topic: Arc::clone(&topic.inner), partition, records: Vec::new() })
            .records
            .push(record);
    }

    /// Adds `member`'s positions now (everything it has received counts as
    /// processed) as its group's offsets, committed with the transaction —
    /// Kafka's `sendOffsetsToTransaction`. Called again for the same group,
    /// the later positions replace the earlier ones.
    ///
    /// When the transaction commits, the member must still own those
    /// partitions, as for [`GroupMember::commit`], and must not have given
    /// up any partition it had received records of since its last commit
    /// (Kafka fences such a producer): else the commit fails with
    /// [`Error::NotAssigned`] and nothing is written, since the output may
    /// hold records that partition's next owner processes too. Then rewind
    /// ([`GroupMember::seek_to_committed`]) and start a new transaction.
    ///
    /// Errors: [`Error::InvalidConfig`] for a member that commits on its own
    /// (it must be joined with `auto_commit(AutoCommit::Off)` and
    /// `commit_on_revoke(false)`), or of another broker's group;
    /// [`Error::TransactionTimedOut`]; the member's own errors.
    ///
    /// See [`Transaction`] for an example.
    pub fn commit_offsets(&mut self, member: &mut GroupMember) -> Result<()> {
        self.check_open()?;
        if !Arc::ptr_eq(&member.topic().shared, self.alive.shared()) {
            return Err(Error::InvalidConfig {
                reason: format!("group member of topic {:?} belongs to another broker", member.topic().name()),
            });
        }
        let (state, member_id, offsets, fence) = member.transaction_parts()?;
        let key = (state.name.clone(), state.topic.name.to_string());
        self.groups.insert(key, GroupInput { state, member: member_id, offsets, fence });
        Ok(())
    }

    /// How many records the transaction holds.
    ///
    /// See [`Transaction::send_batch`] for an example.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether the transaction holds no record (it may still hold offsets).
    ///
    /// See [`Broker::transaction`] for an example.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// How long the transaction has been open.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-txnelapsed-{}", std::process::id()));
    /// let broker = millpond::Broker::open(&dir)?;
    /// let txn = broker.transaction()?;
    /// assert!(txn.elapsed() < broker.transaction()?.elapsed() + std::time::Duration::from_secs(60));
    /// # drop((txn, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Commits: every record becomes visible and every group's offsets
    /// committed, together, before this returns (see [`Transaction`] for
    /// the guarantees). On `Err`, nothing of it was written or committed —
    /// but for [`Error::TransactionNotDurable`], which says it was committed
    /// and only its sync failed.
    ///
    /// Errors: [`Error::TransactionTimedOut`]; [`Error::NotAssigned`] or
    /// [`Error::NotAMember`] when a member lost its partitions or left;
    /// [`Error::DiskFull`], [`Error::Poisoned`], [`Error::TopicDeleted`],
    /// [`Error::Closed`], [`Error::TransactionTooLarge`].
    ///
    /// See [`Transaction`] for an example.
    pub fn commit(self) -> Result<Committed> {
        self.check_open()?;
        let shares: Vec<ShareInput> = self.shares.into_values().collect();
        let groups: Vec<GroupInput> = self.groups.into_values().collect();
        let (placed, synced) = self.alive.shared().commit_transaction(self.id, shares, groups)?;
        let committed = Committed {
            parts: placed
                .into_iter()
                .map(|(topic, partition, first_offset, records)| CommittedPart {
                    topic: topic.to_string(),
                    partition,
                    first_offset,
                    records,
                })
                .collect(),
        };
        match synced {
            Ok(()) => Ok(committed),
            Err(e) => Err(Error::TransactionNotDurable { source: Box::new(e) }),
        }
    }

    /// Discards the transaction: nothing of it is written or committed
    /// (dropping it does the same).
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-txnabort-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut txn = broker.transaction()?;
    /// txn.send(&topic, Record::new("x"))?;
    /// txn.abort();
    /// assert_eq!(topic.high_watermark(0)?, 0);
    /// # drop(topic); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn abort(self) {}
}
