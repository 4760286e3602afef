//! Background threads: [`spawn_thread`] starts a named thread (a failure to
//! start is [`Error::ThreadSpawn`], not an I/O error without a path), and
//! [`Worker`] is a thread that runs until halted and keeps the error that
//! ended it. The broker's maintenance thread, the pre-fault thread,
//! consumer channels, mirrors and the Kafka bridge all start through here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};

/// Starts `f` on a new thread called `name`.
pub(crate) fn spawn_thread<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    std::thread::Builder::new().name(name.clone()).spawn(f).map_err(|source| Error::ThreadSpawn { name, source })
}

/// A stop request that a sleeping worker wakes for at once.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Stop {
    fn request(&self) {
        let _guard = self.lock.lock();
        self.flag.store(true, Ordering::SeqCst);
        self.cv.notify_all();
    }

    /// Sleeps for `d` or until a stop is requested; `true` if it was.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now().checked_add(d);
        let mut guard = self.lock.lock();
        while !self.flag.load(Ordering::SeqCst) {
            match deadline {
                Some(at) => {
                    if self.cv.wait_until(&mut guard, at).timed_out() {
                        break;
                    }
                }
                None => self.cv.wait(&mut guard),
            }
        }
        self.flag.load(Ordering::SeqCst)
    }
}

/// A named thread running until told to stop or until its work returns;
/// it keeps the error that ended it.
pub(crate) struct Worker {
    what: &'static str,
    stop: Arc<Stop>,
    error: Arc<Mutex<Option<Error>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("what", &self.what).field("running", &self.is_running()).finish()
    }
}

impl Worker {
    /// Starts `work(stop)` on a thread named `name`; `what` names it in
    /// errors. `work` should return soon after `stop` is set.
    pub(crate) fn spawn(
        name: String,
        what: &'static str,
        work: impl FnOnce(&AtomicBool) -> Result<()> + Send + 'static,
    ) -> Result<Worker> {
        let stop = Arc::new(Stop::default());
        let error = Arc::new(Mutex::new(None));
        let (signal, slot) = (Arc::clone(&stop), Arc::clone(&error));
        let thread = spawn_thread(name, move || {
            if let Err(e) = work(&signal.flag) {
                *slot.lock() = Some(e);
            }
        })?;
        Ok(Worker { what, stop, error, thread: Some(thread) })
    }

    /// Starts a thread named `name` that calls `tick` until halted: after
    /// each call it sleeps for the duration `tick` returns (waking at once
    /// for a halt), and it ends when `tick` returns `None`.
    pub(crate) fn periodic(
        name: String,
        what: &'static str,
        mut tick: impl FnMut() -> Option<Duration> + Send + 'static,
    ) -> Result<Worker> {
        let stop = Arc::new(Stop::default());
        let signal = Arc::clone(&stop);
        let thread = spawn_thread(name, move || {
            while !signal.flag.load(Ordering::SeqCst) {
                match tick() {
                    Some(d) => {
                        if signal.sleep(d) {
                            return;
                        }
                    }
                    None => return,
                }
            }
        })?;
        Ok(Worker { what, stop, error: Arc::new(Mutex::new(None)), thread: Some(thread) })
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
        self.stop.request();
        if let Some(t) = self.thread.take() {
            // Halted from its own thread (a callback it ran dropped the last
            // handle of what owns it): the stop request ends it on return;
            // joining itself would fail.
            if t.thread().id() == std::thread::current().id() {
                return Ok(());
            }
            if t.join().is_err() {
                return Err(Error::ThreadPanicked { what: self.what });
            }
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
            // Drop cannot return it; the owner's `stop()` does.
            log::warn!("millpond: {} stopped on an error: {e}", self.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_periodic_worker_wakes_for_a_halt_instead_of_sleeping_on() {
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = Arc::clone(&ticks);
        let mut w = Worker::periodic("millpond-test-tick".into(), "test", move || {
            seen.fetch_add(1, Ordering::SeqCst);
            Some(Duration::from_secs(3600))
        })
        .unwrap();
        while ticks.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let start = Instant::now();
        w.halt().unwrap();
        assert!(start.elapsed() < Duration::from_secs(60), "halt waited out the hour-long sleep");
        assert!(!w.is_running());
    }

    #[test]
    fn a_worker_keeps_the_error_that_ended_it() {
        let mut w = Worker::spawn("millpond-test-err".into(), "test", |_| Err(Error::Closed)).unwrap();
        while w.is_running() {
            std::thread::yield_now();
        }
        assert_eq!(
            w.error().as_deref(),
            Some("the broker was closed (Broker::close was called); open its directory again to go on")
        );
        assert!(matches!(w.halt(), Err(Error::Closed)));
    }
}
