//! [`Tailing`]: the thread of a read-only broker that waits, for async
//! tasks, on the partitions another process writes.
//!
//! A thread that finds nothing to read sleeps on the wake file's bell
//! itself (`storage/notify.rs`); a task cannot, so when one registers with
//! a follower's notifier it *kicks* this thread, started then if it is not
//! running. The thread arms the slot of every partition someone waits
//! for, catches those partitions up (which notifies, waking the tasks),
//! and sleeps on the bell (or, without a wake file, polls) until the writer
//! rings, a kick comes, or the poll interval passes.
//!
//! A kick sets a flag and then rings the bell; the thread clears the flag
//! *before* it takes its list of partitions and looks at the flag again
//! after loading the bell's value: either it sees the kick and goes round
//! again, or the kick's ring comes after its load and its wait returns at
//! once. So a task's first wait is never left to the poll interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::storage::health::{BackgroundError, BackgroundTask, Health};
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::wake_file::{POLL_WITH_BELL, POLL_WITHOUT_BELL, WakeFile};

/// The tailing thread of one read-only broker, started on first use.
pub(crate) struct Tailing {
    inner: Arc<Inner>,
}

struct Inner {
    logs: Mutex<Vec<Weak<PartitionLog>>>,
    wake: Option<Arc<WakeFile>>,
    health: Arc<Health>,
    kicked: AtomicBool,
    /// Without a wake file, the thread sleeps here.
    lock: Mutex<()>,
    cv: Condvar,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Tailing {
    /// A tailing thread (not started) for a broker whose wake file is
    /// `wake`.
    pub(crate) fn new(wake: Option<Arc<WakeFile>>, health: Arc<Health>) -> Tailing {
        Tailing {
            inner: Arc::new(Inner {
                logs: Mutex::new(Vec::new()),
                wake,
                health,
                kicked: AtomicBool::new(false),
                lock: Mutex::new(()),
                cv: Condvar::new(),
                stop: AtomicBool::new(false),
                thread: Mutex::new(None),
            }),
        }
    }

    /// Watches `log` (a follower) whenever someone waits for it.
    pub(crate) fn add(&self, log: &Arc<PartitionLog>) {
        let mut logs = self.inner.logs.lock();
        logs.retain(|l| l.strong_count() > 0);
        logs.push(Arc::downgrade(log));
    }

    /// What a follower's notifier calls when a task registers.
    pub(crate) fn kicker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let inner = Arc::downgrade(&self.inner);
        Arc::new(move || {
            if let Some(inner) = inner.upgrade() {
                inner.kick();
            }
        })
    }

    /// Stops the thread, if it runs, and waits for it (unless called from
    /// it).
    pub(crate) fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.kick();
        let handle = self.inner.thread.lock().take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join(); // it has nothing to report; a panic was a bug, already printed
        }
    }
}

impl Inner {
    fn kick(self: &Arc<Self>) {
        self.kicked.store(true, Ordering::SeqCst);
        if !self.stop.load(Ordering::SeqCst) {
            self.ensure_started();
        }
        match &self.wake {
            Some(wake) => wake.ring(),
            None => {
                let _guard = self.lock.lock();
                self.cv.notify_all();
            }
        }
    }

    fn ensure_started(self: &Arc<Self>) {
        let mut thread = self.thread.lock();
        if thread.is_some() {
            return;
        }
        let inner = Arc::clone(self);
        match std::thread::Builder::new().name("millpond-tailing".into()).spawn(move || inner.run()) {
            Ok(handle) => *thread = Some(handle),
            // Tasks waiting on another process's partitions then wake only
            // when something else looks (a thread's receive, a `stats`).
            Err(e) => self.health.report(BackgroundError::new(
                BackgroundTask::StartThread,
                crate::error::Error::ThreadSpawn { name: "millpond-tailing".into(), source: e },
            )),
        }
    }

    fn run(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            self.kicked.store(false, Ordering::SeqCst);
            let logs: Vec<Arc<PartitionLog>> = self
                .logs
                .lock()
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|l| l.notifier.has_waiters() && !l.notifier.is_closed())
                .collect();
            let mut seen = None;
            for log in &logs {
                seen = log.notifier.arm_for_tailing().or(seen);
            }
            let mut changed = false;
            for log in &logs {
                match log.catch_up() {
                    // What it found, it published and notified.
                    Ok(found) => changed |= found,
                    // A failure is for the waiting consumer to see: wake it
                    // (and sleep as usual, rather than look again at once
                    // at what may keep failing).
                    Err(_) => log.notifier.notify(),
                }
            }
            if changed {
                continue;
            }
            if self.kicked.load(Ordering::SeqCst) {
                continue;
            }
            let idle = logs.is_empty();
            drop(logs); // hold no partition while sleeping
            match &self.wake {
                Some(wake) => {
                    let seen = seen.unwrap_or_else(|| wake.bell_value());
                    if self.kicked.load(Ordering::SeqCst) {
                        continue;
                    }
                    wake.wait(seen, if idle { POLL_WITH_BELL * 10 } else { POLL_WITH_BELL });
                }
                None => {
                    let mut guard = self.lock.lock();
                    if !self.kicked.load(Ordering::SeqCst) {
                        let poll = if idle { POLL_WITH_BELL * 10 } else { POLL_WITHOUT_BELL };
                        let _ = self.cv.wait_for(&mut guard, poll);
                    }
                }
            }
        }
    }
}
