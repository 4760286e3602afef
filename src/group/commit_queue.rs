//! A group's queue of commit requests, and [`Completion`], the slot where a
//! request's outcome is delivered to whoever waits for it (a thread, or a
//! task through its [`Waker`]).
//!
//! Every commit of a group — asynchronous, blocking, automatic, on revoke
//! or on leaving — is a [`CommitRequest`] pushed here in the order it was
//! made. Whoever writes the offsets file next (the broker's commit thread,
//! or a blocking commit writing its own request) takes *all* queued
//! requests at once, applies them in order (a later request's offset for a
//! partition wins) and writes the result once: N queued requests cost one
//! file write, and a later request is never overwritten by an earlier one.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// The outcome of one commit request, once known.
#[derive(Default)]
pub(crate) struct Completion {
    slot: Mutex<Slot>,
    done: Condvar,
}

#[derive(Default)]
struct Slot {
    /// Set once, when the request is written or refused.
    outcome: Option<Result<()>>,
    /// Whether the outcome was handed out already (later reads get a copy).
    taken: bool,
    /// The task to wake when the outcome arrives.
    waker: Option<Waker>,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completion").field("done", &self.is_done()).finish()
    }
}

impl Completion {
    /// A completion still waiting for its outcome.
    pub(crate) fn pending() -> Arc<Completion> {
        Arc::new(Completion::default())
    }

    /// A completion whose outcome is already known.
    pub(crate) fn ready(outcome: Result<()>) -> Arc<Completion> {
        let c = Completion::default();
        c.slot.lock().outcome = Some(outcome);
        Arc::new(c)
    }

    /// Delivers the outcome (the first one wins) and wakes the waiters. The
    /// waker is woken after the lock is released.
    pub(crate) fn complete(&self, outcome: Result<()>) {
        let waker = {
            let mut slot = self.slot.lock();
            if slot.outcome.is_some() || slot.taken {
                return;
            }
            slot.outcome = Some(outcome);
            self.done.notify_all();
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the outcome is known.
    pub(crate) fn is_done(&self) -> bool {
        let slot = self.slot.lock();
        slot.outcome.is_some() || slot.taken
    }

    /// The outcome if it is known and failed, without taking it.
    pub(crate) fn failure(&self) -> Option<Error> {
        match &self.slot.lock().outcome {
            Some(Err(e)) => Some(copy_error(e)),
            _ => None,
        }
    }

    fn take(slot: &mut Slot) -> Option<Result<()>> {
        if let Some(outcome) = slot.outcome.take() {
            // Kept (as a copy) for a second read: polling a completed
            // future again gives the same answer instead of a panic.
            slot.outcome = Some(match &outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(copy_error(e)),
            });
            slot.taken = true;
            return Some(outcome);
        }
        None
    }

    /// Blocks until the outcome is known and returns it.
    pub(crate) fn wait(&self) -> Result<()> {
        let mut slot = self.slot.lock();
        loop {
            if let Some(outcome) = Self::take(&mut slot) {
                return outcome;
            }
            self.done.wait(&mut slot);
        }
    }

    /// The outcome if known; else remembers `cx`'s waker (replacing an
    /// earlier one unless it would wake the same task).
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut slot = self.slot.lock();
        if let Some(outcome) = Self::take(&mut slot) {
            return Poll::Ready(outcome);
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            other => *other = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// One commit: member `member` asks for `offsets` to be committed.
pub(crate) struct CommitRequest {
    pub(crate) member: u64,
    pub(crate) offsets: Vec<(u32, u64)>,
    /// Made by an asynchronous call, whose caller may never look at the
    /// outcome: a failed write is then reported as a background failure.
    pub(crate) background: bool,
    /// Written for a committed transaction, whose checks were made when it
    /// committed: applied even if its member has left since.
    pub(crate) transactional: bool,
    /// When it was made, in the group's order of requests and transactions
    /// (`GroupState::next_seq`): a transaction's offsets applied after it
    /// are not undone by it.
    pub(crate) seq: u64,
    pub(crate) done: Arc<Completion>,
}

/// The requests not yet taken by a writer.
#[derive(Default)]
pub(crate) struct CommitQueue {
    inner: Mutex<QueueInner>,
}

#[derive(Default)]
struct QueueInner {
    requests: Vec<CommitRequest>,
    /// Whether the commit thread has been told to write this group.
    scheduled: bool,
    /// Set when the group closed: requests are refused with this error.
    closed: Option<Error>,
}

impl CommitQueue {
    /// Queues `request`; returns whether the commit thread should now be
    /// told of the group (`schedule`, and it was not told already). A
    /// closed group refuses it instead: the request is completed with the
    /// group's closing error, and `false` returned.
    pub(crate) fn push(&self, request: CommitRequest, schedule: bool) -> bool {
        let mut q = self.inner.lock();
        if let Some(e) = &q.closed {
            let e = copy_error(e);
            drop(q);
            request.done.complete(Err(e));
            return false;
        }
        q.requests.push(request);
        let tell = schedule && !q.scheduled;
        q.scheduled |= schedule;
        tell
    }

    /// Marks the group scheduled; returns whether the commit thread should
    /// now be told of it (it was not told already).
    pub(crate) fn schedule(&self) -> bool {
        let mut q = self.inner.lock();
        let tell = !q.scheduled && !q.requests.is_empty();
        q.scheduled |= tell;
        tell
    }

    /// The commit thread is about to write: requests pushed from now on
    /// schedule it again.
    pub(crate) fn unschedule(&self) {
        self.inner.lock().scheduled = false;
    }

    /// Takes every queued request, in the order they were made.
    pub(crate) fn take_all(&self) -> Vec<CommitRequest> {
        std::mem::take(&mut self.inner.lock().requests)
    }

    /// Refuses every later request with `reason`; returns those queued.
    pub(crate) fn close(&self, reason: &Error) -> Vec<CommitRequest> {
        let mut q = self.inner.lock();
        q.closed = Some(copy_error(reason));
        std::mem::take(&mut q.requests)
    }
}

/// A copy of `e`, for outcomes shared by several requests (one file write
/// for many) and for reading an outcome twice. [`Error`] is not `Clone`
/// (it carries `io::Error`s); the variants a commit can end with are copied
/// exactly, an `io::Error` by its OS error code (or kind and message).
pub(crate) fn copy_error(e: &Error) -> Error {
    fn copy_io(source: &std::io::Error) -> std::io::Error {
        match source.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(source.kind(), source.to_string()),
        }
    }
    match e {
        Error::Closed => Error::Closed,
        Error::TopicDeleted { topic } => Error::TopicDeleted { topic: topic.clone() },
        Error::NotAssigned { topic, group, partition } => {
            Error::NotAssigned { topic: topic.clone(), group: group.clone(), partition: *partition }
        }
        Error::NotAMember { topic, group } => Error::NotAMember { topic: topic.clone(), group: group.clone() },
        Error::OffsetOutOfRange { topic, partition, offset, start, end } => Error::OffsetOutOfRange {
            topic: topic.clone(),
            partition: *partition,
            offset: *offset,
            start: *start,
            end: *end,
        },
        Error::CorruptMetadata { path, reason } => {
            Error::CorruptMetadata { path: path.clone(), reason: reason.clone() }
        }
        Error::Symlink { op, path } => Error::Symlink { op, path: path.clone() },
        Error::DiskFull { op, path, source } => Error::DiskFull { op, path: path.clone(), source: copy_io(source) },
        Error::Io { op, path, source } => Error::Io { op, path: path.clone(), source: copy_io(source) },
        Error::ThreadSpawn { name, source } => Error::ThreadSpawn { name: name.clone(), source: copy_io(source) },
        other => Error::Io {
            op: "commit offsets",
            path: std::path::PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_delivers_its_first_outcome_once_and_a_copy_after() {
        let c = Completion::pending();
        assert!(!c.is_done());
        c.complete(Err(Error::Closed));
        c.complete(Ok(()));
        assert!(c.is_done());
        assert!(matches!(c.wait(), Err(Error::Closed)));
        assert!(matches!(c.wait(), Err(Error::Closed)), "read again: the same outcome");
    }

    #[test]
    fn a_closed_queue_refuses_requests_with_its_reason() {
        let q = CommitQueue::default();
        let queued = Completion::pending();
        assert!(q.push(
            CommitRequest {
                member: 1,
                offsets: vec![],
                background: true,
                transactional: false,
                seq: 0,
                done: Arc::clone(&queued)
            },
            true
        ));
        assert_eq!(q.close(&Error::TopicDeleted { topic: "t".into() }).len(), 1);
        let late = Completion::pending();
        assert!(!q.push(
            CommitRequest {
                member: 1,
                offsets: vec![],
                background: true,
                transactional: false,
                seq: 0,
                done: Arc::clone(&late)
            },
            true
        ));
        assert!(matches!(late.wait(), Err(Error::TopicDeleted { .. })));
    }
}
