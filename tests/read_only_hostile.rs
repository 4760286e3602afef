//! `Broker::open_read_only` under attack: the writer rolling while the
//! follower lists a huge directory, compaction emptying segments, a roll
//! whose index could not be written, topics deleted and re-created,
//! retention, FIFOs and symlinks in the follower's way, address-space
//! limits, backlogs and torn tails that must not cost memory or CPU, and
//! the operations that must see the files as they are now (seek, lag,
//! verify). Each test was first written against a defect an adversarial
//! review found, and failed then.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use millpond::{Broker, CleanupPolicy, Error, Record, StartFrom, TopicConfig};
use support::dir::TempDir;
use support::layout::{partition_dir, segment_bases};

const WAIT: Duration = Duration::from_secs(5);

fn small_segments() -> TopicConfig {
    TopicConfig::default().segment_bytes(4096).max_record_bytes(512)
}

/// A compacted topic: a sealed segment that compaction emptied entirely
/// (every key in it superseded later) is a header-only file; a follower
/// whose tail was the segment before it moves past it.
#[test]
fn a_segment_emptied_by_compaction_does_not_stall_the_follower() {
    let tmp = TempDir::new("rorev-compact-empty");
    let w = Broker::open(tmp.path()).unwrap();
    let cfg = small_segments().cleanup(CleanupPolicy::Compact);
    let t = w.create_topic("t", cfg).unwrap();
    let p = t.producer();
    p.send(Record::new("start").key("s")).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv_timeout(WAIT).unwrap().unwrap().value(), b"start");
    assert!(c.try_recv().unwrap().is_none());
    // Two rounds of the same 100 keys (~3 segments each), then a last record.
    for round in 0..2 {
        for k in 0..100 {
            p.send(Record::new(format!("r{round}-{k:0>90}")).key(format!("k{k}"))).unwrap();
        }
    }
    p.send(Record::new("last").key("z")).unwrap();
    t.compact().unwrap();
    let bases = segment_bases(tmp.path(), "t", 0);
    let emptied = bases
        .iter()
        .filter(|&&b| std::fs::metadata(support::layout::segment_path(tmp.path(), "t", 0, b)).unwrap().len() == 64)
        .count();
    assert!(emptied > 0, "compaction emptied at least one segment: {bases:?}");
    // The follower must reach the latest values and "last".
    let deadline = Instant::now() + WAIT;
    let mut saw_last = false;
    while Instant::now() < deadline {
        match c.recv_timeout(Duration::from_millis(200)).unwrap() {
            Some(m) if m.value() == b"last" => {
                saw_last = true;
                break;
            }
            Some(_) => {}
            None => {}
        }
    }
    assert!(
        saw_last,
        "the follower never got past the emptied segment (position {}, writer's end {})",
        c.position(0).unwrap(),
        t.high_watermark(0).unwrap()
    );
}

/// The writer deletes a topic: a follower's waiting consumer gets
/// `TopicDeleted`, as one in the writer's process does.
#[test]
fn a_deleted_topic_ends_the_followers_consumer() {
    let tmp = TempDir::new("rorev-deleted");
    let w = Broker::open(tmp.path()).unwrap();
    w.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("a")).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"a");
    w.delete_topic("t").unwrap();
    match c.recv_timeout(Duration::from_secs(3)) {
        Err(Error::TopicDeleted { .. }) => {}
        other => panic!("expected TopicDeleted, got {other:?}"),
    }
}

/// The writer deletes topic `t` and creates a new `t`: the follower serves
/// the new one (topics are told apart by their id, not their name).
#[test]
fn a_topic_deleted_and_recreated_under_the_same_name_is_the_new_one() {
    let tmp = TempDir::new("rorev-recreated");
    let w = Broker::open(tmp.path()).unwrap();
    w.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("old")).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    assert_eq!(r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap().recv().unwrap().value(), b"old");
    w.delete_topic("t").unwrap();
    w.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("new")).unwrap();
    assert_eq!(r.topics(), ["t"]);
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    let got = c.recv_timeout(WAIT).unwrap().map(|m| String::from_utf8_lossy(m.value()).into_owned());
    assert_eq!(got.as_deref(), Some("new"), "the follower served the deleted topic's record");
}

/// `seek_to_end` goes to the end as the files are now.
#[test]
fn seek_to_end_on_a_follower_goes_to_the_end() {
    let tmp = TempDir::new("rorev-seek-end");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Latest).unwrap();
    t.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")))).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.seek_to_end().unwrap();
    assert_eq!(c.position(0).unwrap(), 5, "seek_to_end moved to the end");
    assert!(c.try_recv().unwrap().is_none(), "nothing after the end");
}

/// `Consumer::lag` counts what the writer published since.
#[test]
fn consumer_lag_on_a_follower_counts_published_records() {
    let tmp = TempDir::new("rorev-lag");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let c = r.topic("t").unwrap().consumer(StartFrom::Latest).unwrap();
    t.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")))).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(c.lag(), 5, "Consumer::lag: 5 records are published and unread");
}

/// `seek` to an offset the writer published since the consumer was made.
#[test]
fn seek_to_a_published_offset_on_a_follower_works() {
    let tmp = TempDir::new("rorev-seek");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Latest).unwrap();
    t.producer().send_batch((0..5).map(|i| Record::new(format!("{i}")))).unwrap();
    c.seek(0, 3).expect("offset 3 is published");
    assert_eq!(c.recv_timeout(WAIT).unwrap().unwrap().offset(), 3);
}

/// `seek_to_beginning` after the writer's retention deleted segments lands
/// on the log start, never on a deleted record.
#[test]
fn seek_to_beginning_on_a_follower_after_retention() {
    let tmp = TempDir::new("rorev-seek-begin");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments().retention_bytes(8192)).unwrap();
    t.producer().send_batch((0..10u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Latest).unwrap();
    t.producer().send_batch((0..400u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
    t.enforce_retention().unwrap();
    let start = t.log_start(0).unwrap();
    assert!(start > 10);
    c.seek_to_beginning().expect("seek_to_beginning");
    let got = c.recv_timeout(WAIT).unwrap().unwrap().offset();
    assert_eq!(
        (c.position(0).unwrap(), got),
        (start + 1, start),
        "seek_to_beginning lands on the log start {start}, not on records retention deleted"
    );
}

/// A roll whose index could not be written (a directory in the way of
/// `<base>.index.tmp`, as a full disk would): the old segment is not
/// trimmed, and the follower still moves on to the next one.
#[test]
fn a_roll_whose_index_write_failed_is_still_followed() {
    let tmp = TempDir::new("rorev-no-trim");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments()).unwrap();
    let p = t.producer();
    p.send(Record::new("first")).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"first");
    // As ENOSPC would: the index of segment 0 cannot be written.
    std::fs::create_dir(partition_dir(tmp.path(), "t", 0).join(format!("{:020}.index.tmp", 0))).unwrap();
    for i in 1..100u32 {
        p.send(Record::new(vec![i as u8; 200])).unwrap();
    }
    assert!(segment_bases(tmp.path(), "t", 0).len() > 2, "the writer rolled");
    let hw = t.high_watermark(0).unwrap();
    let mut got = 1;
    while got < hw {
        match c.recv_timeout(Duration::from_secs(3)).unwrap() {
            Some(m) => {
                assert_eq!(m.offset(), got);
                got += 1;
            }
            None => panic!("the follower stalled at offset {got} of {hw}: it never left the untrimmed segment"),
        }
    }
}

/// Mappings in this process of files under `dir` that were deleted.
fn deleted_mappings(dir: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let dir = dir.to_string_lossy().into_owned();
    maps.lines().filter(|l| l.contains(&dir) && l.ends_with("(deleted)")).count()
}

/// A follower that keeps up drops the segments retention deleted: it keeps
/// no deleted file mapped (nor its disk space allocated).
#[test]
fn a_consuming_follower_releases_segments_retention_deleted() {
    let tmp = TempDir::new("rorev-leak");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments().retention_bytes(8192)).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    let p = t.producer();
    for i in 0..2000u32 {
        p.send(Record::new(vec![i as u8; 200])).unwrap();
        let m = c.recv_timeout(WAIT).unwrap().expect("record");
        assert_eq!(m.offset(), u64::from(i));
        if i % 100 == 0 {
            t.enforce_retention().unwrap();
        }
    }
    drop(p);
    t.enforce_retention().unwrap();
    let on_disk = segment_bases(tmp.path(), "t", 0).len();
    let held = deleted_mappings(tmp.path());
    let vm = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmSize"))
        .unwrap_or_default()
        .to_string();
    assert!(held <= 2, "the follower still maps {held} deleted segment files ({on_disk} segments are on disk); {vm}");
}

/// `Broker::verify` on a follower after the writer's retention deleted
/// segments it had listed: a report, not an error.
#[test]
fn broker_verify_on_a_follower_after_retention_reports() {
    let tmp = TempDir::new("rorev-verify");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", small_segments().retention_bytes(8192)).unwrap();
    t.producer().send_batch((0..100u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    t.producer().send_batch((0..100u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
    t.enforce_retention().unwrap();
    let report = r.verify();
    assert!(report.is_ok(), "Broker::verify on the follower: {report:?}");
}

/// A topic the follower could not open (damaged) and that the writer then
/// deleted is forgotten: `UnknownTopic`, not `TopicDamaged`.
#[test]
fn a_damaged_topic_the_writer_deleted_is_forgotten() {
    let tmp = TempDir::new("rorev-damaged-gone");
    let w = Broker::open(tmp.path()).unwrap();
    w.create_topic("t", TopicConfig::default()).unwrap();
    // As if caught mid-creation: partition 0's directory not there yet.
    let p0 = partition_dir(tmp.path(), "t", 0);
    let aside = tmp.path().join("aside");
    std::fs::rename(&p0, &aside).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    assert_eq!(r.damaged_topics().len(), 1);
    std::fs::rename(&aside, &p0).unwrap();
    w.delete_topic("t").unwrap();
    assert!(r.topics().is_empty());
    assert!(
        matches!(r.topic("t"), Err(Error::UnknownTopic { .. })),
        "topic() of a deleted topic: {:?}; damaged_topics: {:?}",
        r.topic("t").map(|t| t.name().to_string()),
        r.damaged_topics().iter().map(|d| d.name.clone()).collect::<Vec<_>>()
    );
}

/// A FIFO planted at a segment's place does not block the read-only open.
#[test]
fn a_fifo_in_a_segments_place_does_not_hang_a_read_only_open() {
    let tmp = TempDir::new("rorev-fifo");
    let w = Broker::open(tmp.path()).unwrap();
    w.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("a")).unwrap();
    drop(w);
    let fifo = partition_dir(tmp.path(), "t", 0).join(format!("{:020}.log", 1));
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let dir = tmp.path().to_path_buf();
    let answer = support::wait::spawn_answer(move || Broker::open_read_only(&dir).map(|r| r.damaged_topics().len()));
    let got = answer.recv_timeout(Duration::from_secs(5));
    // Unblock the open (if it hangs) so the thread ends: open the FIFO's write end.
    let _ = std::fs::OpenOptions::new().write(true).custom_flags_nonblock(&fifo);
    assert!(got.is_ok(), "Broker::open_read_only hung on a FIFO at a segment's place");
}

trait NonBlockOpen {
    fn custom_flags_nonblock(&mut self, path: &Path) -> std::io::Result<std::fs::File>;
}

impl NonBlockOpen for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self, path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK).open(path)
    }
}

fn vm_size_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmSize")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Child: under an address-space limit 40 GiB above what the process
/// uses, a writer and a follower move 1500 records through ~80 small
/// segments (retention keeps 3): the follower maps a followed segment over
/// its size, not 2 GiB, and lets go of the ones it left.
#[test]
fn child_follows_under_an_address_space_limit() {
    if support::child::role().as_deref() != Some("as-limit") {
        return;
    }
    let limit = vm_size_bytes() + (40 << 30);
    let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
    // SAFETY: plain syscall with a valid struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) }, 0);
    let dir = support::child::dir();
    let w = Broker::open(&dir).unwrap();
    let t = w.create_topic("t", small_segments().retention_bytes(8192)).unwrap();
    let r = Broker::open_read_only(&dir).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    let p = t.producer();
    for i in 0..1500u32 {
        p.send(Record::new(vec![i as u8; 200])).unwrap();
        match c.recv_timeout(WAIT) {
            Ok(Some(_)) => {}
            other => {
                println!("RESULT failed at record {i}: {other:?}");
                return;
            }
        }
        if i % 100 == 0 {
            t.enforce_retention().unwrap();
        }
    }
    println!("RESULT ok");
}

#[test]
fn a_follower_works_under_an_address_space_limit() {
    if support::child::role().is_some() {
        return;
    }
    let tmp = TempDir::new("rorev-as-limit");
    let out =
        support::child::command("child_follows_under_an_address_space_limit", "as-limit", tmp.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().find_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()));
    assert_eq!(result.as_deref(), Some("ok"), "child stderr: {}", String::from_utf8_lossy(&out.stderr));
}

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Catching up a backlog of 4 partitions holds at most one bounded read
/// buffer per partition, not one the size of the backlog.
#[test]
fn catching_up_a_backlog_holds_at_most_max_read_per_partition() {
    let tmp = TempDir::new("rorev-buf");
    {
        let w = Broker::open(tmp.path()).unwrap();
        let t = w.create_topic("t", TopicConfig::default().partitions(4)).unwrap();
        let p = t.producer();
        for part in 0..4 {
            for _ in 0..75 {
                p.send_batch((0..100).map(|_| Record::new(vec![7u8; 4000]).partition(part))).unwrap();
            }
        }
        w.close().unwrap();
    }
    // Measured in a process of its own: the other tests' threads here
    // allocate as they please.
    let out =
        support::child::command("child_opens_a_backlog_and_reports_its_memory", "rss", tmp.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let grown_mib: u64 = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").and_then(|(_, r)| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("child stderr: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(grown_mib < 16, "opening the follower grew anonymous memory by {grown_mib} MiB (4 partitions)");
}

/// Child of the test above: opens the backlog read-only and prints how
/// much anonymous memory that took, in MiB.
#[test]
fn child_opens_a_backlog_and_reports_its_memory() {
    if support::child::role().as_deref() != Some("rss") {
        return;
    }
    let before = rss_anon_kib();
    let r = Broker::open_read_only(support::child::dir()).unwrap();
    let rt = r.topic("t").unwrap();
    assert_eq!(rt.high_watermark(0).unwrap(), 7500);
    println!("RESULT {}", rss_anon_kib().saturating_sub(before) / 1024);
}

fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain integers, for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage for the call.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A torn tail of one large frame (a crashed writer in the middle of a
/// 1 MiB record): a consumer waiting behind it backs off instead of
/// reading and checksumming it again at every look.
#[test]
fn waiting_behind_a_large_torn_frame_costs_no_cpu() {
    let tmp = TempDir::new("rorev-torn-cpu");
    {
        let w = Broker::open(tmp.path()).unwrap();
        let t = w.create_topic("t", TopicConfig::default()).unwrap();
        t.producer().send(Record::new("ok")).unwrap();
        t.producer().send(Record::new(vec![5u8; (1 << 20) - 1000])).unwrap();
        w.close().unwrap();
    }
    // Tear the last frame: its last byte never made it.
    let seg = support::layout::active_segment(tmp.path(), "t", 0);
    let len = std::fs::metadata(&seg).unwrap().len();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&[0], len - 2).unwrap(); // the value's last byte (the header count follows it)
    }
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"ok");
    let cpu0 = thread_cpu();
    let wall = Instant::now();
    let got = c.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(
        got.is_none(),
        "torn frame returned: offset {:?} len {:?} last byte {:?} seg len {len}; on disk last byte {:?}",
        got.as_ref().map(|m| m.offset()),
        got.as_ref().map(|m| m.value().len()),
        got.as_ref().map(|m| m.value()[m.value().len() - 1]),
        std::fs::read(&seg).unwrap().last()
    );
    let (cpu, wall) = (thread_cpu() - cpu0, wall.elapsed());
    assert!(cpu < wall / 10, "waiting {wall:?} behind the torn frame took {cpu:?} of CPU");
}

/// A 2 s receive that finds nothing: the CPU time it took, and how long.
fn idle_wait(c: &mut millpond::Consumer) -> (Duration, Duration) {
    let cpu0 = thread_cpu();
    let wall = Instant::now();
    assert!(c.recv_timeout(Duration::from_secs(2)).unwrap().is_none());
    (thread_cpu() - cpu0, wall.elapsed())
}

/// Control: the same wait with no torn frame.
#[test]
fn control_waiting_at_a_clean_tail_costs_no_cpu() {
    let tmp = TempDir::new("rorev-clean-cpu");
    let w = Broker::open(tmp.path()).unwrap();
    let t = w.create_topic("t", TopicConfig::default()).unwrap();
    t.producer().send(Record::new("ok")).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"ok");
    let (cpu, wall) = idle_wait(&mut c);
    assert!(cpu < wall / 10, "waiting {wall:?} took {cpu:?} of CPU");
}

/// After the writer closed cleanly (its active segment trimmed and
/// indexed), a waiting consumer does not list the directory at every look.
#[test]
fn waiting_at_the_tail_of_a_closed_writer_costs_no_cpu() {
    let tmp = TempDir::new("rorev-closed-cpu");
    {
        let w = Broker::open(tmp.path()).unwrap();
        w.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("ok")).unwrap();
        w.close().unwrap();
    }
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"ok");
    let (cpu, wall) = idle_wait(&mut c);
    assert!(cpu < wall / 20, "waiting {wall:?} at a closed writer's tail took {cpu:?} of CPU");
}

/// All readers of a directory share one bell: a consumer of an idle topic,
/// woken by records of another topic someone else waits on, looks and
/// sleeps again cheaply.
#[test]
fn a_consumer_of_an_idle_topic_is_not_woken_by_another_topics_records() {
    let tmp = TempDir::new("rorev-herd");
    let w = Broker::open(tmp.path()).unwrap();
    let busy = w.create_topic("busy", TopicConfig::default()).unwrap();
    w.create_topic("idle", TopicConfig::default()).unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut on_busy = r.topic("busy").unwrap().consumer(StartFrom::Earliest).unwrap();
    let mut on_idle = r.topic("idle").unwrap().consumer(StartFrom::Earliest).unwrap();
    const N: u64 = 1500;
    let reader = std::thread::spawn(move || {
        for _ in 0..N {
            on_busy.recv_timeout(WAIT).unwrap().expect("record");
        }
    });
    let writer = std::thread::spawn(move || {
        let p = busy.producer();
        for _ in 0..N {
            p.send(Record::new("x")).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let cpu0 = thread_cpu();
    let wall = Instant::now();
    while !writer.is_finished() {
        assert!(on_idle.recv_timeout(Duration::from_millis(500)).unwrap().is_none());
    }
    let (cpu, wall) = (thread_cpu() - cpu0, wall.elapsed());
    writer.join().unwrap();
    reader.join().unwrap();
    // The same wait with nothing published anywhere costs ~0.4% (the
    // control test above); a reader woken and looking at every record of
    // the other topic cost 20%.
    assert!(cpu < wall / 10, "the idle topic's consumer used {cpu:?} of CPU in {wall:?}");
}

/// A symlinked `groups/` is refused by the read-only open, as by the
/// writer's: committed offsets are never read through a link.
#[test]
fn a_symlinked_groups_directory_is_refused_by_a_read_only_broker() {
    let tmp = TempDir::new("rorev-groups-link");
    let outside = TempDir::new("rorev-groups-outside");
    {
        let w = Broker::open(tmp.path()).unwrap();
        let t = w.create_topic("t", TopicConfig::default()).unwrap();
        t.producer().send(Record::new("x")).unwrap();
        let mut m = t.group("g").unwrap().auto_commit(millpond::AutoCommit::Off).join().unwrap();
        m.poll(1, WAIT).unwrap();
        m.commit().unwrap();
        m.close().unwrap();
    }
    let groups = tmp.path().join("groups");
    std::fs::rename(&groups, outside.join("groups")).unwrap();
    std::os::unix::fs::symlink(outside.join("groups"), &groups).unwrap();
    assert!(matches!(Broker::open(tmp.path()), Err(Error::Symlink { .. })), "the writer refuses it");
    let r = Broker::open_read_only(tmp.path());
    let listed = r.as_ref().ok().map(|r| r.topic("t").unwrap().groups());
    assert!(
        matches!(r, Err(Error::Symlink { .. })),
        "the read-only broker opened and read groups through the link: {listed:?}"
    );
}

/// A clean close and a new writer in the same process: the waiting
/// follower is woken promptly.
#[test]
fn sanity_clean_close_and_reopen_is_followed_promptly() {
    let tmp = TempDir::new("rorev-reopen");
    let w = Broker::open(tmp.path()).unwrap();
    w.create_topic("t", TopicConfig::default().partitions(2)).unwrap().producer().send(Record::new("a")).unwrap();
    w.close().unwrap();
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c = r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.recv().unwrap().value(), b"a");
    let dir = tmp.path().to_path_buf();
    let sender = std::thread::spawn(move || {
        let w = Broker::open(&dir).unwrap();
        let t = w.topic("t").unwrap();
        let mut sent = Vec::new();
        for i in 0..20u32 {
            std::thread::sleep(Duration::from_millis(20));
            sent.push(Instant::now());
            t.producer().send(Record::new("b").partition(i % 2)).unwrap();
        }
        sent
    });
    let mut got = Vec::new();
    for _ in 0..20 {
        c.recv_timeout(WAIT).unwrap().expect("record");
        got.push(Instant::now());
    }
    let sent = sender.join().unwrap();
    let worst = sent.iter().zip(&got).map(|(s, g)| g.saturating_duration_since(*s)).max().unwrap();
    assert!(worst < Duration::from_millis(50), "worst wake-up {worst:?}");
}

/// A race in roll detection: the writer closes (trimming the tail), a new
/// writer recovers the tail, appends to it and rolls, while the follower
/// lists a huge directory (100,000 stray files), which does not see every
/// entry created during the listing. No record is skipped or reported as
/// lagged.
#[test]
fn records_appended_to_a_recovered_tail_before_a_roll_are_not_skipped() {
    let tmp = TempDir::new("rorev-roll-race");
    {
        let w = Broker::open(tmp.path()).unwrap();
        let t = w.create_topic("t", small_segments()).unwrap();
        t.producer().send_batch((0..5u32).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
        w.close().unwrap();
    }
    let pdir = partition_dir(tmp.path(), "t", 0);
    for i in 0..100_000 {
        std::fs::File::create(pdir.join(format!("junk-{i:06}"))).unwrap();
    }
    const CYCLES: u64 = 8;
    const PER_CYCLE: u64 = 30;
    let total = 5 + CYCLES * PER_CYCLE;
    let r = Broker::open_read_only(tmp.path()).unwrap();
    let mut c =
        r.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap().wait_strategy(millpond::WaitStrategy::BusySpin);
    let follower = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.iter().filter(|r: &&Result<u64, String>| r.is_ok()).count() < total as usize
            && Instant::now() < deadline
        {
            match c.recv_timeout(Duration::from_secs(1)) {
                Ok(Some(m)) => seen.push(Ok(m.offset())),
                Ok(None) => {}
                Err(e) => seen.push(Err(format!("{e}"))),
            }
        }
        seen
    });
    for _ in 0..CYCLES {
        std::thread::sleep(Duration::from_millis(400));
        let w = Broker::open(tmp.path()).unwrap();
        // Fills the old tail's free space, then rolls to a segment past `next`.
        w.topic("t").unwrap().producer().send_batch((0..PER_CYCLE).map(|i| Record::new(vec![i as u8; 200]))).unwrap();
        w.close().unwrap();
    }
    let seen = follower.join().unwrap();
    let expected: Vec<Result<u64, String>> = (0..total).map(Ok).collect();
    let wrong: Vec<_> = seen.iter().zip(&expected).filter(|(a, b)| a != b).take(3).collect();
    assert!(seen == expected, "first differences (got, expected): {wrong:?}; {} received", seen.len());
}
