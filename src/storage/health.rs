//! Failures of background work, where no call can return them:
//! [`BackgroundError`] (what failed, where, and why) and [`Health`], which
//! records the failures that are current, logs each once through the `log`
//! facade, and hands it to the application's callback
//! ([`BrokerConfig::on_background_error`](crate::BrokerConfig::on_background_error)).
//!
//! A failure is reported once per distinct failure, not at every retry:
//! the same task failing the same way on the same partition again is not
//! news. When the task succeeds again the failure is no longer current, so
//! a later one is reported afresh.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::error::Error;

/// Background work that can fail with nobody to return the error to.
///
/// # Examples
///
/// ```
/// use millpond::BackgroundTask;
/// assert_eq!(BackgroundTask::Retention.to_string(), "retention");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackgroundTask {
    /// Deleting segments outside a topic's retention limits (the
    /// maintenance thread); retried at the next tick.
    Retention,
    /// Compacting a `CleanupPolicy::Compact` topic (the maintenance
    /// thread); retried at the next tick.
    Compaction,
    /// Syncing a partition under `FsyncPolicy::Interval`; the partition is
    /// poisoned and refuses writes ([`Error::Poisoned`]).
    Sync,
    /// Writing a sealed segment's index, when a segment rolls or the broker
    /// closes; the segment stays readable and the index is rebuilt when the
    /// partition is next opened.
    SegmentIndex,
    /// Preparing pages ahead of the writer (`BrokerConfig::prefault_bytes`);
    /// appends fault their own pages instead.
    Prefault,
    /// Committing a group member's positions when it was dropped (call
    /// `GroupMember::close` to get the error instead); the group resumes
    /// from its previous commit, so records may be delivered again.
    DropCommit,
    /// Writing a group's committed offsets for asynchronous commits
    /// (`GroupMember::commit_async`, a `Committer`, or `AutoCommit::Interval`)
    /// on the broker's commit thread; each request's handle also ends with
    /// the error. The group keeps its previous commit, so records may be
    /// delivered again; the next successful write clears it.
    Commit,
    /// Closing the broker when its last handle was dropped (call
    /// `Broker::close` to get the error instead).
    Close,
    /// Starting a background thread (the maintenance or pre-fault thread):
    /// the work it would do is done only when asked (`Topic::flush`,
    /// `Topic::enforce_retention`, `Topic::compact`).
    StartThread,
    /// Opening the broker's wake file (`millpond.wake`), through which
    /// read-only readers in other processes are woken: they poll instead,
    /// every few milliseconds.
    WakeFile,
}

impl std::fmt::Display for BackgroundTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackgroundTask::Retention => "retention",
            BackgroundTask::Compaction => "compaction",
            BackgroundTask::Sync => "interval sync",
            BackgroundTask::SegmentIndex => "segment index write",
            BackgroundTask::Prefault => "pre-faulting",
            BackgroundTask::DropCommit => "commit on drop",
            BackgroundTask::Commit => "async commit",
            BackgroundTask::Close => "close on drop",
            BackgroundTask::StartThread => "thread start",
            BackgroundTask::WakeFile => "wake file",
        })
    }
}

/// A failure of background work: what was being done, on which topic,
/// partition or group, and the error.
///
/// # Examples
///
/// ```
/// use millpond::{BackgroundError, Broker, BrokerConfig};
/// use std::sync::{Arc, Mutex};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-bgerr-{}", std::process::id()));
/// let seen: Arc<Mutex<Vec<String>>> = Arc::default();
/// let sink = Arc::clone(&seen);
/// let config = BrokerConfig::default().on_background_error(move |e: &BackgroundError| {
///     sink.lock().unwrap().push(format!("{}: {}", e.task, e.error));
/// });
/// let broker = Broker::open_with(&dir, config)?;
/// // Nothing failed: nothing was reported, and nothing is current.
/// assert!(seen.lock().unwrap().is_empty());
/// assert!(broker.background_errors().is_empty());
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackgroundError {
    /// What was being done.
    pub task: BackgroundTask,
    /// The topic concerned, if any.
    pub topic: Option<String>,
    /// The partition concerned, if any.
    pub partition: Option<u32>,
    /// The consumer group concerned, if any.
    pub group: Option<String>,
    /// What went wrong.
    pub error: Arc<Error>,
}

impl BackgroundError {
    /// A failure of `task`, concerning nothing more specific yet.
    pub(crate) fn new(task: BackgroundTask, error: Error) -> BackgroundError {
        BackgroundError { task, topic: None, partition: None, group: None, error: Arc::new(error) }
    }

    /// The same failure, on `partition` of `topic`.
    pub(crate) fn on(mut self, topic: &str, partition: u32) -> BackgroundError {
        self.topic = Some(topic.to_string());
        self.partition = Some(partition);
        self
    }

    /// The same failure, of `group` on `topic`.
    pub(crate) fn of_group(mut self, group: &str, topic: &str) -> BackgroundError {
        self.group = Some(group.to_string());
        self.topic = Some(topic.to_string());
        self
    }

    fn same_place(&self, other: &BackgroundError) -> bool {
        self.task == other.task
            && self.topic == other.topic
            && self.partition == other.partition
            && self.group == other.group
    }
}

impl std::fmt::Display for BackgroundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.task)?;
        match (&self.group, &self.topic, self.partition) {
            (Some(g), Some(t), _) => write!(f, " of group {g:?} on topic {t:?}")?,
            (None, Some(t), Some(p)) => write!(f, " of {t}/{p}")?,
            (None, Some(t), None) => write!(f, " of topic {t:?}")?,
            _ => {}
        }
        write!(f, ": {}", self.error)
    }
}

/// The application's callback for background failures.
pub(crate) type Callback = Arc<dyn Fn(&BackgroundError) + Send + Sync>;

/// The current background failures of one broker, and where to tell them.
#[derive(Default)]
pub(crate) struct Health {
    callback: Option<Callback>,
    /// How many failures are current: lets `resolved` skip the lock on the
    /// common path, where nothing failed.
    count: AtomicUsize,
    current: Mutex<Vec<BackgroundError>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("current", &self.current.lock().len()).finish()
    }
}

impl Health {
    /// Reports to `callback`, if any.
    pub(crate) fn new(callback: Option<Callback>) -> Health {
        Health { callback, ..Health::default() }
    }

    /// Records `failure`; if it is news (not the failure already current
    /// for the same task and place), logs it and calls the callback.
    pub(crate) fn report(&self, failure: BackgroundError) {
        let text = failure.error.to_string();
        {
            let mut current = self.current.lock();
            if current.iter().any(|c| c.same_place(&failure) && c.error.to_string() == text) {
                return;
            }
            current.retain(|c| !c.same_place(&failure));
            current.push(failure.clone());
            self.count.store(current.len(), Ordering::Release);
        }
        log::warn!("millpond: {failure}");
        if let Some(callback) = &self.callback {
            // A panicking callback must not take the reporting thread (the
            // maintenance thread, say) down with it.
            if catch_unwind(AssertUnwindSafe(|| callback(&failure))).is_err() {
                log::error!("millpond: the background-error callback panicked on: {failure}");
            }
        }
    }

    /// `task` succeeded on `partition` of `topic`: its failure there, if
    /// any, is no longer current.
    pub(crate) fn resolved(&self, task: BackgroundTask, topic: &str, partition: u32) {
        self.forget(|c| c.task == task && c.topic.as_deref() == Some(topic) && c.partition == Some(partition));
    }

    /// `task` succeeded for `group` on `topic`: its failure there, if any,
    /// is no longer current.
    pub(crate) fn resolved_group(&self, task: BackgroundTask, group: &str, topic: &str) {
        self.forget(|c| c.task == task && c.group.as_deref() == Some(group) && c.topic.as_deref() == Some(topic));
    }

    /// Drops the current failures `resolved_by` names; takes no lock when
    /// nothing is current (the common case, on every successful tick).
    fn forget(&self, resolved_by: impl Fn(&BackgroundError) -> bool) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut current = self.current.lock();
        current.retain(|c| !resolved_by(c));
        self.count.store(current.len(), Ordering::Release);
    }

    /// The failures that are current, oldest first.
    pub(crate) fn current(&self) -> Vec<BackgroundError> {
        self.current.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting() -> (Health, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let health = Health::new(Some(Arc::new(move |_: &BackgroundError| {
            seen.fetch_add(1, Ordering::SeqCst);
        })));
        (health, calls)
    }

    #[test]
    fn the_same_failure_is_reported_once_until_the_task_succeeds() {
        let (health, calls) = counting();
        for _ in 0..5 {
            health.report(BackgroundError::new(BackgroundTask::Retention, Error::Closed).on("t", 0));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "five ticks, one failure");
        assert_eq!(health.current().len(), 1);
        health.resolved(BackgroundTask::Retention, "t", 0);
        assert!(health.current().is_empty());
        health.report(BackgroundError::new(BackgroundTask::Retention, Error::Closed).on("t", 0));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a failure after a success is news again");
    }

    #[test]
    fn a_different_failure_or_place_is_news() {
        let (health, calls) = counting();
        health.report(BackgroundError::new(BackgroundTask::Retention, Error::Closed).on("t", 0));
        health.report(BackgroundError::new(BackgroundTask::Retention, Error::Closed).on("t", 1));
        health.report(
            BackgroundError::new(BackgroundTask::Retention, Error::TopicDeleted { topic: "t".into() }).on("t", 0),
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(health.current().len(), 2, "partition 0's new failure replaced its old one");
    }

    #[test]
    fn a_panicking_callback_does_not_unwind_into_the_reporter() {
        let health = Health::new(Some(Arc::new(|_: &BackgroundError| panic!("callback bug"))));
        health.report(BackgroundError::new(BackgroundTask::Compaction, Error::Closed));
        assert_eq!(health.current().len(), 1);
    }
}
