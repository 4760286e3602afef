//! [`Broker`]: one directory on disk holding topics, owned by one process at
//! a time.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use parking_lot::{Mutex, RwLock};

use crate::broker::config::BrokerConfig;
use crate::broker::topic::Topic;
use crate::error::{Error, Result};
use crate::group::coordinator::GroupState;
use crate::group::offsets::OffsetsFile;
use crate::storage::fsutil;
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::policy::FsyncPolicy;
use crate::storage::prefault::Prefaulter;
use crate::storage::recovery_event::{DamagedTopic, RecoveryEvent};
use crate::topic::config::TopicConfig;
use crate::topic::meta;
use crate::topic::names;
use crate::topic::state::TopicState;
use crate::topic::verify::{VerifyReport, verify_topic};

const LOCK_FILE: &str = "millpond.lock";
const TOPICS_DIR: &str = "topics";
const GROUPS_DIR: &str = "groups";
const TRASH_DIR: &str = "trash";
const META_FILE: &str = "topic.meta";

/// A broker directory, opened: the registry of its topics.
///
/// `Broker` is a cheap handle (`Clone`, `Send + Sync`; an `Arc` inside).
/// When the last handle is dropped, or [`Broker::close`] is called, every
/// partition is flushed and closed, blocked consumers wake with
/// [`Error::Closed`], producers get [`Error::Closed`], and the directory lock
/// is released. `Topic`, `Producer` and `Consumer` handles do not keep the
/// broker open.
///
/// # On disk
///
/// ```text
/// <dir>/millpond.lock                             exclusive lock: a second open gets Error::Locked
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
/// drop(broker); // flushes, closes and unlocks
/// let broker = Broker::open(&dir)?;
/// let m = broker.topic("orders")?.consumer(StartFrom::Earliest)?.recv()?;
/// assert_eq!(m.value(), b"order-1");
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    handle: Arc<Handle>,
}

/// Closes the broker when the last user-held `Broker` goes away.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.shared.close() {
            // Drop cannot return the error; callers who need it use
            // `Broker::close`. It is still reported rather than swallowed.
            eprintln!("millpond: error while closing broker {}: {e}", self.shared.dir.display());
        }
    }
}

/// State shared by the broker and every handle derived from it.
pub(crate) struct Shared {
    dir: PathBuf,
    config: BrokerConfig,
    closed: AtomicBool,
    topics: RwLock<BTreeMap<String, Arc<TopicState>>>,
    /// Topic directories found at open that could not be opened; left as
    /// they are, and their names refused by `topic`, `create_topic` and
    /// `delete_topic`.
    damaged: RwLock<BTreeMap<String, DamagedTopic>>,
    /// Serializes topic creation and deletion.
    admin: Mutex<()>,
    lock: Mutex<Option<File>>,
    report: Mutex<Vec<RecoveryEvent>>,
    flusher: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// The pre-fault thread (see `log/prefault.rs`), unless disabled.
    prefault: Mutex<Option<(Prefaulter, JoinHandle<()>)>>,
    trash_seq: AtomicU64,
    /// Consumer groups in use, by (group, topic).
    groups: Mutex<HashMap<(String, String), Arc<GroupState>>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("dir", &self.handle.shared.dir).field("closed", &self.is_closed()).finish()
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
        fsutil::create_dir_all(&dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fsutil::new_file_options()
            .read(true)
            .write(true)
            .create(true)
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
        let prefault = match config.prefault_bytes {
            0 => None,
            ahead => match Prefaulter::start(ahead) {
                Ok(started) => started,
                // Only an optimization: run without it, but say so.
                Err(e) => {
                    eprintln!("millpond: cannot start the pre-fault thread (appends fault their own pages): {e}");
                    None
                }
            },
        };
        let shared = Arc::new(Shared {
            dir,
            config,
            closed: AtomicBool::new(false),
            topics: RwLock::new(BTreeMap::new()),
            damaged: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            lock: Mutex::new(Some(lock)),
            report: Mutex::new(Vec::new()),
            flusher: Mutex::new(None),
            prefault: Mutex::new(prefault),
            trash_seq: AtomicU64::new(0),
            groups: Mutex::new(HashMap::new()),
        });
        // From here on, dropping `broker` on error closes what was opened.
        let broker = Broker { handle: Arc::new(Handle { shared: Arc::clone(&shared) }) };
        let topics_dir = shared.dir.join(TOPICS_DIR);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&topics_dir).map_err(Error::io_at("list topics", &topics_dir))? {
            let entry = entry.map_err(Error::io_at("list topics", &topics_dir))?;
            // Entries whose names millpond would never create are not ours:
            // ignored (they can never collide with a topic). Everything
            // else is a topic, or is reported as a damaged one.
            if let Some(name) = entry.file_name().to_str().filter(|n| names::validate("topic", n).is_ok()) {
                names.push(name.to_string());
            }
        }
        names.sort();
        for name in names {
            let topic_dir = topics_dir.join(&name);
            // A topic whose directory or metadata is not right is damaged;
            // a failure while opening its partitions (recovery refusing a
            // corrupt tail under `FailOnCorruptTail`, a full disk, I/O)
            // fails the open as before, except a symlink planted inside.
            let opened = match shared.check_topic(&name, &topic_dir) {
                Ok(config) => match shared.open_topic(&name, config, &topic_dir) {
                    Err(e) if !matches!(e, Error::Symlink { .. }) => return Err(e),
                    opened => opened,
                },
                Err(e) => Err(e),
            };
            match opened {
                Ok(inner) => {
                    shared.topics.write().insert(name, inner);
                }
                Err(e) if shared.config.fail_on_damaged_topic => return Err(e),
                Err(e) => {
                    let damaged = DamagedTopic { name: name.clone(), path: topic_dir, error: Arc::new(e) };
                    shared.damaged.write().insert(name, damaged);
                }
            }
        }
        shared.ensure_flusher();
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
        &self.handle.shared.dir
    }

    /// Creates a topic, or returns the existing one if it was created with
    /// the same config. A different config is [`Error::TopicConfigMismatch`];
    /// an invalid name [`Error::InvalidName`]; a bad setting
    /// [`Error::InvalidConfig`]; a name held by a [damaged
    /// topic](Broker::damaged_topics) [`Error::TopicDamaged`] (its files are
    /// never overwritten). On error nothing is left on disk.
    ///
    /// ```
    /// use millpond::{Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-create-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let t = broker.create_topic("events", TopicConfig::default().partitions(3))?;
    /// assert_eq!(t.partitions(), 3);
    /// // Same config: the same topic.
    /// broker.create_topic("events", TopicConfig::default().partitions(3))?;
    /// // Different config: an error.
    /// let err = broker.create_topic("events", TopicConfig::default().partitions(4)).unwrap_err();
    /// assert!(matches!(err, Error::TopicConfigMismatch { .. }));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        names::validate("topic", name)?;
        config.validate()?;
        let shared = &self.handle.shared;
        let _admin = shared.admin.lock();
        shared.check_open()?;
        if let Some(existing) = shared.topics.read().get(name) {
            return match existing.config.difference(&config) {
                None => Ok(Topic::new(Arc::clone(existing), Arc::clone(shared))),
                Some(difference) => Err(Error::TopicConfigMismatch { topic: name.to_string(), difference }),
            };
        }
        if let Some(e) = shared.damaged_error(name) {
            return Err(e);
        }
        // Build the topic in the trash directory, then rename it into place:
        // a crash leaves either no topic or a complete one.
        let staging = shared.trash_path();
        let final_dir = shared.dir.join(TOPICS_DIR).join(name);
        let mut staged = false;
        let mut placed = false;
        let result = (|| {
            fsutil::check_real_dir(&shared.dir.join(TRASH_DIR), "use trash directory")?;
            fsutil::check_real_dir(&shared.dir.join(TOPICS_DIR), "use topics directory")?;
            // Not `create_dir_all`: an entry already there (planted, or a
            // symlink) is an error, never written into.
            fsutil::create_new_dir(&staging)?;
            staged = true;
            fsutil::write_atomic(&staging.join(META_FILE), &meta::encode(&config, name)?)?;
            // rename(2) would replace an empty directory (or one created
            // since the broker was opened): never put a topic over anything.
            if std::fs::symlink_metadata(&final_dir).is_ok() {
                let exists = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
                return Err(Error::io("move new topic into place", &final_dir, exists));
            }
            std::fs::rename(&staging, &final_dir).map_err(Error::io_at("move new topic into place", &final_dir))?;
            placed = true;
            fsutil::fsync_dir(&shared.dir.join(TOPICS_DIR))?;
            shared.open_topic(name, config, &final_dir)
        })();
        let inner = match result {
            Ok(inner) => inner,
            Err(e) => {
                // Leave nothing behind: not the staging directory, and not a
                // half-opened topic (a full disk while preallocating its
                // first segments). Tidy-up only; `e` is what matters.
                if placed {
                    let doomed = shared.trash_path();
                    if std::fs::rename(&final_dir, &doomed).is_ok() {
                        // If this fsync fails, a machine crash may bring the
                        // half-made topic back: say so (the caller gets `e`).
                        if let Err(sync) = fsutil::fsync_dir(&shared.dir.join(TOPICS_DIR)) {
                            eprintln!("millpond: removing the half-created topic {name:?}: {sync}");
                        }
                        let _ = remove_entry(&doomed); // trash is emptied at the next open anyway
                    }
                } else if staged {
                    let _ = remove_entry(&staging); // likewise
                }
                return Err(e);
            }
        };
        shared.topics.write().insert(name.to_string(), Arc::clone(&inner));
        shared.ensure_flusher();
        Ok(Topic::new(inner, Arc::clone(shared)))
    }

    /// The existing topic `name`; [`Error::TopicDamaged`] if its directory
    /// is listed in [`Broker::damaged_topics`]; otherwise
    /// [`Error::UnknownTopic`].
    ///
    /// ```
    /// use millpond::{Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-topic-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// assert!(matches!(broker.topic("missing"), Err(Error::UnknownTopic { .. })));
    /// broker.create_topic("present", TopicConfig::default())?;
    /// assert_eq!(broker.topic("present")?.name(), "present");
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topic(&self, name: &str) -> Result<Topic> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        if let Some(inner) = shared.topics.read().get(name) {
            return Ok(Topic::new(Arc::clone(inner), Arc::clone(shared)));
        }
        Err(shared.damaged_error(name).unwrap_or_else(|| Error::UnknownTopic { topic: name.to_string() }))
    }

    /// The names of all topics, sorted (not those in
    /// [`Broker::damaged_topics`], which cannot be used).
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-topics-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// broker.create_topic("b", TopicConfig::default())?;
    /// broker.create_topic("a", TopicConfig::default())?;
    /// assert_eq!(broker.topics(), ["a", "b"]);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn topics(&self) -> Vec<String> {
        self.handle.shared.topics.read().keys().cloned().collect()
    }

    /// Deletes a topic and its data. Producers and consumers of it get
    /// [`Error::TopicDeleted`]; messages already received stay readable.
    /// A [damaged topic](Broker::damaged_topics) is [`Error::TopicDamaged`]:
    /// millpond does not delete files it could not vouch for.
    ///
    /// ```
    /// use millpond::{Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-delete-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let t = broker.create_topic("tmp", TopicConfig::default())?;
    /// let p = t.producer();
    /// broker.delete_topic("tmp")?;
    /// assert!(broker.topics().is_empty());
    /// assert!(matches!(p.send(millpond::Record::new("x")), Err(Error::TopicDeleted { .. })));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        names::validate("topic", name)?;
        let shared = &self.handle.shared;
        let _admin = shared.admin.lock();
        shared.check_open()?;
        // Checked again (not only at open) before anything is removed below them.
        fsutil::check_real_dir(&shared.dir.join(GROUPS_DIR), "use groups directory")?;
        fsutil::check_real_dir(&shared.dir.join(TRASH_DIR), "use trash directory")?;
        let Some(inner) = shared.topics.write().remove(name) else {
            return Err(shared.damaged_error(name).unwrap_or_else(|| Error::UnknownTopic { topic: name.to_string() }));
        };
        inner.deleted.store(true, Ordering::SeqCst);
        for p in &inner.partitions {
            p.abandon(Error::TopicDeleted { topic: name.to_string() });
        }
        // The topic's committed offsets go first, in every group, so that a
        // crash cannot leave offsets a re-created topic would resume from
        // (a crash right here makes the groups start over per their reset
        // policy: re-delivery, never a skip).
        shared.groups.lock().retain(|(_, topic), state| {
            if topic == name {
                state.close(Error::TopicDeleted { topic: name.to_string() });
            }
            topic != name
        });
        let groups_dir = shared.dir.join(GROUPS_DIR);
        for entry in std::fs::read_dir(&groups_dir).map_err(Error::io_at("list groups", &groups_dir))? {
            let entry = entry.map_err(Error::io_at("list groups", &groups_dir))?;
            // The entry's own type: a symlink is not followed (it is not a
            // group millpond made, and what it points to is not ours).
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                OffsetsFile::new(entry.path(), name).remove()?;
                fsutil::fsync_dir(&entry.path())?;
            }
        }
        // The rename is the commit point; removing the files afterwards may
        // fail (they are then removed at the next open).
        let doomed = shared.trash_path();
        std::fs::rename(&inner.dir, &doomed).map_err(Error::io_at("move deleted topic to trash", &inner.dir))?;
        fsutil::fsync_dir(&shared.dir.join(TOPICS_DIR))?;
        let _ = remove_entry(&doomed); // see above: retried at next open
        Ok(())
    }

    /// The topic directories found when the broker was opened that could
    /// not be opened, sorted by name, each with the error that stopped it.
    /// Their files are left exactly as they were; see [`DamagedTopic`] for
    /// the causes and what to do.
    ///
    /// Entries under `topics/` whose names are not valid topic names are
    /// not millpond's and are neither listed nor touched.
    ///
    /// ```
    /// use millpond::{Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-damagedtopics-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// assert!(broker.damaged_topics().is_empty());
    /// drop(broker);
    ///
    /// // A directory that is not a topic, under a name a topic could have.
    /// std::fs::create_dir(dir.join("topics/backup"))?;
    /// let broker = Broker::open(&dir)?;
    /// let damaged = broker.damaged_topics();
    /// assert_eq!(damaged[0].name, "backup");
    /// assert!(damaged[0].error.to_string().contains("topic.meta"));
    /// // It is neither served, overwritten nor deleted.
    /// assert!(matches!(broker.topic("backup"), Err(Error::TopicDamaged { .. })));
    /// assert!(matches!(broker.create_topic("backup", TopicConfig::default()), Err(Error::TopicDamaged { .. })));
    /// assert!(matches!(broker.delete_topic("backup"), Err(Error::TopicDamaged { .. })));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn damaged_topics(&self) -> Vec<DamagedTopic> {
        self.handle.shared.damaged.read().values().cloned().collect()
    }

    /// What recovery repaired when this broker was opened (and when topics
    /// were opened since): one event per truncated active segment.
    ///
    /// See [`RecoveryEvent`] for an example.
    pub fn recovery_report(&self) -> Vec<RecoveryEvent> {
        self.handle.shared.report.lock().clone()
    }

    /// Makes everything appended to every topic durable (msync + fsync).
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-bflush-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// broker.create_topic("t", TopicConfig::default())?.producer().send(Record::new("x"))?;
    /// broker.flush()?;
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&self) -> Result<()> {
        let topics: Vec<Arc<TopicState>> = self.handle.shared.topics.read().values().cloned().collect();
        for t in topics {
            for p in &t.partitions {
                p.flush()?;
            }
        }
        Ok(())
    }

    /// Reads and checksums every frame of every segment of every topic and
    /// reports what is damaged (damage is data in the report, not an
    /// error; an `Err` means the check itself could not run).
    ///
    /// ```
    /// use millpond::{Broker, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-verify-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// broker.create_topic("t", TopicConfig::default())?.producer().send(Record::new("x"))?;
    /// let report = broker.verify()?;
    /// assert!(report.is_clean());
    /// assert_eq!(report.records, 1);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self) -> Result<VerifyReport> {
        self.handle.shared.verify_all()
    }

    /// Flushes and closes every partition, wakes blocked consumers with
    /// [`Error::Closed`], and releases the directory lock. Idempotent;
    /// dropping the last `Broker` does the same but can only print errors.
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
        self.handle.shared.close()
    }

    /// Whether the broker was closed.
    ///
    /// See [`Broker::close`] for an example.
    pub fn is_closed(&self) -> bool {
        self.handle.shared.is_closed()
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

/// Checks the partition directories of the topic at `dir`, whose metadata
/// (`meta_path`) gives it `partitions`: none may be a symlink, and none may
/// lie beyond the count (their records would silently vanish, and keys
/// would hash to other partitions than they did): `CorruptMetadata`.
/// Entries with other names (not canonical partition numbers) are not
/// millpond's and are left alone.
fn check_partition_dirs(dir: &Path, partitions: u32, meta_path: &Path) -> Result<()> {
    let mut beyond = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io_at("list topic directory", dir))? {
        let entry = entry.map_err(Error::io_at("list topic directory", dir))?;
        let file_name = entry.file_name();
        let Some(p) = file_name.to_str().and_then(|n| n.parse::<u32>().ok().filter(|p| p.to_string() == n)) else {
            continue;
        };
        if p >= partitions {
            beyond.push(p);
        } else if entry.file_type().map_err(Error::io_at("list topic directory", dir))?.is_symlink() {
            return Err(Error::Symlink { op: "open partition directory", path: entry.path() });
        }
    }
    if beyond.is_empty() {
        return Ok(());
    }
    beyond.sort_unstable();
    let list: Vec<String> = beyond.iter().map(u32::to_string).collect();
    Err(Error::CorruptMetadata {
        path: meta_path.to_path_buf(),
        reason: format!(
            "the topic has {partitions} partitions by this file, but its directory also holds partitions {}; \
             refusing to ignore their records",
            list.join(", ")
        ),
    })
}

/// Removes `path`: a real directory with everything in it, anything else
/// (a file, a symlink, even one to a directory) by unlinking it. Nothing
/// is followed: `remove_dir_all` does not follow symlinks inside, and a
/// symlink at `path` itself is unlinked, never descended into.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
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

impl Shared {
    /// `Err(Closed)` once the broker is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The state of consumer group `group` on `topic`, created on first use.
    pub(crate) fn group_state(&self, group: &str, topic: &Arc<TopicState>) -> Arc<GroupState> {
        let key = (group.to_string(), topic.name.to_string());
        let mut groups = self.groups.lock();
        let state = groups.entry(key).or_insert_with(|| {
            let file = OffsetsFile::new(self.dir.join(GROUPS_DIR).join(group), &topic.name);
            let state = Arc::new(GroupState::new(group, Arc::clone(topic), file));
            topic.add_group(&state.progress);
            state
        });
        Arc::clone(state)
    }

    /// A fresh entry in the trash directory. Short (not derived from the
    /// topic name), so a 249-character name still fits the 255-byte limit.
    fn trash_path(&self) -> PathBuf {
        let seq = self.trash_seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(TRASH_DIR).join(format!("{}.{seq}", std::process::id()))
    }

    /// `TopicDamaged` if `name` is one of the damaged topics.
    fn damaged_error(&self, name: &str) -> Option<Error> {
        self.damaged.read().get(name).map(|d| Error::TopicDamaged {
            topic: name.to_string(),
            path: d.path.clone(),
            reason: d.error.to_string(),
        })
    }

    /// Reads the config of the existing topic at `dir` (an entry of
    /// `topics/`), checking that nothing on the way is a symlink, that its
    /// `topic.meta` is its own, and that every partition directory is
    /// accounted for.
    fn check_topic(&self, name: &str, dir: &Path) -> Result<TopicConfig> {
        fsutil::check_real_dir(dir, "open topic directory")?;
        let meta_path = dir.join(META_FILE);
        let bytes = fsutil::read_file(&meta_path).map_err(Error::io_at("read topic metadata", &meta_path))?;
        let config = meta::decode(&bytes, name, &meta_path)?;
        check_partition_dirs(dir, config.partitions, &meta_path)?;
        Ok(config)
    }

    fn open_topic(&self, name: &str, config: TopicConfig, dir: &Path) -> Result<Arc<TopicState>> {
        let topic: Arc<str> = Arc::from(name);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let (log, event) = PartitionLog::open(
                &dir.join(p.to_string()),
                Arc::clone(&topic),
                p,
                LogSettings::from(&config),
                self.config.recovery,
                self.prefault.lock().as_ref().map(|(p, _)| p.clone()),
            )?;
            if let Some(event) = event {
                self.report.lock().push(event);
            }
            partitions.push(Arc::new(log));
        }
        Ok(Arc::new(TopicState::new(topic, config, dir.to_path_buf(), partitions)))
    }

    /// Starts the background maintenance thread if some topic uses
    /// `FsyncPolicy::Interval` or retention and it is not running yet.
    fn ensure_flusher(self: &Arc<Self>) {
        let needed = self.topics.read().values().any(|t| {
            matches!(t.config.fsync, FsyncPolicy::Interval(_))
                || t.partitions.iter().any(|p| p.has_retention() || p.is_compacted())
        });
        let mut flusher = self.flusher.lock();
        if !needed || flusher.is_some() {
            return;
        }
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let weak = Arc::downgrade(self);
        let handle = std::thread::Builder::new().name("millpond-maintenance".into()).spawn(move || {
            let mut last_retention = std::time::Instant::now();
            let mut last_compaction = std::time::Instant::now();
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let topics: Vec<Arc<TopicState>> = shared.topics.read().values().cloned().collect();
                drop(shared);
                let mut tick = Duration::from_millis(250);
                let retention_due = last_retention.elapsed() >= Duration::from_millis(250);
                let compaction_due = last_compaction.elapsed() >= Duration::from_secs(30);
                for t in &topics {
                    if let FsyncPolicy::Interval(d) = t.config.fsync {
                        tick = tick.min(d / 2).max(Duration::from_millis(1));
                    }
                    for p in &t.partitions {
                        // A sync failure poisons the partition, which then
                        // reports it on every send and flush.
                        let _ = p.sync_if_due();
                        let rolled = p.take_rolled();
                        if p.has_retention()
                            && (rolled || retention_due)
                            && let Err(e) = p.apply_retention(crate::storage::record::now_millis())
                        {
                            // No caller to return it to; retried next tick.
                            eprintln!("millpond: retention of {}/{}: {e}", t.name, p.partition());
                        }
                        if p.is_compacted()
                            && (rolled || compaction_due)
                            && let Err(e) = p.compact(crate::storage::record::now_millis())
                        {
                            eprintln!("millpond: compaction of {}/{}: {e}", t.name, p.partition());
                        }
                    }
                }
                if retention_due {
                    last_retention = std::time::Instant::now();
                }
                if compaction_due {
                    last_compaction = std::time::Instant::now();
                }
                match stop_rx.recv_timeout(tick) {
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        });
        match handle {
            Ok(h) => *flusher = Some((stop_tx, h)),
            // Without the thread, Interval topics are still synced by
            // `flush()` and retention runs on `enforce_retention`; report the
            // failure rather than hiding it.
            Err(e) => eprintln!("millpond: cannot start the maintenance thread: {e}"),
        }
    }

    /// Checks every frame of every topic (see [`Broker::verify`]).
    pub(crate) fn verify_all(&self) -> Result<VerifyReport> {
        let topics: Vec<Arc<TopicState>> = self.topics.read().values().cloned().collect();
        let mut report = VerifyReport::default();
        for t in topics {
            report.merge(verify_topic(&t)?);
        }
        Ok(report)
    }

    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Some((stop, handle)) = self.flusher.lock().take() {
            let _ = stop.send(()); // the thread may already have exited; join below
            let _ = handle.join(); // a panicked flusher has nothing left to report
        }
        if let Some((prefault, handle)) = self.prefault.lock().take() {
            prefault.stop();
            let _ = handle.join(); // pre-faulting has no result to report
        }
        let _admin = self.admin.lock();
        let topics: Vec<Arc<TopicState>> = self.topics.read().values().cloned().collect();
        // Group members waiting without partitions sleep on their group's
        // notifier only: wake them too.
        for state in self.groups.lock().values() {
            state.close(Error::Closed);
        }
        let mut first_error = None;
        for t in topics {
            for p in &t.partitions {
                if let Err(e) = p.close(Error::Closed) {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(lock) = self.lock.lock().take()
            && let Err(e) = lock.unlock()
        {
            first_error.get_or_insert(Error::io("unlock", self.dir.join(LOCK_FILE), e));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
