//! Errors: one [`Error`] type whose variants carry the topic, partition, offset
//! or path they concern, and the [`Result`] alias used throughout the crate.

use std::io;
use std::path::PathBuf;

/// `Result` with millpond's [`Error`] as the default error type.
///
/// # Examples
///
/// ```
/// fn open() -> millpond::Result<millpond::Broker> {
///     let dir = std::env::temp_dir().join(format!("millpond-doc-result-{}", std::process::id()));
///     millpond::Broker::open(&dir)
/// }
/// # let b = open().unwrap(); let d = b.dir().to_path_buf(); drop(b); std::fs::remove_dir_all(d).unwrap();
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in millpond.
///
/// Every variant says what was wrong and where. No operation panics on bad
/// input or bad files; each returns one of these and leaves the log as it was.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Error, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-error-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// match broker.create_topic("no/slashes", TopicConfig::default()) {
///     Err(Error::InvalidName { kind, name, .. }) => assert_eq!((kind, name.as_str()), ("topic", "no/slashes")),
///     other => panic!("expected InvalidName, got {other:?}"),
/// }
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another `Broker` (in this process or another) holds the directory's lock.
    #[error("broker directory {path} is locked by another Broker (in this or another process)")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The path is not a broker directory (it has no `millpond.lock`), and
    /// opening was asked not to create one
    /// ([`Broker::open_existing`](crate::Broker::open_existing),
    /// [`BrokerConfig::create`](crate::BrokerConfig::create)). Nothing was
    /// created.
    #[error("no millpond broker at {path} (no millpond.lock there); nothing was created")]
    BrokerNotFound {
        /// The directory asked for.
        path: PathBuf,
    },

    /// The broker was opened read-only
    /// ([`Broker::open_read_only`](crate::Broker::open_read_only)): it reads
    /// what the writer process publishes, and `op` would write. Nothing was
    /// changed. Writes go through the process that holds the directory's
    /// lock (or open the directory with [`Broker::open`](crate::Broker::open) once none does).
    #[error("{op} needs the writer: the broker at {path} was opened read-only; nothing was changed")]
    ReadOnly {
        /// What was asked for ("send", "create topic", "commit", ...).
        op: &'static str,
        /// The broker directory.
        path: PathBuf,
    },

    /// A transaction was open longer than its timeout
    /// ([`BrokerConfig::transaction_timeout`](crate::BrokerConfig::transaction_timeout)):
    /// it was aborted, and nothing of it was written or committed. Start a
    /// new transaction (and, in a consume-transform-produce loop, seek the
    /// input back to the last committed offsets) to try again.
    #[error(
        "transaction timed out after {elapsed:?} (its timeout is {timeout:?}); it was aborted and nothing of it was written"
    )]
    TransactionTimedOut {
        /// How long the transaction had been open.
        elapsed: std::time::Duration,
        /// The timeout it had.
        timeout: std::time::Duration,
    },

    /// The transaction **was committed** — its records are visible and its
    /// group offsets committed — but making it durable failed (an msync or
    /// fsync error, under `FsyncPolicy::Always`), so it may not survive a
    /// machine crash. The partitions concerned refuse further writes
    /// ([`Error::Poisoned`]). Do not retry the transaction: that would
    /// write its records twice.
    #[error("the transaction was committed, but making it durable failed: {source}")]
    TransactionNotDurable {
        /// The failed sync.
        source: Box<Error>,
    },

    /// A transaction's records for one partition take more bytes than one
    /// segment can hold (a share of a transaction goes in one segment, of
    /// at most 2 GiB). Nothing was written.
    #[error(
        "a transaction's records for topic {topic:?} partition {partition} take {bytes} bytes, more than the {limit} one segment can hold; nothing was written"
    )]
    TransactionTooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// Bytes the share takes.
        bytes: u64,
        /// The most a share may take.
        limit: u64,
    },

    /// The broker was closed with [`Broker::close`](crate::Broker::close):
    /// the operation cannot proceed. (Dropping handles never causes this:
    /// every handle keeps the broker open until the last one goes.)
    #[error("the broker was closed (Broker::close was called); open its directory again to go on")]
    Closed,

    /// A blocking or async receive was interrupted by the consumer's
    /// [`WakeupHandle`](crate::WakeupHandle); nothing was received, and the
    /// consumer can go on receiving.
    #[error("the receive was interrupted by its WakeupHandle")]
    Interrupted,

    /// The topic was deleted while this handle was in use.
    #[error("topic {topic:?} was deleted")]
    TopicDeleted {
        /// The deleted topic.
        topic: String,
    },

    /// A topic or group name is not acceptable.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `"topic"` or `"group"`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// No topic of that name exists.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The name asked for.
        topic: String,
    },

    /// The topic's directory exists but could not be opened when the broker
    /// was (a damaged or foreign `topic.meta`, a symlink, partition
    /// directories its metadata does not account for, …). Its files are
    /// left as they are; [`Broker::damaged_topics`](crate::Broker::damaged_topics)
    /// lists every such topic with the error that made it unusable.
    #[error("topic {topic:?} at {path} is damaged and was not opened: {reason}")]
    TopicDamaged {
        /// The topic.
        topic: String,
        /// Its directory.
        path: PathBuf,
        /// Why it could not be opened.
        reason: String,
    },

    /// The topic exists with a different configuration.
    #[error("topic {topic:?} already exists with a different configuration: {difference}")]
    TopicConfigMismatch {
        /// The topic.
        topic: String,
        /// Which setting differs, with both values.
        difference: String,
    },

    /// The Kafka client refused a setting or could not be created.
    #[cfg(feature = "kafka")]
    #[error("kafka: {reason}")]
    Kafka {
        /// What failed.
        reason: String,
    },

    /// A thread millpond needed could not be started (the process is at its
    /// thread or memory limit).
    #[error("cannot start the {name} thread: {source}")]
    ThreadSpawn {
        /// The thread's name.
        name: String,
        /// Why the system refused.
        #[source]
        source: io::Error,
    },

    /// The copying thread of a [`Mirror`](crate::Mirror) or of the Kafka
    /// bridge panicked (from [`Mirror::stop`](crate::Mirror::stop) or the
    /// bridge's `stop`): a bug in millpond, or in librdkafka under the
    /// bridge. Its partitions' records stay where they were; nothing
    /// copied is lost. Also the thread of a
    /// [`MemberChannel`](crate::MemberChannel), whose rebalance listener
    /// panicked: nothing more was committed. And the `send` whose record
    /// another thread's `send` was writing with its own (a write group)
    /// when that one panicked: the record may or may not be stored.
    #[error("the {what} thread panicked")]
    ThreadPanicked {
        /// Which thread.
        what: &'static str,
    },

    /// A partition's backlog is at its [`Backlog`](crate::Backlog) limit
    /// (from [`TrySendError::into_error`](crate::TrySendError::into_error)).
    #[error("the partition's backlog is at its limit")]
    Full,

    /// A typed producer's codec could not encode a value; nothing was sent.
    #[error("cannot encode a value for topic {topic:?}: {reason}")]
    Encode {
        /// The topic.
        topic: String,
        /// The codec's explanation.
        reason: String,
    },

    /// A typed consumer's codec could not decode a record. The consumer has
    /// moved past it; the next receive goes on with the following record.
    #[error("cannot decode the record at topic {topic:?} partition {partition} offset {offset}: {reason}")]
    Decode {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The record's offset.
        offset: u64,
        /// The codec's explanation.
        reason: String,
    },

    /// A group member needs a partition's committed offset, has none, and
    /// its reset policy is [`OffsetReset::Fail`](crate::OffsetReset::Fail).
    #[error("group {group:?} has no committed offset for topic {topic:?} partition {partition}")]
    NoCommittedOffset {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
    },

    /// A group member tried to commit or seek a partition it does not own.
    #[error("group {group:?} member does not own partition {partition} of topic {topic:?}")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
    },

    /// A commit made through a [`Committer`](crate::Committer) whose group
    /// member has left the group (closed or dropped): it commits nothing.
    #[error("the member of group {group:?} on topic {topic:?} that made this committer has left the group")]
    NotAMember {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
    },

    /// The consumer group has no members and no committed offsets on this
    /// topic: there is nothing to describe, and no lag to report.
    #[error("consumer group {group:?} does not exist on topic {topic:?} (no members, no committed offsets)")]
    GroupNotFound {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
    },

    /// The operation needs a group without members (resetting or deleting
    /// its offsets), and this one has some.
    #[error("consumer group {group:?} on topic {topic:?} has {members} active member(s); stop them first")]
    GroupActive {
        /// The topic.
        topic: String,
        /// The group.
        group: String,
        /// How many members it has now.
        members: usize,
    },

    /// A record the format cannot hold (for example a header name over 64 KiB).
    #[error("invalid record for topic {topic:?}: {reason}")]
    InvalidRecord {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A partition number outside `0..partitions`.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    InvalidPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },

    /// A record is larger than the topic's `max_record_bytes`.
    #[error("record of {size} bytes for topic {topic:?} exceeds max_record_bytes ({max})")]
    RecordTooLarge {
        /// The topic.
        topic: String,
        /// The encoded size of the record.
        size: usize,
        /// The topic's limit.
        max: usize,
    },

    /// A requested offset is not in the log.
    #[error(
        "offset {offset} is out of range for topic {topic:?} partition {partition} \
         (valid: {start}..={end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The log start offset (the earliest offset still stored).
        start: u64,
        /// The high watermark (one past the last record).
        end: u64,
    },

    /// A reader fell behind retention: records `from..resumed_at` of this
    /// partition were deleted before it read them. Returned once; the
    /// reader's position has already moved to `resumed_at` (the log start,
    /// or for a group member with [`OffsetReset::Latest`](crate::OffsetReset::Latest)
    /// the high watermark), so the next receive call goes on from there
    /// (tokio's `Lagged`). A group member with
    /// [`OffsetReset::Fail`](crate::OffsetReset::Fail) gets
    /// [`Error::OffsetOutOfRange`] instead, and stays where it is until it
    /// seeks.
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-lagged-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// // Tiny segments and a tiny retention, so retention deletes quickly.
    /// let cfg = TopicConfig::default().segment_bytes(4096).max_record_bytes(1024).retention_bytes(8192);
    /// let topic = broker.create_topic("t", cfg)?;
    /// let producer = topic.producer();
    /// producer.send(Record::new(vec![0; 500]))?;
    /// let mut slow = topic.consumer(StartFrom::Earliest)?;
    /// slow.recv()?; // offset 0
    /// for _ in 0..100 {
    ///     producer.send(Record::new(vec![1; 500]))?; // meanwhile: many segments
    /// }
    /// topic.enforce_retention()?;
    /// let start = topic.log_start(0)?;
    /// loop {
    ///     match slow.try_recv() {
    ///         Ok(Some(m)) if m.offset() < start => continue, // the rest of its (deleted) segment
    ///         Err(Error::Lagged { from, resumed_at, .. }) => {
    ///             assert_eq!(resumed_at, start); // records from..start are gone
    ///             assert!(from < start);
    ///             break;
    ///         }
    ///         other => panic!("expected Lagged, got {other:?}"),
    ///     }
    /// }
    /// assert_eq!(slow.try_recv()?.map(|m| m.offset()), Some(start)); // and goes on
    /// # drop((slow, producer, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error(
        "reader of topic {topic:?} partition {partition} fell behind retention: offsets \
         {from}..{resumed_at} were deleted before it read them; it goes on at {resumed_at}"
    )]
    Lagged {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The first offset the reader missed (its position before).
        from: u64,
        /// Where the reader goes on (its position now).
        resumed_at: u64,
    },

    /// The log told a reader that records from `position` on were deleted
    /// but named a place to go on at or before `position` (for instance a
    /// segment file in the wrong place). Following it would move the reader
    /// backwards and read the same records again, for ever; only an explicit
    /// [`seek`](crate::Consumer::seek) moves a position backwards, so the
    /// reader stays at `position` and receive calls that reach this
    /// partition report this error until the reader seeks. Its other
    /// partitions are read on meanwhile.
    ///
    /// ```
    /// use millpond::Error;
    /// let e = Error::PositionRegressed { topic: "t".into(), partition: 0, position: 15, resumed_at: 0 };
    /// assert!(e.to_string().contains("backwards"));
    /// ```
    #[error(
        "reader of topic {topic:?} partition {partition} at offset {position} was told to go on at \
         {resumed_at}, backwards: the partition's segments are inconsistent; seek to go on"
    )]
    PositionRegressed {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The reader's position, where it stays.
        position: u64,
        /// Where the log said to go on (at or before `position`).
        resumed_at: u64,
    },

    /// A frame or record in a segment failed its checks. No data from it is returned.
    #[error("corrupt data in topic {topic:?} partition {partition}, file {path} at byte {position}: {reason}")]
    Corrupt {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad frame in the file.
        position: u64,
        /// What check failed.
        reason: String,
    },

    /// A file was written in an on-disk format this release does not read
    /// (a segment or `topic.meta` of millpond 0.1, format version 1). It is
    /// never misread and never changed.
    ///
    /// To migrate, read the old directory with millpond 0.1 and produce its
    /// records again into a new directory with this release (a small program
    /// that consumes every topic and sends each record, or the Kafka bridge).
    #[error(
        "{path} is in on-disk format version {found}, but this release reads version {supported}; \
         read the directory with the millpond release that wrote it and produce its records again \
         into a new directory (see the CHANGELOG's migration note)"
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The version the file was written in.
        found: u16,
        /// The version this release reads.
        supported: u16,
    },

    /// A metadata file (topic config, index, committed offsets) is unreadable.
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// A previous msync/fsync failed, so the partition refuses further writes:
    /// the kernel may already have dropped the unsynced data.
    #[error("topic {topic:?} partition {partition} is poisoned by an earlier failed sync: {reason}")]
    Poisoned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The failure that poisoned it.
        reason: String,
    },

    /// The disk (or a quota) is full. Nothing partial became visible; sends
    /// succeed again once space is freed.
    #[error("no space left while trying to {op} {path}: {source}")]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file or directory inside the broker directory is a symbolic link.
    /// millpond never follows one, so that nothing outside the directory is
    /// read, written, truncated or deleted through it.
    #[error("refusing to {op} {path}: it is a symbolic link, which millpond never follows")]
    Symlink {
        /// What was being done.
        op: &'static str,
        /// The link.
        path: PathBuf,
    },

    /// Any other I/O failure.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an `io::Error` with what was being done and where, mapping
    /// "no space" conditions to [`Error::DiskFull`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        let path = path.into();
        let full = matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
            || source.raw_os_error() == Some(libc::ENOSPC)
            || source.raw_os_error() == Some(libc::EFBIG)
            || source.raw_os_error() == Some(libc::EDQUOT);
        if full {
            Error::DiskFull { op, path, source }
        } else if source.raw_os_error() == Some(libc::ELOOP) {
            // O_NOFOLLOW met a symlink in the last component.
            Error::Symlink { op, path }
        } else {
            Error::Io { op, path, source }
        }
    }

    /// Returns a closure for `map_err` that wraps an `io::Error` with context.
    pub(crate) fn io_at<'p>(op: &'static str, path: &'p std::path::Path) -> impl FnOnce(io::Error) -> Error + 'p {
        move |source| Error::io(op, path, source)
    }
}
