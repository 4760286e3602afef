//! [`BrokerConfig`]: the settings of a broker that are not stored on disk.

use std::sync::Arc;

use crate::storage::health::{BackgroundError, Callback};
use crate::storage::policy::RecoveryMode;

/// Settings of a [`Broker`](crate::Broker) that are not stored on disk.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, BrokerConfig, RecoveryMode};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-brokercfg-{}", std::process::id()));
/// let broker = Broker::open_with(&dir, BrokerConfig::default().recovery(RecoveryMode::TruncateCorruptTail))?;
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BrokerConfig {
    pub(crate) recovery: RecoveryMode,
    /// 0: no pre-fault thread.
    pub(crate) prefault_bytes: u32,
    /// Refuse to open when a topic is damaged, instead of listing it.
    pub(crate) fail_on_damaged_topic: bool,
    /// Where background failures are reported, besides the log.
    pub(crate) background_error: Option<Callback>,
    /// Create the directory (and make it a broker) when it is not one.
    pub(crate) create: bool,
    /// Open for reading only, beside a writer in another process.
    pub(crate) read_only: bool,
    pub(crate) transaction_timeout: std::time::Duration,
}

/// The pre-fault window of [`BrokerConfig::default`].
const DEFAULT_PREFAULT_BYTES: u32 = 4 << 20;

/// Kafka's default `transaction.timeout.ms`.
const DEFAULT_TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            recovery: RecoveryMode::default(),
            prefault_bytes: DEFAULT_PREFAULT_BYTES,
            fail_on_damaged_topic: false,
            background_error: None,
            create: true,
            read_only: false,
            transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("recovery", &self.recovery)
            .field("prefault_bytes", &self.prefault_bytes)
            .field("fail_on_damaged_topic", &self.fail_on_damaged_topic)
            .field("create", &self.create)
            .field("read_only", &self.read_only)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("on_background_error", &self.background_error.as_ref().map(|_| "callback"))
            .finish()
    }
}

impl BrokerConfig {
    /// Sets how many bytes ahead of each partition's writer a background
    /// thread prepares the active segment's pages: 4 MiB by default; `0`
    /// runs no such thread. Other values are clamped to 64 KiB ..= 64 MiB.
    ///
    /// The first write to a fresh page of a memory-mapped file costs a
    /// page fault in which the kernel allocates and zeroes the page: about
    /// half of a small `send` on our 2-vCPU test VM. With pre-faulting, a
    /// broker thread asks the kernel (`posix_fadvise(POSIX_FADV_WILLNEED)`,
    /// Linux; elsewhere no thread is started) to bring the next pages into
    /// the page cache while the producer is still writing earlier ones, so
    /// the producer's fault only maps a page that is already there. No byte
    /// is changed; only partitions being written are prepared, at most this
    /// many bytes beyond their last write; the pages stay clean (never
    /// written back unless a record lands there) and the thread runs only on
    /// otherwise idle cores (`SCHED_IDLE`), so on a busy machine the
    /// producer simply faults its own pages. The advice takes no lock that
    /// a producer's page fault waits for (the earlier `MADV_POPULATE_WRITE`
    /// did, which raised tail latency; see the crate's performance notes).
    /// Turn it off (`0`) where page cache is scarcer than CPU.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-prefault-{}", std::process::id()));
    /// // Bulk ingestion on a machine with idle cores: prepare 16 MiB ahead.
    /// let broker = Broker::open_with(&dir, BrokerConfig::default().prefault_bytes(16 << 20))?;
    /// let topic = broker.create_topic("ingest", TopicConfig::default())?;
    /// let producer = topic.producer();
    /// for i in 0..10_000u32 {
    ///     producer.send(Record::new(i.to_le_bytes().to_vec()))?;
    /// }
    /// // Pages are prepared, never changed: what was written reads back.
    /// assert_eq!(topic.consumer(StartFrom::Earliest)?.try_iter().count(), 10_000);
    /// # drop((producer, topic, broker)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prefault_bytes(mut self, bytes: u32) -> Self {
        self.prefault_bytes = bytes;
        self
    }

    /// Sets the [`RecoveryMode`] used when opening partitions.
    ///
    /// ```
    /// use millpond::{BrokerConfig, RecoveryMode};
    /// let cfg = BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail);
    /// # let _ = cfg;
    /// ```
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }

    /// Whether [`Broker::open_with`](crate::Broker::open_with) refuses to
    /// open the directory when one topic cannot be opened (a damaged
    /// `topic.meta`, a stray directory, a symlink), failing with that
    /// topic's error. The default, `false`, opens every healthy topic and
    /// lists the others in [`Broker::damaged_topics`](crate::Broker::damaged_topics);
    /// `true` suits tools that must not run on a partial directory.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-faildamaged-{}", std::process::id()));
    /// # drop(Broker::open(&dir)?.create_topic("t", TopicConfig::default())?);
    /// std::fs::write(dir.join("topics/t/topic.meta"), b"garbage")?;
    /// let strict = BrokerConfig::default().fail_on_damaged_topic(true);
    /// assert!(matches!(Broker::open_with(&dir, strict), Err(Error::CorruptMetadata { .. })));
    /// assert_eq!(Broker::open(&dir)?.damaged_topics().len(), 1); // the default opens the rest
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fail_on_damaged_topic(mut self, fail: bool) -> Self {
        self.fail_on_damaged_topic = fail;
        self
    }

    /// Whether opening may create the broker: make the directory (and its
    /// parents) if missing and the broker's files in it (`true`, the
    /// default). With `false`, a path that is not already a broker
    /// directory (no `millpond.lock` in it: a typo, a wrong mount) is
    /// [`Error::BrokerNotFound`](crate::Error::BrokerNotFound) and nothing
    /// is created. [`Broker::open_existing`](crate::Broker::open_existing)
    /// opens this way.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Error};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-create-{}", std::process::id()));
    /// let typo = dir.join("brokr");
    /// let err = Broker::open_with(&typo, BrokerConfig::default().create(false)).unwrap_err();
    /// assert!(matches!(err, Error::BrokerNotFound { .. }));
    /// assert!(!typo.exists()); // nothing was created
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Opens the broker for reading only, in this process, beside the one
    /// process (or none) that writes it: no lock is taken, nothing in the
    /// directory is created, changed or removed, and every write is
    /// [`Error::ReadOnly`](crate::Error::ReadOnly). Implies
    /// `create(false)`. [`Broker::open_read_only`](crate::Broker::open_read_only)
    /// opens this way and says what such a broker does.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Error};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-readonlycfg-{}", std::process::id()));
    /// let err = Broker::open_with(&dir, BrokerConfig::default().read_only(true)).unwrap_err();
    /// assert!(matches!(err, Error::BrokerNotFound { .. })); // read-only never creates
    /// assert!(!dir.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// How long a [`Transaction`](crate::Transaction) may stay open: one
    /// older than this when it commits (or sends) is aborted with
    /// [`Error::TransactionTimedOut`](crate::Error::TransactionTimedOut).
    /// Default 60 s, as Kafka's `transaction.timeout.ms`. An open transaction
    /// holds no reader back (its records are not in the log until it
    /// commits); the timeout bounds how long it holds its records in memory
    /// and how stale the input positions it commits can be.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, Error, Record, TopicConfig};
    /// use std::time::Duration;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-txntimeout-{}", std::process::id()));
    /// let config = BrokerConfig::default().transaction_timeout(Duration::from_millis(10));
    /// let broker = Broker::open_with(&dir, config)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let mut txn = broker.transaction()?;
    /// txn.send(&topic, Record::new("late"))?;
    /// std::thread::sleep(Duration::from_millis(20));
    /// assert!(matches!(txn.commit(), Err(Error::TransactionTimedOut { .. })));
    /// assert_eq!(topic.high_watermark(0)?, 0); // nothing was written
    /// # drop(topic); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn transaction_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// The transaction timeout (see [`BrokerConfig::transaction_timeout`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// assert_eq!(millpond::BrokerConfig::default().get_transaction_timeout(), Duration::from_secs(60));
    /// ```
    pub fn get_transaction_timeout(&self) -> std::time::Duration {
        self.transaction_timeout
    }

    /// Whether the broker is opened read-only (see [`BrokerConfig::read_only`]).
    ///
    /// ```
    /// assert!(!millpond::BrokerConfig::default().get_read_only());
    /// ```
    pub fn get_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether opening may create the broker (see [`BrokerConfig::create`]).
    ///
    /// ```
    /// assert!(millpond::BrokerConfig::default().get_create());
    /// ```
    pub fn get_create(&self) -> bool {
        self.create
    }

    /// The [`RecoveryMode`].
    ///
    /// ```
    /// use millpond::{BrokerConfig, RecoveryMode};
    /// assert_eq!(BrokerConfig::default().get_recovery(), RecoveryMode::TruncateCorruptTail);
    /// ```
    pub fn get_recovery(&self) -> RecoveryMode {
        self.recovery
    }

    /// How many bytes ahead the pre-fault thread prepares (`0`: none).
    ///
    /// ```
    /// assert_eq!(millpond::BrokerConfig::default().get_prefault_bytes(), 4 << 20);
    /// assert_eq!(millpond::BrokerConfig::default().prefault_bytes(0).get_prefault_bytes(), 0);
    /// ```
    pub fn get_prefault_bytes(&self) -> u32 {
        self.prefault_bytes
    }

    /// Whether opening fails on a damaged topic.
    ///
    /// ```
    /// assert!(!millpond::BrokerConfig::default().get_fail_on_damaged_topic());
    /// ```
    pub fn get_fail_on_damaged_topic(&self) -> bool {
        self.fail_on_damaged_topic
    }

    /// Calls `callback` with each failure of background work — retention,
    /// compaction, interval syncs, pre-faulting, a sealed segment's index, a
    /// group member's commit on drop, closing on drop, starting a thread —
    /// once per distinct failure: the same task failing the same way on the
    /// same partition again is not reported again until it has succeeded in
    /// between. Every such failure is also logged (`log::warn!`) and listed
    /// by [`Broker::background_errors`](crate::Broker::background_errors)
    /// while it is current. The callback runs on the thread that met the
    /// failure (often the broker's maintenance thread): keep it short, and
    /// do not call back into the broker from it. A panic in it is caught
    /// and logged.
    ///
    /// ```
    /// use millpond::{BackgroundTask, Broker, BrokerConfig};
    /// use std::sync::{Arc, Mutex};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-onbgerr-{}", std::process::id()));
    /// let alerts: Arc<Mutex<Vec<BackgroundTask>>> = Arc::default();
    /// let sink = Arc::clone(&alerts);
    /// let broker = Broker::open_with(
    ///     &dir,
    ///     BrokerConfig::default().on_background_error(move |e| sink.lock().unwrap().push(e.task)),
    /// )?;
    /// assert!(alerts.lock().unwrap().is_empty()); // nothing has failed
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_background_error(mut self, callback: impl Fn(&BackgroundError) + Send + Sync + 'static) -> Self {
        self.background_error = Some(Arc::new(callback));
        self
    }
}
