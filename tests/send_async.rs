//! `Producer::send_async` waits where `send` would block (a full backlog,
//! an `FsyncPolicy::Always` topic) without holding a thread, shares fsyncs
//! between tasks sending durably, and sends nothing when dropped while it
//! waits for room.

mod support;

use std::time::Duration;

use millpond::{AutoCommit, Backlog, Broker, Error, FsyncPolicy, Record, StartFrom, TopicConfig};
use support::dir::TempDir;
use support::frames::frames;
use support::layout::segment_files;

/// A bound for anything that must happen: a lost wake-up fails the test
/// instead of hanging it.
const EVENTUALLY: Duration = Duration::from_secs(30);

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_send_into_a_full_backlog_waits_without_holding_the_thread() {
    let tmp = TempDir::new("send-async-backlog");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(2))).unwrap();
    let mut member = topic.group("slow").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
    let producer = topic.producer();
    // One thread runs both the producer task and the consumer task: if the
    // waiting send held it, the commit that makes room could never run.
    current_thread().block_on(async {
        let sending = async {
            for i in 0..10u8 {
                producer.send_async(Record::new(vec![i])).await?;
            }
            Ok::<_, Error>(())
        };
        let consuming = async {
            let mut got = Vec::new();
            while got.len() < 10 {
                let m = member.recv_async().await?;
                got.push(m.value()[0]);
                member.commit()?; // makes room
                tokio::task::yield_now().await;
            }
            Ok::<_, Error>(got)
        };
        let (sent, got) = tokio::time::timeout(EVENTUALLY, async { tokio::join!(sending, consuming) })
            .await
            .expect("a waiting send or receive was never woken");
        sent.unwrap();
        assert_eq!(got.unwrap(), (0..10).collect::<Vec<u8>>());
    });
}

#[test]
fn a_send_dropped_while_waiting_for_room_sends_nothing() {
    let tmp = TempDir::new("send-async-drop");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1))).unwrap();
    let _slow = topic.group("slow").unwrap().join().unwrap();
    let producer = topic.producer();
    producer.send(Record::new("fills it")).unwrap();
    current_thread().block_on(async {
        let waited = tokio::time::timeout(Duration::from_millis(30), producer.send_async(Record::new("dropped"))).await;
        assert!(waited.is_err(), "the backlog is full: the send waits");
    });
    assert_eq!(topic.high_watermark(0).unwrap(), 1, "the dropped send wrote nothing");
}

#[test]
fn durable_sends_from_many_tasks_share_fsyncs_and_survive_a_restart() {
    let tmp = TempDir::new("send-async-durable");
    let tasks = 8u64;
    let per_task = 50u64;
    {
        let broker = Broker::open(tmp.path()).unwrap();
        let topic = broker.create_topic("ledger", TopicConfig::default().fsync(FsyncPolicy::Always)).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let mut handles = Vec::new();
            for t in 0..tasks {
                let producer = topic.producer();
                handles.push(tokio::spawn(async move {
                    let mut offsets = Vec::new();
                    for i in 0..per_task {
                        let id = producer.send_async(Record::new(format!("{t}:{i}"))).await?;
                        offsets.push(id.offset);
                    }
                    Ok::<_, Error>(offsets)
                }));
            }
            let mut all = Vec::new();
            for h in handles {
                let offsets = tokio::time::timeout(EVENTUALLY, h).await.unwrap().unwrap().unwrap();
                assert!(offsets.windows(2).all(|w| w[0] < w[1]), "a task's sends keep their order");
                all.extend(offsets);
            }
            all.sort_unstable();
            assert_eq!(all, (0..tasks * per_task).collect::<Vec<_>>(), "every send got its own offset");
        });
    }
    // Tasks waiting at the same time went in shared frames: fewer frames
    // (each one fsync) than records.
    let records = tasks * per_task;
    let frame_count: usize =
        segment_files(tmp.path(), "ledger", 0).iter().map(|f| frames(&std::fs::read(f).unwrap()).len()).sum();
    // (About 4 to 6 records a frame here; one is enough to show sharing.)
    assert!((frame_count as u64) < records, "{frame_count} frames for {records} records: no fsync was shared");
    let broker = Broker::open(tmp.path()).unwrap();
    let values: Vec<String> = broker
        .topic("ledger")
        .unwrap()
        .consumer(StartFrom::Earliest)
        .unwrap()
        .try_iter()
        .map(|m| String::from_utf8(m.unwrap().value().to_vec()).unwrap())
        .collect();
    assert_eq!(values.len() as u64, records);
    for t in 0..tasks {
        let mine: Vec<&String> = values.iter().filter(|v| v.starts_with(&format!("{t}:"))).collect();
        let expected: Vec<String> = (0..per_task).map(|i| format!("{t}:{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "task {t}'s records, in order");
    }
}

#[test]
fn a_plain_send_async_is_ready_at_its_first_poll() {
    let tmp = TempDir::new("send-async-plain");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    let producer = topic.producer();
    let mut fut = std::pin::pin!(producer.send_async(Record::new("now")));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::future::Future::poll(fut.as_mut(), &mut cx) {
        std::task::Poll::Ready(Ok(id)) => assert_eq!(id.offset, 0),
        other => panic!("expected Ready(Ok), got {other:?}"),
    }
}

#[test]
fn sends_waiting_when_the_broker_closes_fail_with_closed() {
    let tmp = TempDir::new("send-async-close");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1))).unwrap();
    let durable = broker.create_topic("d", TopicConfig::default().fsync(FsyncPolicy::Always)).unwrap();
    let _slow = topic.group("slow").unwrap().join().unwrap();
    let producer = topic.producer();
    producer.send(Record::new("fills it")).unwrap();
    let closer = broker.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let waiting = producer.send_async(Record::new("waits"));
        let close = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(30));
            closer.close()
        });
        let got = tokio::time::timeout(EVENTUALLY, waiting).await.expect("the close woke the waiting send");
        assert!(matches!(got, Err(Error::Closed)), "{got:?}");
        close.await.unwrap().unwrap();
        let after = durable.producer().send_async(Record::new("late")).await;
        assert!(matches!(after, Err(Error::Closed)), "{after:?}");
    });
}
