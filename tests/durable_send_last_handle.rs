//! The last handle of a broker can be dropped on the
//! `millpond-durable` thread (the waker a durable `send_async` left in its
//! completion holds it: an executor whose task, and so whose future and
//! producer, lives in the waker, as async-task's or a hand-rolled one
//! does). `KeepAlive::drop` then runs `Shared::close` on that thread,
//! which joins the durable thread from itself: a panic, and the close
//! stops half-way (partitions never closed, i.e. never trimmed).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use millpond::{Broker, FsyncPolicy, Record, Topic, TopicConfig};
use support::dir::TempDir;
use support::layout::active_segment;
use support::wait::poll_until;

/// A waker that owns a topic handle, as a task's waker owns the task (and
/// the task its future) in many executors.
struct OwningWaker {
    _topic: Topic,
}

impl Wake for OwningWaker {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn last_handle_dropped_by_the_durable_threads_wake_closes_the_broker() {
    let panics: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&panics);
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        seen.lock().unwrap().push(format!("{name}: {info}"));
        prev(info);
    }));

    let tmp = TempDir::new("durable-last-handle");
    let segment_bytes = 1 << 20;
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker
            .create_topic(
                "t",
                TopicConfig::default().fsync(FsyncPolicy::Always).segment_bytes(segment_bytes).max_record_bytes(4096),
            )
            .unwrap();
        let producer = topic.producer();
        let mut pending = false;
        // The first poll hands the record over; with the fsync still to come
        // it is Pending (retry if the thread was quicker than the poll).
        for _ in 0..100 {
            let waker = Waker::from(Arc::new(OwningWaker { _topic: topic.clone() }));
            let mut cx = Context::from_waker(&waker);
            let mut fut = producer.send_async(Record::new(vec![7u8; 100]));
            if Pin::new(&mut fut).poll(&mut cx).is_pending() {
                pending = true;
                break;
            }
        }
        assert!(pending, "a durable send_async was never pending at its first poll");
        // Every handle but the one inside the completion's waker goes.
        drop(producer);
        drop(topic);
        drop(broker);
    }
    // The durable thread finishes the append, wakes, drops the waker: the
    // last handle. Closing must complete (no panic; the active segment
    // trimmed below its preallocated size, as a clean close does).
    let seg = active_segment(tmp.path(), "t", 0);
    let trimmed = poll_until(Duration::from_secs(5), || {
        std::fs::metadata(&seg).map(|m| m.len() < segment_bytes).unwrap_or(false)
    });
    let panics = panics.lock().unwrap().clone();
    assert!(panics.is_empty(), "a library thread panicked while closing: {panics:?}");
    assert!(trimmed, "the broker was never closed cleanly: {} still at its preallocated size", seg.display());
    // And it can be opened again once the close (on the durable thread,
    // the lock released last) is through.
    let mut reopened = None;
    poll_until(Duration::from_secs(5), || {
        reopened = Broker::open(tmp.path()).ok();
        reopened.is_some()
    });
    let reopened = reopened.expect("the closing broker released its lock");
    assert!(reopened.recovery_report().is_empty(), "{:?}", reopened.recovery_report());
}
