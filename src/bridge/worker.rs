//! A background thread that runs until told to stop and reports the error
//! that ended it: the shared machinery of [`Mirror`](crate::Mirror) and the
//! Kafka bridge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::client::consumer_group::group::GroupMember;
use crate::error::{Error, Result};
use crate::storage::message::Message;

/// `member.poll(max, timeout)` for a copying thread. Records retention
/// deleted before they were read ([`Error::Lagged`]) cannot be copied: they
/// are counted in `skipped` and the batch is empty (the member already went
/// on with the oldest record still stored).
pub(crate) fn poll_past_retention(
    member: &mut GroupMember,
    max: usize,
    timeout: Duration,
    skipped: &AtomicU64,
) -> Result<Vec<Message>> {
    match member.poll(max, timeout) {
        Err(Error::Lagged { from, resumed_at, .. }) => {
            skipped.fetch_add(resumed_at.saturating_sub(from), Ordering::Relaxed);
            Ok(Vec::new())
        }
        other => other,
    }
}

/// A named thread running `work(stop)` until `stop` is set or it returns.
pub(crate) struct Worker {
    what: &'static str,
    stop: Arc<AtomicBool>,
    error: Arc<Mutex<Option<Error>>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `work` on a thread named `name`; `what` names it in errors.
    pub(crate) fn spawn(
        name: String,
        what: &'static str,
        work: impl FnOnce(&AtomicBool) -> Result<()> + Send + 'static,
    ) -> Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let (flag, slot) = (Arc::clone(&stop), Arc::clone(&error));
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                if let Err(e) = work(&flag) {
                    *slot.lock() = Some(e);
                }
            })
            .map_err(|e| Error::io("spawn background thread", "", e))?;
        Ok(Worker { what, stop, error, thread: Some(thread) })
    }

    /// Whether the thread is still running.
    pub(crate) fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The error that ended the thread, if any, as text.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().as_ref().map(Error::to_string)
    }

    /// Asks the thread to stop, waits for it, and returns the error that
    /// ended it, if any.
    pub(crate) fn halt(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            return Err(Error::ThreadPanicked { what: self.what });
        }
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Err(e) = self.halt() {
            // Drop cannot return it; `stop()` on the owner does.
            eprintln!("millpond: {} stopped on an error: {e}", self.what);
        }
    }
}
