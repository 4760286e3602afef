//! [`CommitThread`]: the broker's `millpond-commit` thread, which writes
//! the offsets files of asynchronous commits so that the fsyncs (two, plus
//! renames, per write) run off the consuming threads.
//!
//! A group with queued requests is handed to the thread once (see
//! `CommitQueue::push`); the thread writes everything the group has queued
//! by then in one file write. Requests made while it writes are written by
//! its next write, so a burst of requests costs about two file writes.
//!
//! The thread starts with the first asynchronous commit and stops at broker
//! close, after every group has been closed (each group writes what it
//! still has queued as it closes, see `GroupState::close`). If it cannot be
//! started, the commit is written on the calling thread, and the failure is
//! reported as [`BackgroundTask::StartThread`].

use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::Mutex;

use crate::storage::background::Worker;
use crate::storage::health::{BackgroundError, BackgroundTask, Health};

/// What the commit thread writes: a group with queued commit requests
/// (`GroupState`; a trait so that this file needs nothing of it).
pub(crate) trait ScheduledWrite: Send + Sync {
    /// Writes every request queued now, in one file write.
    fn write_scheduled(&self);
}

/// The commit thread of one broker, started on first use.
pub(crate) struct CommitThread {
    pub(crate) health: Arc<Health>,
    running: Mutex<Running>,
}

enum Running {
    NotStarted,
    Started { groups: Sender<Arc<dyn ScheduledWrite>>, worker: Worker },
    Stopped,
}

impl std::fmt::Debug for CommitThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.running.lock() {
            Running::NotStarted => "not started",
            Running::Started { .. } => "running",
            Running::Stopped => "stopped",
        };
        f.debug_struct("CommitThread").field("state", &state).finish()
    }
}

impl CommitThread {
    /// The commit thread of the broker whose failures go to `health`.
    pub(crate) fn new(health: Arc<Health>) -> CommitThread {
        CommitThread { health, running: Mutex::new(Running::NotStarted) }
    }

    /// Has `group`'s queued requests written off the calling thread.
    pub(crate) fn schedule(&self, group: Arc<dyn ScheduledWrite>) {
        let mut running = self.running.lock();
        if matches!(*running, Running::NotStarted) {
            let (tx, rx) = crossbeam_channel::unbounded::<Arc<dyn ScheduledWrite>>();
            match Worker::spawn("millpond-commit".into(), "commit", move |_| {
                // Ends when the sender is dropped (at `stop`), after writing
                // every group still handed over.
                for group in rx {
                    group.write_scheduled();
                }
                Ok(())
            }) {
                Ok(worker) => *running = Running::Started { groups: tx, worker },
                Err(e) => {
                    drop(running);
                    self.health.report(BackgroundError::new(BackgroundTask::StartThread, e));
                    group.write_scheduled();
                    return;
                }
            }
        }
        match &*running {
            Running::Started { groups, .. } => {
                if let Err(returned) = groups.send(group) {
                    drop(running);
                    returned.into_inner().write_scheduled();
                }
            }
            // Stopped (the broker closed): written here, or refused by the
            // closed group.
            _ => {
                drop(running);
                group.write_scheduled();
            }
        }
    }

    /// Stops the thread after it has written every group handed to it, and
    /// waits for it.
    pub(crate) fn stop(&self) {
        let old = std::mem::replace(&mut *self.running.lock(), Running::Stopped);
        if let Running::Started { groups, mut worker } = old {
            drop(groups);
            if let Err(e) = worker.halt() {
                log::error!("millpond: the commit thread ended badly: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the name of each thread that wrote.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Option<String>>>);

    impl ScheduledWrite for Recorder {
        fn write_scheduled(&self) {
            self.0.lock().push(std::thread::current().name().map(str::to_string));
        }
    }

    #[test]
    fn writes_on_the_commit_thread_until_stopped_then_on_the_caller() {
        let thread = CommitThread::new(Arc::new(Health::default()));
        assert!(format!("{thread:?}").contains("not started"));
        let group = Arc::new(Recorder::default());
        thread.schedule(Arc::clone(&group) as Arc<dyn ScheduledWrite>);
        thread.schedule(Arc::clone(&group) as Arc<dyn ScheduledWrite>);
        assert!(format!("{thread:?}").contains("running"));
        // Stopping writes what was handed over, then joins the thread.
        thread.stop();
        assert!(format!("{thread:?}").contains("stopped"));
        assert_eq!(*group.0.lock(), vec![Some("millpond-commit".to_string()); 2]);
        thread.schedule(Arc::clone(&group) as Arc<dyn ScheduledWrite>);
        assert_eq!(group.0.lock().len(), 3, "after stop: written on the calling thread");
        assert_eq!(group.0.lock()[2], std::thread::current().name().map(str::to_string));
        thread.stop(); // again: nothing to do
    }
}
