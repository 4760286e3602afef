//! [`DamagedTopic`]: a topic directory that opening a broker found but
//! could not open, left as it was.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Error;

/// A topic directory that [`Broker::open`](crate::Broker::open) found but
/// could not open, from [`Broker::damaged_topics`](crate::Broker::damaged_topics).
///
/// One damaged topic does not stop the others: the broker opens every
/// healthy topic and lists the rest here. A damaged topic's files are left
/// exactly as they are (millpond neither repairs nor deletes what it cannot
/// vouch for), so an operator can inspect them, restore them from a backup,
/// or move them away and re-create the topic. Until then
/// [`Broker::topic`](crate::Broker::topic), `create_topic` and `delete_topic`
/// of that name fail with [`Error::TopicDamaged`].
///
/// Typical causes, by [`error`](DamagedTopic::error):
///
/// | error | cause |
/// | --- | --- |
/// | [`Error::CorruptMetadata`] | `topic.meta` is damaged, of an unknown version, or belongs to another topic (copied from elsewhere); partition directories beyond the topic's partition count |
/// | [`Error::Symlink`] | the topic directory, its `topic.meta` or a partition directory is a symbolic link (never followed) |
/// | [`Error::Io`] | `topic.meta` is missing or unreadable, or a plain file sits where the topic directory should be |
///
/// A failure while opening a healthy topic's partitions (a corrupt tail
/// under [`RecoveryMode::FailOnCorruptTail`](crate::RecoveryMode::FailOnCorruptTail),
/// a full disk, an I/O error) still fails [`Broker::open`](crate::Broker::open)
/// itself, as it always did: those are not the topic's identity being wrong,
/// and the caller must decide.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Error, TopicConfig};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-damaged-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// broker.create_topic("good", TopicConfig::default())?;
/// broker.create_topic("bad", TopicConfig::default())?;
/// drop(broker);
///
/// // Someone damages one topic's metadata.
/// std::fs::write(dir.join("topics/bad/topic.meta"), b"garbage")?;
///
/// let broker = Broker::open(&dir)?; // the healthy topics still open
/// assert_eq!(broker.topics(), ["good"]);
/// for d in broker.damaged_topics() {
///     assert_eq!(d.name, "bad");
///     assert!(matches!(*d.error, Error::CorruptMetadata { .. }), "{}", d.error);
///     println!("topic {} at {} is damaged: {}", d.name, d.path.display(), d.error);
/// }
/// assert!(matches!(broker.topic("bad"), Err(Error::TopicDamaged { .. })));
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DamagedTopic {
    /// The topic's name (its directory's name under `topics/`).
    pub name: String,
    /// The topic's directory.
    pub path: PathBuf,
    /// What made it unusable (shared: the list can be read many times).
    pub error: Arc<Error>,
}
