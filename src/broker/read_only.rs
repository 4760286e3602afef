//! A broker opened read-only ([`Broker::open_read_only`]): any number of
//! processes reading a directory that one other process (or none) writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::broker::config::BrokerConfig;
use crate::broker::open::Broker;
use crate::broker::shared::{GROUPS_DIR, LOCK_FILE, META_FILE, Shared, TOPICS_DIR};
use crate::error::{Error, Result};
use crate::storage::health::Health;
use crate::storage::notify::Across;
use crate::storage::partition_log::settings::LogSettings;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::tailing::Tailing;
use crate::storage::wake_file::{WakeFile, WakeSlot};
use crate::topic::meta::TopicMeta;
use crate::topic::names;
use crate::topic::state::TopicState;

impl Broker {
    /// Opens the broker directory `dir` for reading only, beside the
    /// process that writes it (or with none running), in as many processes
    /// as you like.
    ///
    /// A read-only broker:
    ///
    /// - **changes nothing**: it takes no lock (a writer may hold it, or
    ///   open the directory later), and creates, writes, truncates,
    ///   renames or deletes nothing in the directory: not the log, not
    ///   the topics, not the groups. (The one exception is a waiter's
    ///   mark in `millpond.wake`, the writer's small shared wake-up file,
    ///   made while a consumer sleeps; where that file is missing or not
    ///   writable by this process, consumers poll instead.) Every write
    ///   (sending, creating or deleting a topic, joining a group,
    ///   committing, resetting offsets, flushing, compacting) is
    ///   [`Error::ReadOnly`], and a path without a broker is
    ///   [`Error::BrokerNotFound`];
    /// - **reads everything, live**: every topic and partition, from any
    ///   position, with every receive form (blocking, non-blocking,
    ///   zero-copy, async); receives see the writer's new records as they
    ///   are published, across segment rolls, and report
    ///   [`Error::Lagged`] when retention deletes what they were about to
    ///   read, as in the writer's process; topics created later are found
    ///   by [`Broker::topic`] and [`Broker::topics`]; groups' committed
    ///   offsets and lag are read from their files;
    /// - **recovers in memory only**: a record is returned only once its
    ///   frame is complete and its checksum holds, so a record being
    ///   written is "not yet", and a torn tail left by a writer that
    ///   crashed is skipped, not repaired; when a new writer process
    ///   recovers the log, readers go on with what it writes;
    /// - **never slows the writer**: it waits on nothing the writer's hot
    ///   path holds. A consumer that finds nothing sleeps (after its
    ///   [`WaitStrategy`](crate::WaitStrategy)'s spin) until the writer
    ///   process wakes it through `millpond.wake`, or for at most 100 ms;
    ///   [`WaitStrategy::BusySpin`](crate::WaitStrategy::BusySpin) never
    ///   sleeps, for the lowest latency.
    ///
    /// Other processes' changes to the files beyond millpond's own (a tool
    /// truncating a segment in place, say) are not defended against: a
    /// mapped file cut short under a reader can end its process (SIGBUS),
    /// as for any memory-mapped store.
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-readonly-{}", std::process::id()));
    /// let writer = Broker::open(&dir)?;
    /// let orders = writer.create_topic("orders", TopicConfig::default())?;
    /// orders.producer().send(Record::new("order-1"))?;
    ///
    /// // Usually in another process; here, beside the writer.
    /// let reader = Broker::open_read_only(&dir)?;
    /// let mut c = reader.topic("orders")?.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.recv()?.value(), b"order-1");
    ///
    /// orders.producer().send(Record::new("order-2"))?; // followed live
    /// assert_eq!(c.recv()?.value(), b"order-2");
    ///
    /// let err = reader.topic("orders")?.producer().send(Record::new("x")).unwrap_err();
    /// assert!(matches!(err, Error::ReadOnly { .. }));
    /// # drop((c, reader, orders, writer)); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Broker> {
        Broker::open_with(dir, BrokerConfig::default().read_only(true))
    }

    /// The read-only half of [`Broker::open_with`].
    pub(crate) fn open_following(dir: PathBuf, config: BrokerConfig) -> Result<Broker> {
        if !std::fs::symlink_metadata(dir.join(LOCK_FILE)).is_ok_and(|m| m.file_type().is_file()) {
            return Err(Error::BrokerNotFound { path: dir });
        }
        crate::storage::fsutil::check_real_dir(&dir.join(TOPICS_DIR), "use topics directory")?;
        // Groups' offsets are read through `groups/`: never through a link.
        let groups = dir.join(GROUPS_DIR);
        if std::fs::symlink_metadata(&groups).is_ok() {
            crate::storage::fsutil::check_real_dir(&groups, "use groups directory")?;
        }
        let health = Arc::new(Health::new(config.background_error.clone()));
        let wake = WakeFile::open_for_reader(&dir).map(Arc::new);
        let tailing = Tailing::new(wake.clone(), Arc::clone(&health));
        let shared = Arc::new(Shared::new(dir, config, None, health, None, wake, Some(tailing)));
        let broker = Broker::from_shared(Arc::clone(&shared));
        shared.open_listed_topics()?;
        Ok(broker)
    }
}

impl Shared {
    /// Opens the partitions of topic `name` (its `topic.meta` says `meta`)
    /// at `dir` for a read-only broker: followed, not recovered.
    pub(crate) fn follow_topic(&self, name: &str, meta: TopicMeta, dir: &Path) -> Result<Arc<TopicState>> {
        let TopicMeta { config, id } = meta;
        let topic: Arc<str> = Arc::from(name);
        let tailing = self.tailing.as_ref().expect("a read-only broker has a tailing thread");
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            let across = Across {
                wake: self
                    .wake
                    .as_ref()
                    .map(|file| WakeSlot { file: Arc::clone(file), slot: WakeFile::slot_of(&id, p) }),
                kick: tailing.kicker(),
            };
            let log = Arc::new(PartitionLog::open_read_only(
                &dir.join(p.to_string()),
                &self.dir,
                Arc::clone(&topic),
                id,
                p,
                LogSettings::from(&config),
                Arc::clone(&self.health),
                across,
            )?);
            tailing.add(&log);
            partitions.push(log);
        }
        Ok(Arc::new(TopicState::new(topic, config, dir.to_path_buf(), partitions)))
    }

    /// Whether `t` is still the topic `name` names on disk: its
    /// `topic.meta` has the id its partitions were opened with.
    fn same_topic(&self, name: &str, t: &TopicState) -> bool {
        let path = self.dir.join(TOPICS_DIR).join(name).join(META_FILE);
        let Ok(bytes) = crate::storage::fsutil::read_file(&path) else { return false };
        match crate::topic::meta::decode(&bytes, name, &path) {
            Ok(meta) => t.partitions.first().is_none_or(|p| p.id.topic_id == meta.id),
            Err(_) => false,
        }
    }

    /// For a read-only broker: opens the topics the writer created since
    /// (or that could not be opened before: a topic being created), and
    /// forgets the ones it deleted. `only`: just that name.
    pub(crate) fn discover_topics(&self, only: Option<&str>) {
        if !self.config.read_only || self.is_closed() {
            return;
        }
        let _admin = self.admin.lock();
        let topics_dir = self.dir.join(TOPICS_DIR);
        let Ok(entries) = std::fs::read_dir(&topics_dir) else { return };
        let mut on_disk = std::collections::BTreeSet::new();
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str().filter(|n| names::validate("topic", n).is_ok()) {
                on_disk.insert(name.to_string());
            }
        }
        // Gone from disk, or deleted and created again (another id).
        let gone: Vec<String> = self
            .topics
            .read()
            .iter()
            .filter(|(n, t)| only.is_none_or(|o| o == n.as_str()) && (!on_disk.contains(*n) || !self.same_topic(n, t)))
            .map(|(n, _)| n.clone())
            .collect();
        self.damaged.write().retain(|n, _| on_disk.contains(n));
        for name in gone {
            if let Some(t) = self.topics.write().remove(&name) {
                t.deleted.store(true, std::sync::atomic::Ordering::SeqCst);
                for p in &t.partitions {
                    p.abandon(Error::TopicDeleted { topic: name.clone() });
                }
            }
        }
        for name in on_disk {
            if only.is_some_and(|o| o != name) || self.topics.read().contains_key(&name) {
                continue;
            }
            // A failure is the error of an open: reported by listing the
            // topic as damaged, as at open.
            let _ = self.open_listed_topic(&name);
        }
    }
}
