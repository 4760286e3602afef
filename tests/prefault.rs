//! The pre-fault thread prepares the active segment's pages ahead of the
//! writer by default (`BrokerConfig::prefault_bytes`), and not when it is
//! turned off.

#![cfg(target_os = "linux")]

#[path = "../src/storage/resident.rs"]
#[allow(dead_code)] // the library's own tests use the rest of it
mod resident;
mod support;

use std::time::Duration;

use millpond::{Broker, BrokerConfig, Record, StartFrom, TopicConfig};
use resident::cached_kib;
use support::dir::TempDir;
use support::layout::active_segment;
use support::wait::poll_until;

/// Held by each test: they look at the threads of the whole process, so
/// one test's broker must not be running while another counts threads.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Whether this process runs the broker's pre-fault thread (its name,
/// `millpond-prefault`, is cut to the 15 bytes Linux keeps).
fn prefault_thread_running() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .any(|comm| comm.trim_end() == "millpond-prefau")
}

/// Writes about 1 MiB to a fresh topic of 64 MiB segments and returns
/// (bytes stored, KiB of the active segment in the page cache once
/// `ahead_kib` beyond what was written are there, or after a while), with
/// whether the pre-fault thread was running meanwhile.
fn write_and_measure(config: BrokerConfig, ahead_kib: u64) -> (u64, u64, bool) {
    let tmp = TempDir::new("prefault");
    let broker = Broker::open_with(tmp.path(), config).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().segment_bytes(64 << 20)).unwrap();
    let producer = topic.producer();
    for i in 0..6_000u32 {
        producer.send(Record::new(vec![(i % 251) as u8; 100])).unwrap();
    }
    // A new thread names itself once it runs: give it a moment.
    let thread = poll_until(Duration::from_secs(1), prefault_thread_running);
    let stored = topic.stats().partitions[0].bytes;
    let seg = active_segment(tmp.path(), "t", 0);
    let want_kib = stored.div_ceil(1024) + ahead_kib;
    let mut cached = 0;
    poll_until(Duration::from_secs(20), || {
        cached = cached_kib(&seg);
        cached >= want_kib
    });
    // Whatever was prepared, the records read back unchanged.
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let mut n = 0u32;
    while let Some(m) = c.try_recv_ref().unwrap() {
        assert_eq!(m.value(), &[(n % 251) as u8; 100][..]);
        n += 1;
    }
    assert_eq!(n, 6_000);
    (stored, cached, thread)
}

#[test]
fn the_active_segment_is_prepared_ahead_of_the_writer() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A window far larger than the kernel's own readahead of a faulting
    // mapping (`read_ahead_kb`, 128 KiB by default and 8 MiB on our VMs),
    // so only the pre-fault thread can have brought these pages in.
    let ahead: u32 = 32 << 20;
    // The writer asks for a window whenever it comes within half a window
    // of the prepared end, so at least half a window lies ahead of it.
    let want = u64::from(ahead / 2 / 1024);
    let (stored, cached, thread) = write_and_measure(BrokerConfig::default().prefault_bytes(ahead), want);
    assert!(thread);
    let written_kib = stored.div_ceil(1024);
    assert!(
        cached >= written_kib + want,
        "{cached} KiB cached for {written_kib} KiB written: expected at least {want} KiB prepared ahead"
    );
    assert!(cached <= written_kib + u64::from(ahead / 1024) + 8192, "about one window ahead: {cached} KiB");
}

#[test]
fn pre_faulting_is_on_by_default_and_off_at_zero() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(BrokerConfig::default().get_prefault_bytes(), 4 << 20);
    let tmp = TempDir::new("prefault-default");
    let broker = Broker::open(tmp.path()).unwrap();
    // A new thread names itself once it runs: give it a moment.
    assert!(
        poll_until(Duration::from_secs(10), prefault_thread_running),
        "the default broker runs the pre-fault thread"
    );
    drop(broker);
    poll_until(Duration::from_secs(10), || !prefault_thread_running());
    assert!(!prefault_thread_running(), "closing the broker stops the thread");
    let (_, _, thread) = write_and_measure(BrokerConfig::default().prefault_bytes(0), 0);
    assert!(!thread, "prefault_bytes(0) runs no pre-fault thread");
}
