//! [`DurableAppender`]: a broker thread that appends records to partitions
//! whose fsync policy is `Always` on behalf of async senders, so the fsync
//! holds that thread and not the sender's task; records queued for the
//! same partition meanwhile go in one frame with one fsync (a group
//! commit, as Kafka's and every database's log does).

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, unbounded};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::storage::background::spawn_thread;
use crate::storage::partition_log::state::PartitionLog;
use crate::storage::record::Record;

/// The most records one frame of the thread's gathers (the rest wait for
/// the next round).
const MAX_GATHER: usize = 4096;

/// One record to append, and where to say how it went.
struct Job {
    log: Arc<PartitionLog>,
    record: Record<'static>,
    size: usize,
    done: Arc<Completion>,
}

/// The result of one queued append: its offset once it is durable, or why
/// it is not. Awaited by the sender's future.
#[derive(Default)]
pub(crate) struct Completion {
    state: Mutex<(Option<Result<u64>>, Option<Waker>)>,
}

impl Completion {
    fn finish(&self, result: Result<u64>) {
        let waker = {
            let mut s = self.state.lock();
            s.0 = Some(result);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The result if it is there; otherwise remembers `cx`'s waker.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        let mut s = self.state.lock();
        match s.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The thread and its queue. Dropping the sender side ends the thread once
/// the queue is empty.
pub(crate) struct DurableAppender {
    tx: Option<Sender<Job>>,
    handle: Option<JoinHandle<()>>,
}

impl DurableAppender {
    /// Starts the thread (`millpond-durable`).
    pub(crate) fn start() -> Result<DurableAppender> {
        let (tx, rx) = unbounded();
        let handle = spawn_thread("millpond-durable".into(), move || run(&rx))?;
        Ok(DurableAppender { tx: Some(tx), handle: Some(handle) })
    }

    /// Queues `record` (of encoded size `size`) for `log`; its completion
    /// says when it is durable. After [`stop`](DurableAppender::stop), the
    /// completion is `Error::Closed` at once.
    pub(crate) fn submit(&self, log: Arc<PartitionLog>, record: Record<'static>, size: usize) -> Arc<Completion> {
        let done = Arc::new(Completion::default());
        let job = Job { log, record, size, done: Arc::clone(&done) };
        match &self.tx {
            Some(tx) => {
                if let Err(e) = tx.send(job) {
                    e.into_inner().done.finish(Err(Error::Closed));
                }
            }
            None => done.finish(Err(Error::Closed)),
        }
        done
    }

    /// Ends the thread after it has appended (or failed) everything queued,
    /// and waits for it, unless this is that thread: a sender's waker can
    /// hold the broker's last handle and drop it while the thread finishes
    /// a send, so the broker's close can run here. Then the thread is not
    /// joined (it cannot join itself); it goes on once this returns,
    /// answers what is still queued (`Closed`, as the partitions are closed
    /// by then) and ends.
    pub(crate) fn stop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take()
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join(); // the thread reports through each completion
        }
    }
}

impl Drop for DurableAppender {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(rx: &Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GATHER {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // Per partition, in queue order: one append (one frame, one fsync)
        // for all of its records.
        while !jobs.is_empty() {
            let log = Arc::clone(&jobs[0].log);
            let (mine, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| Arc::ptr_eq(&j.log, &log));
            jobs = rest;
            append_together(&log, mine);
        }
    }
}

/// Appends `jobs` to `log` as one batch; if that fails (all or nothing, so
/// nothing was written), each on its own, so each gets its own error.
fn append_together(log: &PartitionLog, jobs: Vec<Job>) {
    let records: Vec<&Record<'static>> = jobs.iter().map(|j| &j.record).collect();
    let sizes: Vec<usize> = jobs.iter().map(|j| j.size).collect();
    match log.append(&records, &sizes) {
        Ok(first) => {
            for (i, job) in jobs.iter().enumerate() {
                job.done.finish(Ok(first + i as u64));
            }
        }
        Err(_) if jobs.len() > 1 => {
            for job in &jobs {
                job.done.finish(log.append(&[&job.record], &[job.size]));
            }
        }
        Err(e) => jobs[0].done.finish(Err(e)),
    }
}
