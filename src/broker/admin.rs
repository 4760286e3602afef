//! Topic administration on a [`Broker`]: creating, opening, listing and
//! deleting topics, what recovery found, flushing and verifying.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::broker::damaged_topic::DamagedTopic;
use crate::broker::open::Broker;
use crate::broker::shared::{GROUPS_DIR, META_FILE, TOPICS_DIR, TRASH_DIR, remove_entry};
use crate::broker::topic::Topic;
use crate::error::{Error, Result};
use crate::group::offsets::OffsetsFile;
use crate::storage::fsutil;
use crate::storage::recovery_event::RecoveryEvent;
use crate::topic::config::TopicConfig;
use crate::topic::meta;
use crate::topic::names;
use crate::topic::state::TopicState;
use crate::topic::verify::VerifyReport;

impl Broker {
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
        let shared = &self.shared();
        shared.check_writable("create topic")?;
        let _admin = shared.admin.lock();
        shared.check_open()?;
        if let Some(existing) = shared.topics.read().get(name) {
            return match existing.config.difference(&config) {
                None => Ok(Topic::new(Arc::clone(existing), self.keep_alive())),
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
            // The topic's identity, which every segment header repeats.
            let id = fsutil::random_bytes::<16>()?;
            fsutil::write_atomic(&staging.join(META_FILE), &meta::encode(&config, name, &id)?)?;
            // rename(2) would replace an empty directory (or one created
            // since the broker was opened): never put a topic over anything.
            if std::fs::symlink_metadata(&final_dir).is_ok() {
                let exists = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
                return Err(Error::io("move new topic into place", &final_dir, exists));
            }
            std::fs::rename(&staging, &final_dir).map_err(Error::io_at("move new topic into place", &final_dir))?;
            placed = true;
            fsutil::fsync_dir(&shared.dir.join(TOPICS_DIR))?;
            shared.open_topic(name, meta::TopicMeta { config, id }, &final_dir)
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
                            log::warn!("millpond: removing the half-created topic {name:?}: {sync}");
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
        shared.ensure_maintenance();
        Ok(Topic::new(inner, self.keep_alive()))
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
        let shared = &self.shared();
        shared.check_open()?;
        // A read-only broker looks at the directory: a topic created, or
        // deleted and created again, since it opened.
        if shared.config.read_only && names::validate("topic", name).is_ok() {
            shared.discover_topics(Some(name));
        }
        if let Some(inner) = shared.topics.read().get(name) {
            return Ok(Topic::new(Arc::clone(inner), self.keep_alive()));
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
        // A read-only broker lists the directory as it is now.
        self.shared().discover_topics(None);
        self.shared().topics.read().keys().cloned().collect()
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
        let shared = &self.shared();
        shared.check_writable("delete topic")?;
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
            // Each group's offsets go whole or not at all (see
            // `OffsetsFile::delete_into`).
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                OffsetsFile::new(entry.path(), name).delete_into(&shared.trash_path())?;
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
        self.shared().damaged.read().values().cloned().collect()
    }

    /// What recovery repaired when this broker was opened (and when topics
    /// were opened since): one event per truncated active segment.
    ///
    /// See [`RecoveryEvent`] for an example.
    pub fn recovery_report(&self) -> Vec<RecoveryEvent> {
        self.shared().report.lock().clone()
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
        self.shared().check_writable("flush")?;
        let topics: Vec<Arc<TopicState>> = self.shared().topics.read().values().cloned().collect();
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
        self.shared().discover_topics(None);
        self.shared().verify_all()
    }
}
