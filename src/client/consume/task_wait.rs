//! [`TaskWait`]: a consumer borrowed by an async receive, and whether the
//! receive's last poll left the consumer's cell armed — the part every
//! async receive shares, so that each one disarms when it is dropped.

use std::task::{Context, Poll};

use crate::client::consume::consumer::Consumer;
use crate::error::Result;
use crate::storage::message::Message;

/// The state of one async receive on a consumer.
///
/// Cancel-safe by construction: a record is taken from the consumer (its
/// position moved past it) only by the poll that returns it, so dropping a
/// `TaskWait` between polls loses and repeats nothing; the drop only ends
/// the registration the last `Pending` poll left.
#[derive(Debug)]
pub(crate) struct TaskWait<'c> {
    consumer: &'c mut Consumer,
    /// Whether the last poll returned `Pending` with the cell armed.
    armed: bool,
}

impl<'c> TaskWait<'c> {
    /// An async receive on `consumer`, not yet polled.
    pub(crate) fn new(consumer: &'c mut Consumer) -> TaskWait<'c> {
        TaskWait { consumer, armed: false }
    }

    /// The next record, or `Pending` with the task's waker registered.
    pub(crate) fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message>> {
        self.consumer.poll_message(cx, &mut self.armed)
    }

    /// The consumer, for what a receive does once it has its first record.
    pub(crate) fn consumer(&mut self) -> &mut Consumer {
        self.consumer
    }
}

impl Drop for TaskWait<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.consumer.disarm_task();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    use crate::{Broker, Record, StartFrom, Topic, TopicConfig};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn registered(topic: &Topic) -> Vec<usize> {
        (0..topic.partitions()).map(|p| topic.partition_log(p).unwrap().notifier.registered()).collect()
    }

    fn broker(label: &str) -> (std::path::PathBuf, Broker) {
        let dir = std::env::temp_dir().join(format!("millpond-unit-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).unwrap();
        (dir, broker)
    }

    #[test]
    fn a_future_polled_many_times_stays_registered_once_and_wakes_its_latest_waker() {
        let (dir, broker) = broker("task-rearm");
        let topic = broker.create_topic("t", TopicConfig::default().partitions(3)).unwrap();
        let mut c = topic.consumer(StartFrom::Earliest).unwrap();
        let wakers: Vec<Arc<Counting>> = (0..100).map(|_| Arc::new(Counting::default())).collect();
        let mut f = c.recv_async();
        for w in &wakers {
            let waker = Waker::from(Arc::clone(w));
            assert!(Pin::new(&mut f).poll(&mut Context::from_waker(&waker)).is_pending());
        }
        assert_eq!(registered(&topic), [1, 1, 1], "re-polling replaced the registration");
        topic.producer().send(Record::new("x").partition(2)).unwrap();
        let woken: Vec<usize> = wakers.iter().map(|w| w.0.load(Ordering::SeqCst)).collect();
        assert_eq!(woken[99], 1, "the latest waker is woken");
        assert!(woken[..99].iter().all(|&n| n == 0), "no stale waker is woken");
        drop(f);
        assert_eq!(registered(&topic), [0, 0, 0], "a dropped future unregisters");
        assert_eq!(c.try_recv().unwrap().unwrap().value(), b"x", "and took nothing");
        drop((c, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_resolved_future_leaves_no_registration_and_no_waker() {
        let (dir, broker) = broker("task-resolved");
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        let mut c = topic.consumer(StartFrom::Earliest).unwrap();
        let counting = Arc::new(Counting::default());
        let waker = Waker::from(Arc::clone(&counting));
        let mut cx = Context::from_waker(&waker);
        let mut f = c.recv_async();
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        topic.producer().send(Record::new("a")).unwrap();
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        drop(f);
        assert_eq!(registered(&topic), [0]);
        topic.producer().send(Record::new("b")).unwrap();
        assert_eq!(counting.0.load(Ordering::SeqCst), 1, "a finished receive is not woken again");
        let mut s = c.stream();
        assert!(Pin::new(&mut s).poll_next_ready(&mut cx));
        drop(s);
        assert_eq!(registered(&topic), [0]);
        drop((c, topic, broker));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `Stream::poll_next` ready?
    trait PollNextReady {
        fn poll_next_ready(self, cx: &mut Context<'_>) -> bool;
    }

    impl<S: futures_core::Stream> PollNextReady for Pin<&mut S> {
        fn poll_next_ready(self, cx: &mut Context<'_>) -> bool {
            self.poll_next(cx).is_ready()
        }
    }
}
