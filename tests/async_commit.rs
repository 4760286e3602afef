//! Asynchronous commits: `GroupMember::commit_async`, `commit_offsets_async`,
//! the `Committer` handle, and the interval auto-commit written off the
//! receiving thread.
//!
//! To hold the broker's commit thread in the middle of a file write without
//! timing, a *blocker* group's `offsets.tmp` is replaced with a FIFO: the
//! commit thread's `open` of it blocks until the test opens the other end.
//! Commits of other groups queue behind it meanwhile, deterministically
//! unwritten, then the blocker's write fails (a FIFO cannot be fsynced) and
//! the queue is written.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use millpond::{AutoCommit, BackgroundTask, Broker, Error, GroupMember, Record, Topic, TopicConfig};
use support::dir::TempDir;
use support::groups::read_committed;
use support::layout::{offsets_path, prev_offsets_path};
use support::wait::{HANG, answer_within, spawn_answer, wait_until};

/// A group whose commits hold the commit thread until [`Blocker::release`].
struct Blocker {
    fifo: PathBuf,
    member: GroupMember,
}

impl Blocker {
    /// Joins group "blocker" on `topic`, commits once (creating its offsets
    /// directory), then puts a FIFO where its next commit writes.
    fn new(dir: &Path, topic: &Topic) -> Blocker {
        let mut member = topic.group("blocker").unwrap().auto_commit(AutoCommit::Off).join().unwrap();
        member.commit_offsets(&[(0, 0)]).unwrap();
        let fifo = offsets_path(dir, "blocker", topic.name()).with_file_name("offsets.tmp");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
        assert!(made.success(), "mkfifo {}", fifo.display());
        Blocker { fifo, member }
    }

    /// Sends the commit thread into the blocked write (it stays there until
    /// `release`). Its outcome is the failure of fsyncing a FIFO.
    fn hold(&self) -> millpond::CommitHandle {
        self.member.commit_offsets_async(&[(0, 1)])
    }

    /// Opens the FIFO's other end: the blocked write goes on (and fails).
    fn release(&self) {
        let fifo = self.fifo.clone();
        let opened = spawn_answer(move || File::open(&fifo).map(drop));
        answer_within(&opened, "opening the blocker's FIFO").unwrap();
        match std::fs::remove_file(&self.fifo) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("remove the FIFO: {e}"),
            _ => {} // removed, or gone with a deleted topic
        }
    }
}

fn setup(label: &str, partitions: u32, records: u64) -> (TempDir, Broker, Topic) {
    let dir = TempDir::new(label);
    let broker = Broker::open(dir.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().partitions(partitions)).unwrap();
    let producer = topic.producer();
    for p in 0..partitions {
        producer.send_batch((0..records).map(|o| Record::new(format!("{p}-{o}")).partition(p))).unwrap();
    }
    (dir, broker, topic)
}

#[test]
fn receive_calls_keep_delivering_while_an_async_commit_is_being_written() {
    let (dir, _broker, topic) = setup("delivering", 1, 20);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    let held = blocker.hold();
    for _ in 0..5 {
        m.try_recv().unwrap().unwrap();
    }
    let commit = m.commit_async();
    assert!(!commit.is_finished(), "the commit was written on the calling thread");
    // The commit thread is stuck in a write: delivery goes on regardless.
    let mut more = 0;
    while m.try_recv().unwrap().is_some() {
        more += 1;
    }
    assert_eq!(more, 15);
    assert!(!commit.is_finished());
    assert_eq!(read_committed(dir.path(), "g", "t").get(&0), None, "nothing written yet");
    blocker.release();
    assert!(matches!(held.wait(), Err(Error::Io { .. })), "fsync of a FIFO fails");
    commit.wait().unwrap();
    assert_eq!(read_committed(dir.path(), "g", "t")[&0], 5, "the positions taken at the call");
}

#[test]
fn a_failed_async_write_is_reported_as_a_background_error_and_cleared_by_the_next() {
    let (dir, broker, topic) = setup("bgfail", 1, 3);
    let blocker = Blocker::new(dir.path(), &topic);
    let held = blocker.hold();
    blocker.release();
    assert!(held.wait().is_err());
    let errors = broker.background_errors();
    assert!(
        errors.iter().any(|e| e.task == BackgroundTask::Commit && e.group.as_deref() == Some("blocker")),
        "{errors:?}"
    );
    blocker.member.commit_offsets_async(&[(0, 2)]).wait().unwrap();
    assert!(broker.background_errors().iter().all(|e| e.task != BackgroundTask::Commit));
    assert_eq!(read_committed(dir.path(), "blocker", "t")[&0], 2);
}

#[test]
fn queued_async_commits_coalesce_into_one_write_and_the_last_one_wins() {
    let (dir, _broker, topic) = setup("coalesce", 2, 50);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    m.commit_offsets(&[(0, 1), (1, 1)]).unwrap();
    let held = blocker.hold();
    let mut handles = Vec::new();
    for o in 2..=40 {
        handles.push(m.commit_offsets_async(&[(0, o)]));
        if o % 10 == 0 {
            handles.push(m.commit_offsets_async(&[(1, o)]));
        }
    }
    assert!(handles.iter().all(|h| !h.is_finished()));
    blocker.release();
    assert!(held.wait().is_err());
    for h in handles {
        h.wait().unwrap();
    }
    assert_eq!(group.committed().unwrap(), [(0, 40), (1, 40)].into_iter().collect());
    assert_eq!(read_committed(dir.path(), "g", "t"), [(0, 40), (1, 40)].into_iter().collect());
    // One write for the 43 requests: the file it replaced is the one
    // written before them.
    let prev = std::fs::read(prev_offsets_path(dir.path(), "g", "t")).unwrap();
    assert_eq!(support::groups::decode_offsets(&prev), Some([(0, 1), (1, 1)].into_iter().collect()));
    m.try_recv().unwrap();
}

#[test]
fn a_blocking_commit_is_written_with_and_after_the_async_ones_requested_before_it() {
    let (dir, _broker, topic) = setup("ordering", 1, 10);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    let held = blocker.hold();
    let earlier = m.commit_offsets_async(&[(0, 8)]);
    // Not behind the stuck thread: the blocking commit writes the group's
    // queue itself, its own request last.
    m.commit_offsets(&[(0, 3)]).unwrap();
    assert!(earlier.is_finished());
    earlier.wait().unwrap();
    assert_eq!(read_committed(dir.path(), "g", "t")[&0], 3, "the later request won");
    blocker.release();
    assert!(held.wait().is_err());
    assert_eq!(group.committed().unwrap()[&0], 3, "the earlier request did not come back later");
}

#[test]
fn async_commits_complete_under_tokio_and_under_futures_executor() {
    let (_dir, _broker, topic) = setup("executors", 2, 10);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    for _ in 0..7 {
        m.try_recv().unwrap().unwrap();
    }
    futures::executor::block_on(m.commit_async()).unwrap();
    let after_futures: u64 = group.committed().unwrap().values().sum();
    assert_eq!(after_futures, 7);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let committer = m.committer();
    let committed = rt.block_on(async move {
        let task = tokio::spawn(async move { committer.commit_offsets_async(&[(0, 10), (1, 10)]).await });
        tokio::time::timeout(HANG, task).await.expect("hang").expect("task")
    });
    committed.unwrap();
    assert_eq!(group.committed().unwrap(), [(0, 10), (1, 10)].into_iter().collect());

    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let handle = m.commit_offsets_async(&[(0, 9)]);
    current.block_on(async { tokio::time::timeout(HANG, handle).await.expect("hang") }).unwrap();
    assert_eq!(group.committed().unwrap()[&0], 9);
}

#[test]
fn other_threads_acknowledge_through_the_committer_while_the_member_receives() {
    let (_dir, _broker, topic) = setup("committer", 4, 100);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut m = group.join().unwrap();
    let mut workers = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = crossbeam_channel::unbounded::<millpond::Message>();
        let committer = m.committer();
        senders.push(tx);
        workers.push(std::thread::spawn(move || {
            let mut last = None;
            for msg in rx {
                // Blocking and asynchronous acknowledgements, mixed.
                if msg.offset() % 10 == 9 {
                    committer.commit_offsets(&[(msg.partition(), msg.offset() + 1)]).unwrap();
                } else {
                    last = Some(committer.commit_offsets_async(&[(msg.partition(), msg.offset() + 1)]));
                }
            }
            if let Some(h) = last {
                h.wait().unwrap();
            }
        }));
    }
    let mut received = 0;
    while let Some(msg) = m.recv_timeout(Duration::from_millis(50)).unwrap() {
        // One worker per partition, so each partition's acks stay in order.
        senders[msg.partition() as usize].send(msg).unwrap();
        received += 1;
    }
    assert_eq!(received, 400);
    drop(senders);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(group.committed().unwrap(), (0..4).map(|p| (p, 100)).collect());
    let late = m.committer();
    m.close().unwrap();
    assert!(matches!(late.commit_offsets(&[(0, 100)]), Err(Error::NotAMember { .. })));
    assert!(matches!(late.commit_offsets_async(&[(0, 100)]).wait(), Err(Error::NotAMember { .. })));
}

#[test]
fn an_async_commit_of_a_partition_revoked_before_the_write_fails_and_commits_nothing() {
    let (dir, _broker, topic) = setup("revoked", 2, 10);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off).commit_on_revoke(false);
    let mut a = group.join().unwrap();
    assert_eq!(a.assignment(), [0, 1]);
    a.commit_offsets(&[(0, 1), (1, 1)]).unwrap();
    let held = blocker.hold();
    let stale = a.commit_offsets_async(&[(0, 4), (1, 5)]);
    let mut b = group.join().unwrap();
    // `a` gives partition 1 up at its next receive call; `b` takes it.
    a.try_recv().unwrap();
    wait_until(HANG, "b taking partition 1", || {
        b.try_recv().unwrap();
        b.assignment() == [1]
    });
    blocker.release();
    assert!(held.wait().is_err());
    assert!(matches!(stale.wait(), Err(Error::NotAssigned { partition: 1, .. })));
    assert_eq!(read_committed(dir.path(), "g", "t"), [(0, 1), (1, 1)].into_iter().collect(), "nothing of it");
    // Refused at once when the partition is not the member's at the call.
    assert!(matches!(a.commit_offsets_async(&[(1, 2)]).wait(), Err(Error::NotAssigned { partition: 1, .. })));
    assert!(matches!(a.commit_offsets_async(&[(0, 99)]).wait(), Err(Error::OffsetOutOfRange { .. })));
}

#[test]
fn the_revocation_commit_is_durable_before_the_next_owner_starts() {
    let (dir, _broker, topic) = setup("revokecommit", 2, 10);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let mut a = group.join().unwrap();
    for _ in 0..20 {
        a.try_recv().unwrap().unwrap();
    }
    // The commit thread is stuck; the revocation must not wait for it, nor
    // hand the partition over before its own commit is on disk.
    let held = blocker.hold();
    let mut b = group.join().unwrap();
    a.try_recv().unwrap();
    assert_eq!(read_committed(dir.path(), "g", "t")[&1], 10, "committed before release");
    wait_until(HANG, "b taking partition 1", || {
        b.try_recv().unwrap();
        b.assignment() == [1]
    });
    assert_eq!(b.position(1).unwrap(), 10, "the new owner starts from the revocation's commit");
    blocker.release();
    assert!(held.wait().is_err());
}

#[test]
fn interval_auto_commit_does_not_wait_for_the_file_write() {
    let (dir, _broker, topic) = setup("autoasync", 1, 10);
    let blocker = Blocker::new(dir.path(), &topic);
    let held = blocker.hold();
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Interval(Duration::ZERO));
    let mut m = group.join().unwrap(); // its first auto-commit is queued too
    // Every call requests a commit; none waits for the stuck thread.
    for o in 0..10 {
        assert_eq!(m.try_recv().unwrap().unwrap().offset(), o);
    }
    assert_eq!(read_committed(dir.path(), "g", "t").get(&0), None);
    blocker.release();
    assert!(held.wait().is_err());
    // The last request (at the start of the call that returned record 9)
    // covers records 0..=8 only.
    wait_until(HANG, "the auto-commit", || group.committed().unwrap().get(&0) == Some(&9));
    drop(m); // commits its positions on leaving
    assert_eq!(read_committed(dir.path(), "g", "t")[&0], 10);
}

#[test]
fn the_handles_are_send_and_the_committer_send_sync_clone() {
    fn send<T: Send + 'static>() {}
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    send::<millpond::CommitHandle>();
    send_sync_clone::<millpond::Committer>();
}

#[test]
fn a_member_leaving_writes_its_queued_async_commits_first() {
    let (dir, _broker, topic) = setup("leavepending", 1, 10);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let m = group.join().unwrap();
    let committer = m.committer();
    let held = blocker.hold();
    let mine = m.commit_offsets_async(&[(0, 4)]);
    let theirs = committer.commit_offsets_async(&[(0, 6)]);
    // Not behind the stuck commit thread: leaving writes the group's queue.
    m.close().unwrap();
    mine.wait().unwrap();
    theirs.wait().unwrap();
    assert_eq!(read_committed(dir.path(), "g", "t")[&0], 6);
    assert!(matches!(committer.commit_offsets_async(&[(0, 7)]).wait(), Err(Error::NotAMember { .. })));
    blocker.release();
    assert!(held.wait().is_err());
}

#[test]
fn broker_close_writes_the_commits_requested_before_it() {
    let (dir, broker, topic) = setup("closepending", 1, 10);
    let blocker = Blocker::new(dir.path(), &topic);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let m = group.join().unwrap();
    let committer = m.committer();
    let held = blocker.hold();
    let pending = m.commit_offsets_async(&[(0, 6)]);
    let closer = broker.clone();
    let closing = spawn_answer(move || closer.close());
    // Close waits for the write in progress (the stuck one) ...
    blocker.release();
    answer_within(&closing, "broker close").unwrap();
    assert!(held.wait().is_err());
    // ... and writes what was queued before returning.
    assert!(pending.is_finished(), "close returned with a commit still pending");
    pending.wait().unwrap();
    assert_eq!(read_committed(dir.path(), "g", "t")[&0], 6);
    // Requested after close: refused, nothing written.
    assert!(matches!(m.commit_offsets_async(&[(0, 7)]).wait(), Err(Error::Closed)));
    assert!(matches!(committer.commit_offsets_async(&[(0, 8)]).wait(), Err(Error::Closed)));
    assert!(matches!(committer.commit_offsets(&[(0, 8)]), Err(Error::Closed)));
    drop(m);
    assert_eq!(read_committed(dir.path(), "g", "t")[&0], 6);
}

#[test]
fn async_commits_pending_when_their_topic_is_deleted_are_written_before_or_refused() {
    let (dir, broker, topic) = setup("deletepending", 1, 100);
    let group = topic.group("g").unwrap().auto_commit(AutoCommit::Off);
    let m = group.join().unwrap();
    let committer = m.committer();
    let acks =
        std::thread::spawn(move || (1..=100).map(|o| committer.commit_offsets_async(&[(0, o)])).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(1));
    broker.delete_topic("t").unwrap();
    let mut refused = false;
    for h in acks.join().unwrap() {
        match h.wait() {
            Ok(()) => assert!(!refused, "a request written after an earlier one was refused for the deletion"),
            Err(Error::TopicDeleted { .. }) => refused = true,
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(m.commit_offsets_async(&[(0, 1)]).wait(), Err(Error::TopicDeleted { .. })));
    drop(m);
    assert!(!offsets_path(dir.path(), "g", "t").exists(), "offsets written back after the deletion");
}
