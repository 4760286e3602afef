//! A loom model of the wait/wake protocol, the place a lost wake-up would
//! hide.
//!
//! loom runs each test body again and again, once for every interleaving of
//! its threads (up to a bound on preemptions) and, within the limits its
//! documentation lists, every value the C11 memory model lets each atomic
//! load return. Those limits spare what this protocol rests on: loom models
//! `SeqCst` fences (it is `SeqCst` loads and stores that it treats as
//! `AcqRel`, which could only make it report a bug that is not there). The
//! notifier is built from loom's primitives here (see `sync` in the parent
//! module). A lost wake-up leaves a consumer asleep with nobody left to wake
//! it; loom sees that every thread is blocked and fails the test as a
//! deadlock.
//!
//! The consumers here do what `Consumer::wait_for_data` and `Consumer::park`
//! do (the back-pressure wait in `wait_for_space` is the same protocol on
//! the `space` notifier), less the spinning and the deadline: check, register
//! with every notifier, check again, sleep only if there is still nothing,
//! unregister, and go round again. The producers do what an append does:
//! publish with `Release`, then `notify`.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_model`
//! (CI does, in a target directory of its own). `LOOM_MAX_PREEMPTIONS`
//! overrides the preemption bound set here.

use std::sync::Arc;

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;

use crate::storage::notify::{Notifier, WaitCell};

/// The preemption bound when `LOOM_MAX_PREEMPTIONS` is not set. loom's
/// documentation finds a bound of 2 or 3 enough to catch most bugs; at 3 the
/// five models take about two seconds in a release build (at 4, some ten
/// seconds; at 5, about a minute). Each broken variant tried while writing
/// them (no fence in `notify`, a `Release` one there, no fence in
/// `register`, the re-check before `register`, `close` waking before it
/// marks the notifier closed) fails here at once, as a deadlock.
const PREEMPTIONS: usize = 3;

fn model<F: Fn() + Sync + Send + 'static>(body: F) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound.get_or_insert(PREEMPTIONS);
    builder.check(body);
}

/// One partition, reduced to what the protocol sees: a record, and the
/// committed length that publishes it.
#[derive(Default)]
struct Partition {
    record: AtomicU64,
    committed: AtomicU64,
    notifier: Notifier,
}

impl Partition {
    /// An append: write record `n`, publish it (`Release`), notify.
    fn append(&self, n: u64) {
        self.record.store(n, Ordering::Relaxed);
        self.committed.store(n, Ordering::Release);
        self.notifier.notify();
    }

    /// Whether the consumer's cursor, at `next`, may read a record
    /// (`Acquire`: pairs with the append's `Release`).
    fn has(&self, next: u64) -> bool {
        self.committed.load(Ordering::Acquire) >= next
    }
}

/// A consumer's wait: until `ready`, register `cell` with every notifier,
/// re-check, sleep only if still not ready, unregister.
fn wait_until(cell: &Arc<WaitCell>, notifiers: &[&Notifier], ready: impl Fn() -> bool) {
    while !ready() {
        for n in notifiers {
            n.register(cell);
        }
        if !ready() {
            cell.sleep(None);
        }
        for n in notifiers {
            n.unregister(cell);
        }
    }
}

fn no_waiters(n: &Notifier) {
    assert_eq!(n.waiting.load(Ordering::SeqCst), 0);
    assert!(n.cells.lock().is_empty());
}

/// (a) One producer appends one record while a consumer parks for it: the
/// consumer always wakes, and reads the record that woke it.
#[test]
fn loom_model_append_wakes_a_parking_consumer() {
    model(|| {
        let p = Arc::new(Partition::default());
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || p.append(1))
        };
        let cell = Arc::new(WaitCell::default());
        wait_until(&cell, &[&p.notifier], || p.has(1));
        assert_eq!(p.record.load(Ordering::Relaxed), 1);
        producer.join().unwrap();
        no_waiters(&p.notifier);
    });
}

/// (a, twice) Two appends, and a consumer that waits for each in turn with
/// the same cell: the wake left over from the first append (a cell's flag
/// outlives its sleep) must neither hide the second nor be the only one.
#[test]
fn loom_model_consumer_waits_twice_with_one_cell() {
    model(|| {
        let p = Arc::new(Partition::default());
        let producer = {
            let p = Arc::clone(&p);
            thread::spawn(move || {
                p.append(1);
                p.append(2);
            })
        };
        let cell = Arc::new(WaitCell::default());
        for next in 1..=2 {
            wait_until(&cell, &[&p.notifier], || p.has(next));
            assert!(p.record.load(Ordering::Relaxed) >= next);
        }
        producer.join().unwrap();
        no_waiters(&p.notifier);
    });
}

/// (b) `close` racing with a consumer that parks: the consumer always
/// wakes and sees the partition closed.
#[test]
fn loom_model_close_wakes_a_parking_consumer() {
    model(|| {
        let n = Arc::new(Notifier::default());
        let closer = {
            let n = Arc::clone(&n);
            thread::spawn(move || n.close())
        };
        let cell = Arc::new(WaitCell::default());
        wait_until(&cell, &[&n], || n.is_closed());
        closer.join().unwrap();
        no_waiters(&n);
    });
}

/// (c) Two consumers, each with its own cell, park on one partition: one
/// append wakes both.
#[test]
fn loom_model_one_append_wakes_two_consumers() {
    model(|| {
        let p = Arc::new(Partition::default());
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let p = Arc::clone(&p);
                thread::spawn(move || {
                    let cell = Arc::new(WaitCell::default());
                    wait_until(&cell, &[&p.notifier], || p.has(1));
                    assert_eq!(p.record.load(Ordering::Relaxed), 1);
                })
            })
            .collect();
        p.append(1);
        for c in consumers {
            c.join().unwrap();
        }
        no_waiters(&p.notifier);
    });
}

/// (c) A consumer of two partitions parks on both notifiers with one cell;
/// two producers append, one to each: whichever append it sees first wakes
/// it, and neither producer's notify is lost while it is registered.
#[test]
fn loom_model_consumer_of_two_partitions_wakes_on_either() {
    model(|| {
        let parts = Arc::new([Partition::default(), Partition::default()]);
        let producers: Vec<_> = (0..2)
            .map(|i| {
                let parts = Arc::clone(&parts);
                thread::spawn(move || parts[i].append(1))
            })
            .collect();
        let cell = Arc::new(WaitCell::default());
        let notifiers = [&parts[0].notifier, &parts[1].notifier];
        // Wait for both, one wake at a time, as a consumer reading both
        // partitions does.
        wait_until(&cell, &notifiers, || parts.iter().any(|p| p.has(1)));
        wait_until(&cell, &notifiers, || parts.iter().all(|p| p.has(1)));
        for p in parts.iter() {
            assert_eq!(p.record.load(Ordering::Relaxed), 1);
        }
        for t in producers {
            t.join().unwrap();
        }
        for p in parts.iter() {
            no_waiters(&p.notifier);
        }
    });
}
