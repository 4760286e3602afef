//! What records cost on disk in format v2: a single 100-byte record, sent
//! alone (no key, no headers), takes at most 120 bytes of its segment,
//! frame header and record fields included.

mod support;

use millpond::{Broker, Record, TopicConfig};
use support::dir::TempDir;
use support::frames::SEGMENT_HEADER;
use support::layout::segment_files;

#[test]
fn a_single_100_byte_record_costs_at_most_120_bytes_on_disk() {
    let tmp = TempDir::new("footprint");
    let broker = Broker::open(tmp.path()).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default().segment_bytes(16 << 20)).unwrap();
    let p = topic.producer();
    let n = 20_000u64;
    let value = [7u8; 100];
    for _ in 0..n {
        p.send(Record::new(&value[..])).unwrap(); // one frame each
    }
    let committed = topic.stats().bytes();
    broker.close().unwrap();
    let segments = segment_files(tmp.path(), "t", 0);
    assert_eq!(segments.len(), 1, "one segment");
    assert_eq!(std::fs::metadata(&segments[0]).unwrap().len(), committed, "a clean close trims to the committed bytes");
    let per_record = (committed - SEGMENT_HEADER as u64) as f64 / n as f64;
    assert!(per_record <= 120.0, "{per_record:.2} bytes per 100-byte record");
    assert!(committed as f64 / n as f64 <= 120.0);
}
