//! What an operator does with a group (Kafka's `kafka-consumer-groups`):
//! list the groups of a topic, describe one, reset its offsets, delete it.

use std::collections::BTreeMap;

use crate::broker::topic::Topic;
use crate::client::consumer_group::group::{Group, PartitionLag};
use crate::error::{Error, Result};

/// Where [`Group::reset_offsets`] moves a group's committed offsets
/// (`kafka-consumer-groups --reset-offsets --to-earliest`, `--to-latest`,
/// `--to-offset`, `--to-datetime`).
///
/// See [`Group::reset_offsets`] for an example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetTo {
    /// Each partition's log start: the oldest record still stored.
    Earliest,
    /// Each partition's high watermark: only records sent from now on.
    Latest,
    /// This offset on every partition, kept within `[log start, high
    /// watermark]` of each (as Kafka does).
    Offset(u64),
    /// The first record at or after this time (milliseconds since the Unix
    /// epoch) on each partition, or its high watermark if there is none.
    Timestamp(i64),
}

/// One member of a group, as [`Group::describe`] reports it.
///
/// See [`Group::describe`] for an example.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member's number (as in [`Group::owners`]).
    pub member: u64,
    /// The partitions assigned to it (it reads them once their previous
    /// owner has let them go).
    pub partitions: Vec<u32>,
}

/// A group's state: members, assignment, committed offsets and lag.
///
/// See [`Group::describe`] for an example.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupDescription {
    /// The group's name.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// Its members now, in join order of their numbers.
    pub members: Vec<MemberDescription>,
    /// Per partition: committed offset, high watermark and lag.
    pub partitions: Vec<PartitionLag>,
}

impl Group {
    /// Whether the group exists on this topic: it has members now, or
    /// committed offsets.
    ///
    /// ```
    /// use millpond::{Broker, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-gexists-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let group = topic.group("billing")?;
    /// assert!(!group.exists()?); // a handle alone creates nothing
    /// let member = group.join()?;
    /// assert!(group.exists()?);
    /// # drop(member); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exists(&self) -> Result<bool> {
        self.state().exists()
    }

    /// `GroupNotFound` unless the group exists.
    pub(crate) fn check_exists(&self) -> Result<()> {
        if self.exists()? {
            return Ok(());
        }
        Err(Error::GroupNotFound { topic: self.topic().name().to_string(), group: self.name().to_string() })
    }

    /// The group's members, their assignment, its committed offsets and
    /// lag; [`Error::GroupNotFound`] for a group that does not exist
    /// ([`Group::exists`]).
    ///
    /// ```
    /// use millpond::{AutoCommit, Broker, Error, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-gdescribe-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
    /// assert!(matches!(topic.group("nobody")?.describe(), Err(Error::GroupNotFound { .. })));
    ///
    /// let group = topic.group("billing")?.auto_commit(AutoCommit::Off);
    /// let mut a = group.join()?;
    /// let _b = group.join()?;
    /// topic.producer().send(Record::new("x").partition(0))?;
    /// a.recv()?;
    /// a.commit()?;
    /// let d = group.describe()?;
    /// assert_eq!(d.members.len(), 2);
    /// assert_eq!(d.members[0].partitions, vec![0]);
    /// assert_eq!((d.partitions[0].committed, d.partitions[0].lag), (Some(1), 0));
    /// # drop((a, _b)); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn describe(&self) -> Result<GroupDescription> {
        self.check_exists()?;
        let members = self
            .state()
            .assignment()
            .into_iter()
            .map(|(member, partitions)| MemberDescription { member, partitions })
            .collect();
        Ok(GroupDescription {
            group: self.name().to_string(),
            topic: self.topic().name().to_string(),
            members,
            partitions: self.lag()?,
        })
    }

    /// Moves the group's committed offsets on every partition (as
    /// `kafka-consumer-groups --reset-offsets --execute`), durably, and
    /// returns them. Only while the group has no members
    /// ([`Error::GroupActive`] otherwise): a member's position is its own
    /// until it commits. The next member to join starts there.
    ///
    /// ```
    /// use millpond::{Broker, Record, ResetTo, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-greset-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let p = topic.producer();
    /// for i in 0..10u8 {
    ///     p.send(Record::new(vec![i]).timestamp(1_000 + i64::from(i)))?;
    /// }
    /// let group = topic.group("replay")?;
    /// assert_eq!(group.reset_offsets(ResetTo::Latest)?[&0], 10);
    /// assert_eq!(group.reset_offsets(ResetTo::Timestamp(1_004))?[&0], 4);
    /// let mut m = group.join()?;
    /// assert_eq!(m.recv()?.value(), &[4]); // resumes at the reset offset
    /// assert!(group.reset_offsets(ResetTo::Earliest).is_err()); // not while it has members
    /// # drop(m); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset_offsets(&self, to: ResetTo) -> Result<BTreeMap<u32, u64>> {
        let all: Vec<u32> = (0..self.topic().partitions()).collect();
        self.reset_partition_offsets(&all, to)
    }

    /// Like [`reset_offsets`](Group::reset_offsets), for the listed
    /// partitions only; the others keep their committed offsets.
    ///
    /// ```
    /// use millpond::{Broker, Record, ResetTo, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-gresetp-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default().partitions(2))?;
    /// topic.producer().send(Record::new("x").partition(1))?;
    /// let group = topic.group("g")?;
    /// let set = group.reset_partition_offsets(&[1], ResetTo::Offset(1))?;
    /// assert_eq!(set.get(&1), Some(&1));
    /// assert_eq!(group.committed()?.get(&0), None);
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset_partition_offsets(&self, partitions: &[u32], to: ResetTo) -> Result<BTreeMap<u32, u64>> {
        self.topic().shared.check_writable("reset a group's offsets")?;
        let mut offsets = BTreeMap::new();
        for &p in partitions {
            let log = self.topic().partition_log(p)?;
            let (start, end) = (log.log_start(), log.high_watermark());
            let offset = match to {
                ResetTo::Earliest => start,
                ResetTo::Latest => end,
                ResetTo::Offset(o) => o.clamp(start, end),
                ResetTo::Timestamp(ts) => log.offset_for_timestamp(ts)?.clamp(start, end),
            };
            offsets.insert(p, offset);
        }
        self.state().reset(&offsets)?;
        Ok(offsets)
    }

    /// Deletes the group's committed offsets on this topic, on disk too
    /// (`kafka-consumer-groups --delete`). Only while the group has no
    /// members ([`Error::GroupActive`] otherwise); a group that does not
    /// exist is [`Error::GroupNotFound`]. Joining it again afterwards
    /// starts a new group, by its [`OffsetReset`](crate::OffsetReset).
    ///
    /// ```
    /// use millpond::{Broker, Error, Record, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-gdelete-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send(Record::new("x"))?;
    /// let group = topic.group("old")?;
    /// let mut m = group.join()?;
    /// m.recv()?;
    /// m.close()?; // commits and leaves
    /// assert_eq!(topic.groups()?, ["old"]);
    /// group.delete()?;
    /// assert!(topic.groups()?.is_empty());
    /// assert!(matches!(group.delete(), Err(Error::GroupNotFound { .. })));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete(&self) -> Result<()> {
        self.topic().shared.check_writable("delete a group")?;
        self.check_exists()?;
        self.state().delete(&self.topic().shared.trash_path())
    }
}

impl Topic {
    /// The names of this topic's consumer groups, sorted: every group with
    /// committed offsets (on disk, from this or an earlier run) or with
    /// members now.
    ///
    /// See [`Group::delete`] for an example.
    pub fn groups(&self) -> Result<Vec<String>> {
        if let Some(e) = self.unusable() {
            return Err(e);
        }
        self.shared.group_names(self.name())
    }

    /// [`Group::describe`] of the group `name`, which must exist
    /// ([`Error::GroupNotFound`] otherwise).
    ///
    /// ```
    /// use millpond::{Broker, Error, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tdescribe-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// let err = topic.describe_group("typo").unwrap_err();
    /// assert!(matches!(err, Error::GroupNotFound { .. }));
    /// assert!(err.to_string().contains("does not exist"));
    /// # drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn describe_group(&self, name: &str) -> Result<GroupDescription> {
        self.group(name)?.describe()
    }
}
