//! Async receive (`recv_async`, `poll_async`, `stream`) on any executor:
//! tokio's multi-thread and current-thread runtimes and
//! `futures::executor`; tasks and threads waiting on the same partitions
//! without a lost wake-up; cancellation at every await point; a group
//! member across a rebalance; the stream's end when the broker closes; the
//! typed forms.
//!
//! A lost wake-up would hang a test, so every wait has a deadline
//! ([`HANG`]): a hang fails, it never blocks the suite.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use futures::StreamExt;
use millpond::{AutoCommit, Broker, Consumer, Error, Message, RebalanceKind, Record, StartFrom, Topic, TopicConfig};
use support::dir::TempDir;
use support::rng::Seed;
use support::wait::HANG;

/// A broker in a fresh directory with one topic of `partitions`.
fn topic(label: &str, partitions: u32) -> (TempDir, Broker, Topic) {
    let dir = TempDir::new(label);
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(partitions)).unwrap();
    (dir, broker, topic)
}

/// Sends `n` records, `value` = their number, from a thread of its own, in
/// bursts with short pauses between, so receivers wait many times.
fn send_from_thread(topic: &Topic, n: u64) -> thread::JoinHandle<()> {
    let producer = topic.producer();
    thread::spawn(move || {
        for i in 0..n {
            producer.send(Record::new(i.to_le_bytes().to_vec())).unwrap();
            if i % 64 == 63 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    })
}

fn number(m: &Message) -> u64 {
    u64::from_le_bytes(m.value().try_into().expect("an 8-byte value"))
}

/// Checks that `got` holds each of `0..n` once, and every partition's
/// records in offset order.
fn assert_all_once_in_order(got: &[Message], n: u64) {
    let mut numbers: Vec<u64> = got.iter().map(number).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "every record exactly once");
    let mut last: BTreeMap<u32, u64> = BTreeMap::new();
    for m in got {
        if let Some(&before) = last.get(&m.partition()) {
            assert!(m.offset() > before, "partition {} out of order: {} after {before}", m.partition(), m.offset());
        }
        last.insert(m.partition(), m.offset());
    }
}

/// Receives `n` records with `recv_async`, failing on a wait over [`HANG`].
async fn receive_n(consumer: &mut Consumer, n: u64) -> Vec<Message> {
    let mut got = Vec::with_capacity(n as usize);
    while (got.len() as u64) < n {
        let m = tokio::time::timeout(HANG, consumer.recv_async()).await.expect("hang: recv_async was not woken");
        got.push(m.unwrap());
    }
    got
}

const N: u64 = 2_000;

#[test]
fn recv_async_under_the_tokio_multi_thread_runtime() {
    let (_dir, _broker, topic) = topic("async-mt", 3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let mut consumer = topic.consumer(StartFrom::Earliest).unwrap();
    let sender = send_from_thread(&topic, N);
    let got = rt.block_on(async move { tokio::spawn(async move { receive_n(&mut consumer, N).await }).await.unwrap() });
    sender.join().unwrap();
    assert_all_once_in_order(&got, N);
}

#[test]
fn recv_async_under_the_tokio_current_thread_runtime_with_the_producer_as_a_task() {
    let (_dir, _broker, topic) = topic("async-ct", 2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let mut consumer = topic.consumer(StartFrom::Earliest).unwrap();
    let producer = topic.producer();
    let got = rt.block_on(async move {
        // One thread for both: the consumer's wait must hand the thread to
        // the producer task, and the producer's append must wake it.
        let receiving = tokio::spawn(async move { receive_n(&mut consumer, N).await });
        for i in 0..N {
            producer.send(Record::new(i.to_le_bytes().to_vec())).unwrap();
            if i % 16 == 15 {
                tokio::task::yield_now().await;
            }
        }
        receiving.await.unwrap()
    });
    assert_all_once_in_order(&got, N);
}

#[test]
fn recv_async_poll_async_and_stream_under_futures_executor() {
    let (_dir, broker, topic) = topic("async-futures", 2);
    let mut consumer = topic.consumer(StartFrom::Earliest).unwrap();
    let sender = send_from_thread(&topic, N);
    let got = futures::executor::block_on(async {
        let mut got = Vec::new();
        while got.len() < 500 {
            got.push(consumer.recv_async().await.unwrap());
        }
        while got.len() < 1_500 {
            got.extend(consumer.poll_async(1_500 - got.len()).await.unwrap());
        }
        let rest = N as usize - got.len();
        got.extend(consumer.stream().take(rest).map(Result::unwrap).collect::<Vec<_>>().await);
        got
    });
    sender.join().unwrap();
    assert_all_once_in_order(&got, N);
    // Nothing more: closing ends the stream as it ends the blocking iterator.
    broker.close().unwrap();
    assert_eq!(futures::executor::block_on(consumer.stream().count()), 0);
}

/// K tasks and K threads, each with its own consumer of the same three
/// partitions, wait while one producer sends: every one gets every record.
#[test]
fn tasks_and_threads_waiting_on_the_same_partitions_lose_no_wake_up() {
    const K: usize = 4;
    let (_dir, _broker, topic) = topic("async-many", 3);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let tasks: Vec<_> = (0..K)
        .map(|_| {
            let mut c = topic.consumer(StartFrom::Earliest).unwrap();
            rt.spawn(async move { receive_n(&mut c, N).await })
        })
        .collect();
    let threads: Vec<_> = (0..K)
        .map(|_| {
            let mut c = topic.consumer(StartFrom::Earliest).unwrap();
            thread::spawn(move || {
                (0..N)
                    .map(|_| c.recv_timeout(HANG).unwrap().expect("hang: a blocked thread was not woken"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let sender = send_from_thread(&topic, N);
    sender.join().unwrap();
    for t in tasks {
        assert_all_once_in_order(&rt.block_on(t).unwrap(), N);
    }
    for t in threads {
        assert_all_once_in_order(&t.join().unwrap(), N);
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// A pending receive dropped at each point it can be dropped — never
/// polled, polled and waiting, woken by a record but not polled again,
/// beaten by a ready `select!` branch — takes nothing: the next receive
/// returns exactly the next record.
#[test]
fn a_dropped_receive_loses_and_repeats_nothing_at_every_await_point() {
    let (_dir, _broker, topic) = topic("async-cancel", 1);
    let producer = topic.producer();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let counting = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counting));
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    for i in 0..50u64 {
        // Never polled.
        drop(c.recv_async());
        drop(c.poll_async(10));
        drop(c.stream());
        // Polled, nothing there, dropped.
        assert!(poll_once(&mut c.recv_async(), &waker).is_pending());
        assert!(poll_once(&mut c.poll_async(10), &waker).is_pending());
        assert!(poll_once(&mut c.stream().next(), &waker).is_pending());
        // Timed out by the executor's timer.
        assert!(rt.block_on(async { tokio::time::timeout(Duration::from_millis(1), c.recv_async()).await }).is_err());
        // Polled, then the record arrives and wakes it; dropped unpolled.
        let before = counting.0.load(Ordering::SeqCst);
        let mut pending = c.recv_async();
        assert!(poll_once(&mut pending, &waker).is_pending());
        producer.send(Record::new(i.to_le_bytes().to_vec())).unwrap();
        assert_eq!(counting.0.load(Ordering::SeqCst), before + 1, "the append woke the pending receive");
        drop(pending);
        assert_eq!(c.position(0).unwrap(), i, "a dropped receive moved the position");
        // Ready but beaten by a ready branch of a biased select.
        rt.block_on(async {
            tokio::select! {
                biased;
                _ = std::future::ready(()) => {}
                _ = c.recv_async() => panic!("the ready branch comes first"),
            }
        });
        assert_eq!(c.position(0).unwrap(), i);
        // The next receive returns that very record.
        let m = rt.block_on(c.recv_async()).unwrap();
        assert_eq!((m.offset(), number(&m)), (i, i));
    }
}

/// Cancellation under load: every receive races a short random timeout
/// while a producer thread sends; what the receives that won return is
/// every record, once, in order.
#[test]
fn receives_cancelled_by_timeouts_under_load_lose_and_repeat_nothing() {
    let (_dir, _broker, topic) = topic("async-cancel-load", 1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let seed = Seed::from_env_or(13);
    let mut rng = seed.rng();
    // The sender pauses (1 ms, longer than any timeout below) each time the
    // receiver has caught up, so that receives do wait, and time out, even
    // on a machine busy enough to let a free-running sender finish first.
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sender = {
        let (producer, received) = (topic.producer(), std::sync::Arc::clone(&received));
        thread::spawn(move || {
            for i in 0..N {
                producer.send(Record::new(i.to_le_bytes().to_vec())).unwrap();
                if i % 64 == 63 {
                    let started = std::time::Instant::now();
                    while received.load(Ordering::SeqCst) <= i && started.elapsed() < HANG {
                        thread::sleep(Duration::from_micros(100));
                    }
                    thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let (got, cancelled) = rt.block_on(async move {
        let (mut got, mut cancelled) = (Vec::new(), 0u64);
        let started = std::time::Instant::now();
        while (got.len() as u64) < N {
            assert!(started.elapsed() < HANG * 3, "hang: received {} of {N}", got.len());
            let wait = Duration::from_micros(rng.range(0, 200));
            match tokio::time::timeout(wait, c.recv_async()).await {
                Ok(m) => {
                    got.push(m.unwrap());
                    received.store(got.len() as u64, Ordering::SeqCst);
                }
                Err(_) => cancelled += 1,
            }
        }
        (got, cancelled)
    });
    sender.join().unwrap();
    assert_all_once_in_order(&got, N);
    assert!(cancelled > 0, "no receive was cancelled: the test proved nothing");
}

#[test]
fn a_closed_broker_fails_recv_async_as_it_fails_recv() {
    let (_dir, broker, topic) = topic("async-closed", 2);
    topic.producer().send(Record::new("last")).unwrap();
    let mut waiting = topic.consumer(StartFrom::Latest).unwrap();
    let mut blocking = topic.consumer(StartFrom::Earliest).unwrap();
    let mut draining = topic.consumer(StartFrom::Earliest).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let pending = rt.spawn(async move { tokio::time::timeout(HANG, waiting.recv_async()).await });
    thread::sleep(Duration::from_millis(50)); // let it wait
    broker.close().unwrap();
    let woken = rt.block_on(pending).unwrap().expect("hang: close did not wake the waiting task");
    assert!(matches!(woken, Err(Error::Closed)), "{woken:?}");
    // Stored records are still read after the close, then the same error
    // as the blocking form.
    assert_eq!(blocking.recv().unwrap().value(), b"last");
    let blocking_error = blocking.recv().unwrap_err();
    assert_eq!(rt.block_on(draining.recv_async()).unwrap().value(), b"last");
    let async_error = rt.block_on(draining.recv_async()).unwrap_err();
    assert_eq!(async_error.to_string(), blocking_error.to_string());
    assert!(rt.block_on(draining.poll_async(10)).is_err());
}

#[test]
fn a_deleted_topic_fails_recv_async_as_it_fails_recv() {
    let (_dir, broker, topic) = topic("async-deleted", 1);
    let mut waiting = topic.consumer(StartFrom::Earliest).unwrap();
    let mut blocking = topic.consumer(StartFrom::Earliest).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let deleter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        broker.delete_topic("t").unwrap();
        broker
    });
    let woken = rt
        .block_on(async { tokio::time::timeout(HANG, waiting.recv_async()).await })
        .expect("hang: deletion did not wake");
    let _broker = deleter.join().unwrap();
    assert!(matches!(woken, Err(Error::TopicDeleted { .. })), "{woken:?}");
    assert_eq!(woken.unwrap_err().to_string(), blocking.recv().unwrap_err().to_string());
}

/// The stream yields what the blocking iterator yields, in the same order,
/// and ends where it ends: when the broker closes.
#[test]
fn the_stream_yields_every_record_in_order_and_ends_when_the_broker_closes() {
    let (_dir, broker, topic) = topic("async-stream", 3);
    let mut streamed = topic.consumer(StartFrom::Earliest).unwrap();
    let mut iterated = topic.consumer(StartFrom::Earliest).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let streaming = rt.spawn(async move {
        let all: Vec<Message> = streamed.stream().map(Result::unwrap).collect().await;
        all
    });
    let iterating = thread::spawn(move || iterated.iter().map(Result::unwrap).collect::<Vec<_>>());
    send_from_thread(&topic, N).join().unwrap();
    thread::sleep(Duration::from_millis(50));
    broker.close().unwrap();
    let streamed =
        rt.block_on(async { tokio::time::timeout(HANG, streaming).await }).expect("hang: stream did not end");
    let streamed = streamed.unwrap();
    let iterated = iterating.join().unwrap();
    assert_all_once_in_order(&streamed, N);
    let key = |m: &Message| (m.partition(), m.offset());
    assert_eq!(streamed.iter().map(key).collect::<Vec<_>>(), iterated.iter().map(key).collect::<Vec<_>>());
}

/// A member waiting in `recv_async` owns both partitions; a second member
/// joins and waits for its share, which the first gives up only when its
/// task wakes for the group change. Then both read, and together they get
/// every record once.
#[test]
fn a_group_member_waiting_async_wakes_for_a_rebalance_when_a_second_member_joins() {
    let (_dir, _broker, topic) = topic("async-group", 2);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut first = group.join().unwrap();
    let (revoked_tx, revoked_rx) = std::sync::mpsc::channel();
    first.on_rebalance(move |e| {
        if e.kind() == RebalanceKind::Revoked {
            let _ = revoked_tx.send(e.partitions().to_vec());
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    // Records received by both members; each stops when all are in. The
    // members are handed back alive, so neither leaves (and hands its
    // partition back) before the assignments are checked.
    let total = Arc::new(AtomicUsize::new(0));
    let first_total = Arc::clone(&total);
    let first_task = rt.spawn(async move {
        // One receive, pending across the join: only a wake-up for the
        // group change makes it give up partition 1 before it times out
        // (twice `HANG`, while the test waits `HANG` for the revocation).
        let m = tokio::time::timeout(HANG * 2, first.recv_async()).await.expect("hang: no record");
        let mut got = vec![m.unwrap()];
        first_total.fetch_add(1, Ordering::SeqCst);
        while first_total.load(Ordering::SeqCst) < N as usize {
            if let Ok(m) = tokio::time::timeout(Duration::from_millis(20), first.recv_async()).await {
                got.push(m.unwrap());
                first_total.fetch_add(1, Ordering::SeqCst);
            }
        }
        (got, first)
    });
    thread::sleep(Duration::from_millis(50)); // the first member waits, owning both
    assert_eq!(total.load(Ordering::SeqCst), 0, "nothing was sent yet");
    let group2 = group.clone();
    let second_total = Arc::clone(&total);
    let second = thread::spawn(move || {
        let mut second = group2.join().unwrap();
        let mut got = Vec::new();
        while second_total.load(Ordering::SeqCst) < N as usize {
            if let Some(m) = second.recv_timeout(Duration::from_millis(20)).unwrap() {
                got.push(m);
                second_total.fetch_add(1, Ordering::SeqCst);
            }
        }
        (got, second)
    });
    let revoked = revoked_rx.recv_timeout(HANG).expect("hang: the waiting task was not woken by the rebalance");
    assert_eq!(revoked, [1], "the first member gave up partition 1 to the second");
    send_from_thread(&topic, N).join().unwrap();
    let (first_got, first) = rt
        .block_on(async { tokio::time::timeout(HANG, first_task).await })
        .expect("hang: the first member missed records")
        .unwrap();
    let (second_got, second) = second.join().unwrap();
    assert_eq!((first.assignment(), second.assignment()), (vec![0], vec![1]));
    assert!(first_got.iter().all(|m| m.partition() == 0) && second_got.iter().all(|m| m.partition() == 1));
    let mut all = first_got;
    all.extend(second_got);
    assert_all_once_in_order(&all, N);
}

/// A member that owns no partition waits only on its group's notifier;
/// closing the broker wakes its task with `Closed`, as it wakes a blocked
/// member's thread.
#[test]
fn an_idle_group_member_waiting_async_wakes_when_the_broker_closes() {
    let (_dir, broker, topic) = topic("async-idle-member", 1);
    let group = topic.group("g").unwrap();
    let mut busy = group.join().unwrap();
    busy.try_recv().unwrap(); // takes the only partition
    let mut idle = group.join().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let waiting = rt.spawn(async move { tokio::time::timeout(HANG, idle.recv_async()).await });
    thread::sleep(Duration::from_millis(50));
    assert!(!waiting.is_finished(), "the idle member has nothing to read");
    broker.close().unwrap();
    let woken = rt.block_on(waiting).unwrap().expect("hang: close did not wake the idle member's task");
    assert!(matches!(woken, Err(Error::Closed)), "{woken:?}");
    drop(busy);
}

#[test]
fn typed_async_receive_decodes_and_goes_on_past_a_bad_record() {
    let (_dir, broker, topic) = topic("async-typed", 1);
    let typed = topic.typed_producer::<u32>();
    typed.send(&1).unwrap();
    topic.producer().send(Record::new(vec![0xfc])).unwrap(); // a u32 cut short
    typed.send_batch(&[3, 4, 5, 6]).unwrap();
    let mut c = topic.typed_consumer::<u32>(StartFrom::Earliest).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        assert_eq!(c.recv_async().await.unwrap().value, 1);
        assert!(matches!(c.recv_async().await, Err(Error::Decode { offset: 1, .. })));
        let batch = c.poll_async(2).await.unwrap();
        assert_eq!(batch.into_iter().map(|m| m.unwrap().value).collect::<Vec<_>>(), [3, 4]);
    });
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        broker.close().unwrap();
    });
    let rest: Vec<u32> = rt.block_on(c.stream().map(|m| m.unwrap().value).collect());
    closer.join().unwrap();
    assert_eq!(rest, [5, 6]);
}

#[test]
fn a_typed_group_member_receives_async() {
    let (_dir, _broker, topic) = topic("async-typed-member", 2);
    let member = topic.group("g").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    let mut typed = millpond::TypedConsumer::<u64, _, _>::new(member, millpond::Bincode);
    let producer = topic.typed_producer::<u64>();
    let sender = thread::spawn(move || {
        for i in 0..100u64 {
            producer.send(&i).unwrap();
        }
    });
    let mut got: Vec<u64> = futures::executor::block_on(async {
        let mut got = vec![typed.recv_async().await.unwrap().value];
        got.extend(typed.stream().take(99).map(|m| m.unwrap().value).collect::<Vec<_>>().await);
        got
    });
    sender.join().unwrap();
    typed.source_mut().commit().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
}

/// A blocking receive called from inside an async task still works (it
/// holds the worker thread, as any blocking call does, but never panics).
#[test]
fn a_blocking_recv_inside_an_async_task_still_works() {
    let (_dir, _broker, topic) = topic("async-blocking-inside", 1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let sender = send_from_thread(&topic, 10);
    let got = rt.block_on(rt.spawn(async move { (0..10).map(|_| c.recv().unwrap()).collect::<Vec<_>>() })).unwrap();
    sender.join().unwrap();
    assert_all_once_in_order(&got, 10);
}
