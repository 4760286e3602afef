//! [`Broker`]: one directory on disk holding topics, written by one process
//! at a time (and read by any number: `broker/read_only.rs`).

use std::path::Path;
use std::sync::Arc;

use crate::broker::config::BrokerConfig;
use crate::broker::keep_alive::KeepAlive;
use crate::broker::shared::{GROUPS_DIR, LOCK_FILE, Shared, TOPICS_DIR, TRASH_DIR, remove_entry};
use crate::error::{Error, Result};
use crate::storage::fsutil;
use crate::storage::health::{BackgroundError, BackgroundTask, Health};
use crate::storage::prefault::Prefaulter;
use crate::storage::wake_file::WakeFile;

/// A broker directory, opened: the registry of its topics.
///
/// `Broker` is a cheap handle (`Clone`, `Send + Sync`; an `Arc` inside).
/// Every handle taken from it (a [`Topic`](crate::Topic), and the
/// producers, consumers, groups and group members taken from that) keeps
/// the broker open, so `Broker::open(dir)?.create_topic(..)?` is a topic you
/// can use. When the last of them is dropped, or [`Broker::close`] is
/// called, every partition is flushed and closed, blocked consumers wake
/// with [`Error::Closed`], producers get [`Error::Closed`], and the
/// directory lock is released. (A handle captured by the
/// [`BrokerConfig::on_background_error`] callback would keep the broker open
/// for as long as the broker itself: close such a broker explicitly.)
///
/// # On disk
///
/// ```text
/// <dir>/millpond.lock                             exclusive lock: a second open gets Error::Locked
/// <dir>/millpond.wake                             one shared page through which the writer wakes read-only readers
/// <dir>/topics/<topic>/topic.meta                 the topic's config, checksummed
/// <dir>/topics/<topic>/<partition>/<base>.log     segments; <base> = first offset, 20 digits
/// <dir>/topics/<topic>/<partition>/<base>.index   sparse index of a sealed segment
/// <dir>/topics/<topic>/<partition>/epochs         the partition's epochs (writer sessions), checksummed
/// <dir>/groups/<group>/<topic>/offsets            a group's committed offsets (and `offsets.prev`)
/// <dir>/trash/                                    deleted topics, emptied at open
/// ```
///
/// Nothing is followed through a symlink: a symlinked file or directory in
/// here is an error ([`Error::Symlink`]) or a damaged topic
/// ([`Broker::damaged_topics`]), never a way out of the directory.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-broker-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let orders = broker.create_topic("orders", TopicConfig::default().partitions(2))?;
/// orders.producer().send(Record::new("order-1"))?;
///
/// // Only one Broker may own a directory at a time.
/// assert!(matches!(Broker::open(&dir), Err(Error::Locked { .. })));
///
/// // Every handle keeps the broker open: dropping the `Broker` alone
/// // closes nothing while `orders` lives.
/// drop(broker);
/// orders.producer().send(Record::new("order-2"))?;
/// drop(orders); // the last handle: flushes, closes and unlocks
/// let broker = Broker::open(&dir)?;
/// let m = broker.topic("orders")?.consumer(StartFrom::Earliest)?.recv()?;
/// assert_eq!(m.value(), b"order-1");
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    alive: Arc<KeepAlive>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("dir", &self.alive.shared().dir).field("closed", &self.is_closed()).finish()
    }
}

impl Broker {
    /// Opens the broker directory `dir`, creating it if needed and recovering
    /// every partition's active segment.
    ///
    /// Fails with [`Error::Locked`] if another `Broker` (in this process or
    /// another) has it open, with [`Error::InvalidConfig`] for an empty path
    /// (which would mean the current directory: pass `"."` for that), and with
    /// [`Error::Symlink`] if the lock file or `topics/`, `groups/` or `trash/`
    /// is a symbolic link. `dir` itself may be a symlink; nothing inside it
    /// is ever followed, so nothing outside it is touched.
    ///
    /// A topic that cannot be opened (a damaged or foreign `topic.meta`, a
    /// stray directory, a symlink) does not stop the others: it is left as it
    /// is and listed in [`Broker::damaged_topics`] (unless
    /// [`BrokerConfig::fail_on_damaged_topic`] asks to fail instead). A
    /// failure while recovering a healthy topic's partitions (see
    /// [`RecoveryMode`](crate::RecoveryMode)) still fails the open.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-open-{}", std::process::id()));
    /// let broker = millpond::Broker::open(&dir)?;
    /// assert!(broker.topics().is_empty());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Broker> {
        Broker::open_with(dir, BrokerConfig::default())
    }

    /// Opens the broker directory `dir`, which must already be one (made
    /// by an earlier open): a path without a broker is
    /// [`Error::BrokerNotFound`] and nothing is created, so a mistyped path
    /// cannot start an empty broker by accident. Otherwise as
    /// [`Broker::open`].
    ///
    /// ```
    /// use millpond::{Broker, Error};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-openexisting-{}", std::process::id()));
    /// assert!(matches!(Broker::open_existing(&dir), Err(Error::BrokerNotFound { .. })));
    /// drop(Broker::open(&dir)?); // creates it
    /// let broker = Broker::open_existing(&dir)?; // now it is there
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Broker> {
        Broker::open_with(dir, BrokerConfig::default().create(false))
    }

    /// Opens `dir` with explicit [`BrokerConfig`] settings.
    ///
    /// ```
    /// use millpond::{Broker, BrokerConfig, RecoveryMode};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-openwith-{}", std::process::id()));
    /// let broker = Broker::open_with(&dir, BrokerConfig::default().recovery(RecoveryMode::FailOnCorruptTail))?;
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_with(dir: impl AsRef<Path>, config: BrokerConfig) -> Result<Broker> {
        let dir = dir.as_ref().to_path_buf();
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidConfig {
                reason: "the broker directory path is empty (pass \".\" to mean the current directory)".into(),
            });
        }
        if config.read_only {
            return Broker::open_following(dir, config);
        }
        let lock_path = dir.join(LOCK_FILE);
        if config.create {
            fsutil::create_dir_all(&dir)?;
        } else if !std::fs::symlink_metadata(&lock_path).is_ok_and(|m| m.file_type().is_file()) {
            return Err(Error::BrokerNotFound { path: dir });
        }
        let lock = fsutil::new_file_options()
            .read(true)
            .write(true)
            .create(config.create)
            .truncate(false)
            .open(&lock_path)
            .map_err(Error::io_at("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: lock_path }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", lock_path, e)),
        }
        for (sub, what) in [
            (TOPICS_DIR, "use topics directory"),
            (GROUPS_DIR, "use groups directory"),
            (TRASH_DIR, "use trash directory"),
        ] {
            create_real_dir(&dir.join(sub), what)?;
        }
        empty_trash(&dir.join(TRASH_DIR))?;
        let health = Arc::new(Health::new(config.background_error.clone()));
        let prefault = match config.prefault_bytes {
            0 => None,
            ahead => match Prefaulter::start(ahead, Arc::clone(&health)) {
                Ok(started) => started,
                // Only an optimization: run without it, but say so.
                Err(e) => {
                    health.report(BackgroundError::new(BackgroundTask::StartThread, e));
                    None
                }
            },
        };
        // A symlink in the wake file's place is refused like one in the
        // lock file's; any other failure only costs readers in other
        // processes their wake-ups (they poll), so it is reported.
        let wake = match WakeFile::open_for_writer(&dir) {
            Ok(wake) => Some(Arc::new(wake)),
            Err(e @ Error::Symlink { .. }) => return Err(e),
            Err(e) => {
                health.report(BackgroundError::new(BackgroundTask::WakeFile, e));
                None
            }
        };
        let shared = Arc::new(Shared::new(dir, config, Some(lock), health, prefault, wake, None));
        // From here on, dropping `broker` on error closes what was opened.
        let broker = Broker::from_shared(Arc::clone(&shared));
        shared.open_transactions()?;
        shared.open_listed_topics()?;
        shared.finish_transaction_recovery()?;
        shared.ensure_maintenance();
        Ok(broker)
    }

    /// The broker's directory.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-dir-{}", std::process::id()));
    /// let broker = millpond::Broker::open(&dir)?;
    /// assert_eq!(broker.dir(), dir.as_path());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.alive.shared().dir
    }

    /// The background failures that are current: reported (through the
    /// log and [`BrokerConfig::on_background_error`]) and not since
    /// resolved by the same task succeeding, oldest first.
    ///
    /// ```
    /// use millpond::Broker;
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-bgerrs-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// assert!(broker.background_errors().is_empty());
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn background_errors(&self) -> Vec<BackgroundError> {
        self.alive.shared().health.current()
    }

    /// The broker whose state is `shared` (just made by an open).
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Broker {
        Broker { alive: Arc::new(KeepAlive::new(shared)) }
    }

    /// The state every handle of this broker shares.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.alive.shared()
    }

    /// The token every handle taken from this broker holds.
    pub(crate) fn keep_alive(&self) -> &Arc<KeepAlive> {
        &self.alive
    }

    /// Flushes and closes every partition, wakes blocked consumers with
    /// [`Error::Closed`], and releases the directory lock. Idempotent;
    /// dropping the last handle (a `Broker`, `Topic`, producer, consumer,
    /// group or member) does the same but can only report its errors.
    ///
    /// ```
    /// use millpond::{Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-close-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let t = broker.create_topic("t", TopicConfig::default())?;
    /// broker.close()?;
    /// assert!(broker.is_closed());
    /// assert!(matches!(t.producer().send(millpond::Record::new("x")), Err(Error::Closed)));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) -> Result<()> {
        self.alive.shared().close()
    }

    /// Whether the broker was closed.
    ///
    /// See [`Broker::close`] for an example.
    pub fn is_closed(&self) -> bool {
        self.alive.shared().is_closed()
    }
}

/// Removes everything in the trash directory (left by a crash during topic
/// creation or deletion).
fn empty_trash(trash: &Path) -> Result<()> {
    for entry in std::fs::read_dir(trash).map_err(Error::io_at("list trash", trash))? {
        let path = entry.map_err(Error::io_at("list trash", trash))?.path();
        remove_entry(&path).map_err(Error::io_at("empty trash", &path))?;
    }
    Ok(())
}

/// Creates one directory of the broker's (`topics/`, `groups/`, `trash/`)
/// if missing, refusing a symlink in its place ([`Error::Symlink`], `what`
/// names the operation) so nothing below it can lead outside the broker
/// directory.
fn create_real_dir(path: &Path, what: &'static str) -> Result<()> {
    if fsutil::is_symlink(path) {
        return Err(Error::Symlink { op: what, path: path.to_path_buf() });
    }
    fsutil::create_dir_all(path)?;
    fsutil::check_real_dir(path, what)
}
