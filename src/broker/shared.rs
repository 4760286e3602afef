//! [`Shared`]: the state every handle of one broker shares — its
//! directory, topics, groups, lock and background threads — and the
//! directory layout under it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};

use crate::broker::config::BrokerConfig;
use crate::broker::damaged_topic::DamagedTopic;
use crate::broker::transaction_state::Transactions;
use crate::error::{Error, Result};
use crate::group::commit_thread::CommitThread;
use crate::group::coordinator::GroupState;
use crate::group::offsets::OffsetsFile;
use crate::storage::background::Worker;
use crate::storage::durable_appender::{Completion, DurableAppender};
use crate::storage::fsutil;
use crate::storage::health::Health;
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::prefault::Prefaulter;
use crate::storage::record::Record;
use crate::storage::recovery_event::RecoveryEvent;
use crate::storage::tailing::Tailing;
use crate::storage::wake_file::{WakeFile, WakeSlot};
use crate::topic::meta::{self, TopicMeta};
use crate::topic::names;
use crate::topic::state::TopicState;
use crate::topic::verify::{VerifyReport, verify_topic};

/// The lock file: a second open of the directory gets `Error::Locked`.
pub(crate) const LOCK_FILE: &str = "millpond.lock";
/// Topics, one directory each.
pub(crate) const TOPICS_DIR: &str = "topics";
/// Committed offsets, by group and topic.
pub(crate) const GROUPS_DIR: &str = "groups";
/// Deleted topics and half-created ones, emptied at open.
pub(crate) const TRASH_DIR: &str = "trash";
/// A topic's config, in its directory.
pub(crate) const META_FILE: &str = "topic.meta";

/// State shared by the broker and every handle derived from it.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) config: BrokerConfig,
    pub(crate) closed: AtomicBool,
    pub(crate) topics: RwLock<BTreeMap<String, Arc<TopicState>>>,
    /// Topic directories found at open that could not be opened; left as
    /// they are, and their names refused by `topic`, `create_topic` and
    /// `delete_topic`.
    pub(crate) damaged: RwLock<BTreeMap<String, DamagedTopic>>,
    /// Serializes topic creation and deletion.
    pub(crate) admin: Mutex<()>,
    pub(crate) lock: Mutex<Option<File>>,
    pub(crate) report: Mutex<Vec<RecoveryEvent>>,
    /// The maintenance thread (see `broker/maintenance.rs`), once needed.
    pub(crate) maintenance: Mutex<Option<Worker>>,
    /// Background failures: current ones, and where they are reported.
    pub(crate) health: Arc<Health>,
    /// The pre-fault thread (see `storage/prefault.rs`), unless disabled.
    pub(crate) prefault: Mutex<Option<(Prefaulter, JoinHandle<()>)>>,
    /// The thread that appends async sends to `FsyncPolicy::Always`
    /// partitions (see `storage/durable_appender.rs`), once needed.
    pub(crate) durable: Mutex<Option<DurableAppender>>,
    pub(crate) trash_seq: AtomicU64,
    /// Consumer groups in use, by (group, topic).
    pub(crate) groups: Mutex<HashMap<(String, String), Arc<GroupState>>>,
    /// The thread writing asynchronous commits, started on first use.
    pub(crate) committer: Arc<CommitThread>,
    /// The wake file (`storage/wake_file.rs`): rung by a writer, slept on by
    /// read-only readers; `None` where there is none to use.
    pub(crate) wake: Option<Arc<WakeFile>>,
    /// A read-only broker's tailing thread (`storage/tailing.rs`).
    pub(crate) tailing: Option<Tailing>,
    /// The transaction log and the commits in progress (`broker/transaction_state.rs`).
    pub(crate) txns: Transactions,
}

impl Shared {
    /// The state of a broker just opened at `dir`: `lock` is the held
    /// directory lock (`None` for a read-only broker), the rest its
    /// background machinery.
    pub(crate) fn new(
        dir: PathBuf,
        config: BrokerConfig,
        lock: Option<File>,
        health: Arc<Health>,
        prefault: Option<(Prefaulter, JoinHandle<()>)>,
        wake: Option<Arc<WakeFile>>,
        tailing: Option<Tailing>,
    ) -> Shared {
        Shared {
            dir,
            config,
            closed: AtomicBool::new(false),
            topics: RwLock::new(BTreeMap::new()),
            damaged: RwLock::new(BTreeMap::new()),
            admin: Mutex::new(()),
            lock: Mutex::new(lock),
            report: Mutex::new(Vec::new()),
            maintenance: Mutex::new(None),
            health: Arc::clone(&health),
            prefault: Mutex::new(prefault),
            durable: Mutex::new(None),
            trash_seq: AtomicU64::new(0),
            groups: Mutex::new(HashMap::new()),
            committer: Arc::new(CommitThread::new(health)),
            wake,
            tailing,
            txns: Transactions::default(),
        }
    }

    /// Opens every topic in `topics/` (as the broker was opened: for
    /// writing, or read-only), listing the ones that cannot be opened as
    /// damaged.
    pub(crate) fn open_listed_topics(&self) -> Result<()> {
        let topics_dir = self.dir.join(TOPICS_DIR);
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
            self.open_listed_topic(&name)?;
        }
        Ok(())
    }

    /// Opens topic `name` of `topics/`, or lists it as damaged.
    pub(crate) fn open_listed_topic(&self, name: &str) -> Result<()> {
        let topic_dir = self.dir.join(TOPICS_DIR).join(name);
        // A topic whose directory or metadata is not right is damaged;
        // a failure while opening its partitions (recovery refusing a
        // corrupt tail under `FailOnCorruptTail`, a full disk, I/O)
        // fails the open as before, except a symlink planted inside. A
        // read-only broker fails on none of them: it repairs nothing, and
        // lists what it cannot read.
        let opened = match self.check_topic(name, &topic_dir) {
            Ok(meta) => match self.open_topic(name, meta, &topic_dir) {
                Err(e) if !matches!(e, Error::Symlink { .. }) && !self.config.read_only => return Err(e),
                opened => opened,
            },
            Err(e) => Err(e),
        };
        match opened {
            Ok(inner) => {
                self.damaged.write().remove(name);
                self.topics.write().insert(name.to_string(), inner);
            }
            Err(e) if self.config.fail_on_damaged_topic => return Err(e),
            Err(e) => {
                let damaged = DamagedTopic { name: name.to_string(), path: topic_dir, error: Arc::new(e) };
                self.damaged.write().insert(name.to_string(), damaged);
            }
        }
        Ok(())
    }

    /// `Err(Closed)` once the broker is closed.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.is_closed() { Err(Error::Closed) } else { Ok(()) }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// `Err(ReadOnly)` for `op` if the broker was opened read-only.
    pub(crate) fn check_writable(&self, op: &'static str) -> Result<()> {
        if self.config.read_only { Err(Error::ReadOnly { op, path: self.dir.clone() }) } else { Ok(()) }
    }

    /// The state of consumer group `group` on `topic`, created on first use.
    pub(crate) fn group_state(&self, group: &str, topic: &Arc<TopicState>) -> Arc<GroupState> {
        let key = (group.to_string(), topic.name.to_string());
        let mut groups = self.groups.lock();
        let state = groups.entry(key).or_insert_with(|| {
            let file = OffsetsFile::new(self.dir.join(GROUPS_DIR).join(group), &topic.name);
            let state = Arc::new(GroupState::new(group, Arc::clone(topic), file, Arc::clone(&self.committer)));
            topic.add_group(&state.progress);
            state
        });
        Arc::clone(state)
    }

    /// The groups of `topic`: those with committed offsets on disk
    /// (`groups/<group>/<topic>/offsets` or its `.prev`), and those with
    /// members now, sorted. Nothing is followed through a symlink: a
    /// symlinked group directory or offsets file is not listed.
    pub(crate) fn group_names(&self, topic: &str) -> Result<Vec<String>> {
        let mut names: std::collections::BTreeSet<String> = self
            .groups
            .lock()
            .iter()
            .filter(|((_, t), state)| t == topic && state.member_count() > 0)
            .map(|((g, _), _)| g.clone())
            .collect();
        let groups_dir = self.dir.join(GROUPS_DIR);
        let entries = match std::fs::read_dir(&groups_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names.into_iter().collect()),
            Err(e) => return Err(Error::io("list groups", &groups_dir, e)),
        };
        let is_file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
        for entry in entries {
            let entry = entry.map_err(Error::io_at("list groups", &groups_dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if names::validate("group", &name).is_err() || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue; // not a group directory millpond would write
            }
            let offsets = entry.path().join(topic);
            if fsutil::is_symlink(&offsets) {
                continue;
            }
            if is_file(&offsets.join("offsets")) || is_file(&offsets.join("offsets.prev")) {
                names.insert(name);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Queues `record` for `log` on the durable-append thread (started on
    /// first use); `Closed` once the broker is closed.
    pub(crate) fn submit_durable(
        &self,
        log: Arc<PartitionLog>,
        record: Record<'static>,
        size: usize,
    ) -> Result<Arc<Completion>> {
        self.check_writable("send")?;
        let mut durable = self.durable.lock();
        // Checked under the lock `close` takes the thread under: a record
        // queued here is one the thread still writes.
        self.check_open()?;
        let appender = match durable.as_mut() {
            Some(a) => a,
            None => durable.insert(DurableAppender::start()?),
        };
        Ok(appender.submit(log, record, size))
    }

    /// A fresh entry in the trash directory. Short (not derived from the
    /// topic name), so a 249-character name still fits the 255-byte limit.
    pub(crate) fn trash_path(&self) -> PathBuf {
        let seq = self.trash_seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(TRASH_DIR).join(format!("{}.{seq}", std::process::id()))
    }

    /// `TopicDamaged` if `name` is one of the damaged topics.
    pub(crate) fn damaged_error(&self, name: &str) -> Option<Error> {
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
    pub(crate) fn check_topic(&self, name: &str, dir: &Path) -> Result<TopicMeta> {
        fsutil::check_real_dir(dir, "open topic directory")?;
        let meta_path = dir.join(META_FILE);
        let bytes = fsutil::read_file(&meta_path).map_err(Error::io_at("read topic metadata", &meta_path))?;
        let meta = meta::decode(&bytes, name, &meta_path)?;
        check_partition_dirs(dir, meta.config.partitions, &meta_path)?;
        Ok(meta)
    }

    /// Opens the partitions of topic `name` (its `topic.meta` says `meta`) at `dir`.
    pub(crate) fn open_topic(&self, name: &str, meta: TopicMeta, dir: &Path) -> Result<Arc<TopicState>> {
        if self.config.read_only {
            return self.follow_topic(name, meta, dir);
        }
        let TopicMeta { config, id } = meta;
        let topic: Arc<str> = Arc::from(name);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let (mut log, event) = PartitionLog::open(
                &dir.join(p.to_string()),
                Arc::clone(&topic),
                id,
                p,
                LogSettings::from(&config),
                self.config.recovery,
                self.prefault.lock().as_ref().map(|(p, _)| p.clone()),
                Arc::clone(&self.health),
                &|txn, end| self.txn_committed(&id, p, txn, end),
            )?;
            if let Some(event) = event {
                self.report.lock().push(event);
            }
            log.wake =
                self.wake.as_ref().map(|file| WakeSlot { file: Arc::clone(file), slot: WakeFile::slot_of(&id, p) });
            partitions.push(Arc::new(log));
        }
        Ok(Arc::new(TopicState::new(topic, config, dir.to_path_buf(), partitions)))
    }

    /// Checks every frame of every topic (see [`Broker::verify`]).
    pub(crate) fn verify_all(&self) -> Result<VerifyReport> {
        let topics: Vec<Arc<TopicState>> = self.topics.read().values().cloned().collect();
        let mut report = VerifyReport::default();
        for t in topics {
            t.catch_up()?; // a read-only broker's: as the files are now
            report.merge(verify_topic(&t)?);
        }
        Ok(report)
    }

    /// Closes everything: stops the background threads, closes every
    /// partition (syncing it) and group, and releases the lock. Returns the
    /// first failure.
    pub(crate) fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let maintenance = self.maintenance.lock().take(); // not held while joining
        if let Some(mut maintenance) = maintenance {
            // Its failures were reported as they happened; a panic there is
            // a bug, and closing goes on regardless.
            if let Err(e) = maintenance.halt() {
                log::error!("millpond: the maintenance thread ended badly: {e}");
            }
        }
        // Queued durable appends are written (or fail) before the
        // partitions close, so a sender awaiting one hears how it went.
        let durable = self.durable.lock().take(); // not held while joining
        if let Some(mut durable) = durable {
            durable.stop();
        }
        if let Some((prefault, handle)) = self.prefault.lock().take() {
            prefault.stop();
            // Not from the thread itself (its step can hold the last handle
            // through a background-error callback): it ends on its own.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join(); // pre-faulting has no result to report
            }
        }
        let _admin = self.admin.lock();
        let topics: Vec<Arc<TopicState>> = self.topics.read().values().cloned().collect();
        // Group members waiting without partitions sleep on their group's
        // notifier only: wake them too. Each group writes the commits still
        // queued before it closes; then the commit thread has nothing left.
        for state in self.groups.lock().values() {
            state.close(Error::Closed);
        }
        self.committer.stop();
        if let Some(tailing) = &self.tailing {
            tailing.stop();
        }
        let mut first_error = self.close_transactions().err();
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
pub(crate) fn remove_entry(path: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}
