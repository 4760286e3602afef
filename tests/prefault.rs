//! The pre-fault thread prepares the active segment's pages ahead of the
//! writer when `BrokerConfig::prefault_bytes` asks for it, and not by default.

#![cfg(target_os = "linux")]

#[path = "../src/storage/resident.rs"]
mod resident;
mod support;

use std::time::Duration;

use millpond::{Broker, BrokerConfig, Record, StartFrom, TopicConfig};
use resident::resident_kib;
use support::dir::TempDir;
use support::layout::active_segment;
use support::wait::poll_until;

/// Writes about 1 MiB to a fresh topic and returns (bytes stored, resident
/// KiB of the active segment once `ahead_kib` beyond what was written are
/// resident, or after a while).
fn write_and_measure(config: BrokerConfig, ahead_kib: u64) -> (u64, u64) {
    let tmp = TempDir::new("prefault");
    let broker = Broker::open_with(tmp.path(), config).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().segment_bytes(64 << 20)).unwrap();
    let producer = topic.producer();
    for i in 0..6_000u32 {
        producer.send(Record::new(vec![(i % 251) as u8; 100])).unwrap();
    }
    let stored = topic.stats().partitions[0].bytes;
    let seg = active_segment(tmp.path(), "t", 0);
    let want_kib = stored.div_ceil(1024) + ahead_kib;
    let patience = Duration::from_secs(if ahead_kib > 0 { 20 } else { 0 });
    let mut resident = 0;
    poll_until(patience, || {
        resident = resident_kib(&seg);
        resident >= want_kib
    });
    // Whatever was prepared, the records read back unchanged.
    let mut c = topic.consumer(StartFrom::Earliest).unwrap();
    let mut n = 0u32;
    while let Some(m) = c.try_recv_ref().unwrap() {
        assert_eq!(m.value(), &[(n % 251) as u8; 100][..]);
        n += 1;
    }
    assert_eq!(n, 6_000);
    (stored, resident)
}

#[test]
fn the_active_segment_is_prepared_ahead_of_the_writer() {
    let ahead = 4 << 20;
    // The writer asks for a window whenever it comes within half a window
    // of the prepared end, so at least half a window lies ahead of it.
    let want = u64::from(ahead / 2 / 1024);
    let (stored, resident) = write_and_measure(BrokerConfig::default().prefault_bytes(ahead), want);
    let written_kib = stored.div_ceil(1024);
    assert!(
        resident >= written_kib + want,
        "{resident} KiB resident for {written_kib} KiB written: expected at least {want} KiB prepared ahead"
    );
    assert!(resident <= written_kib + 4096 + 8, "never more than one window ahead: {resident} KiB");
}

#[test]
fn by_default_only_written_pages_are_resident() {
    let (stored, resident) = write_and_measure(BrokerConfig::default(), 0);
    let written_kib = stored.div_ceil(1024);
    assert!(resident <= written_kib + 4, "{resident} KiB resident for {written_kib} KiB written");
}
