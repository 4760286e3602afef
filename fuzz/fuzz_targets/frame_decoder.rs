//! Fuzzes millpond's frame decoder through the public API.
//!
//! The decoder is crate-private, so the input becomes a segment file: a
//! topic is created once with the real API (so its `topic.meta` is valid),
//! the broker is closed, and for every input the partition's segment file
//! is replaced by the input before the broker is reopened. Everything is
//! then read with a consumer and checked with `Broker::verify()`. Nothing
//! may panic; any message returned must be well-formed (offsets increase).
//!
//! The first input byte picks the layout: bit 0 clear, the input is the
//! active (last) segment, recovered on open; bit 0 set, it is a sealed
//! segment without an index (scanned and checksummed on first use),
//! followed by an empty active segment. Bit 1 clear, the input follows the
//! topic's real 64-byte segment header (so the frames are what is fuzzed);
//! bit 1 set, the input is the whole file, header included.
//!
//! Run with `cargo fuzz run frame_decoder` from the crate root (needs
//! cargo-fuzz and a nightly toolchain). Not run in CI.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use millpond::{Broker, StartFrom, TopicConfig};

const TOPIC: &str = "t";

/// The files of a freshly created, closed topic: `(relative path, bytes)`,
/// and the header of its first segment.
fn template() -> &'static (Vec<(PathBuf, Vec<u8>)>, Vec<u8>) {
    static TEMPLATE: OnceLock<(Vec<(PathBuf, Vec<u8>)>, Vec<u8>)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("millpond-fuzz-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let broker = Broker::open(&dir).expect("open template broker");
        let cfg = TopicConfig::default().segment_bytes(64 << 10).max_record_bytes(16 << 10).index_interval_bytes(256);
        broker.create_topic(TOPIC, cfg).expect("create template topic");
        broker.close().expect("close template broker");
        drop(broker);
        let meta = Path::new("topics").join(TOPIC).join("topic.meta");
        let bytes = std::fs::read(dir.join(&meta)).expect("read topic.meta");
        let segment = dir.join("topics").join(TOPIC).join("0").join(segment_name(0));
        let mut header = std::fs::read(segment).expect("read segment");
        header.truncate(64);
        let _ = std::fs::remove_dir_all(&dir);
        (vec![(meta, bytes)], header)
    })
}

fn segment_name(base: u64) -> String {
    format!("{base:020}.log")
}

fn run(data: &[u8]) {
    let Some((&mode, segment)) = data.split_first() else { return };
    let dir = std::env::temp_dir().join(format!("millpond-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let partition = dir.join("topics").join(TOPIC).join("0");
    std::fs::create_dir_all(&partition).expect("create partition directory");
    let (files, header) = template();
    for (rel, bytes) in files {
        std::fs::write(dir.join(rel), bytes).expect("write template file");
    }
    let file = if mode & 2 == 0 { [header.as_slice(), segment].concat() } else { segment.to_vec() };
    std::fs::write(partition.join(segment_name(0)), file).expect("write segment");
    if mode & 1 == 1 {
        // An empty active segment after the fuzzed one makes it sealed.
        std::fs::write(partition.join(segment_name(1 << 40)), b"").expect("write active segment");
    }

    let Ok(broker) = Broker::open(&dir) else { return };
    let _ = broker.recovery_report();
    if let Ok(topic) = broker.topic(TOPIC) {
        let _ = topic.stats();
        for from in [StartFrom::Earliest, StartFrom::Offset(1), StartFrom::Timestamp(0)] {
            let Ok(mut c) = topic.consumer(from) else { continue };
            let mut last: Option<u64> = None;
            for _ in 0..100_000 {
                match c.try_recv() {
                    Ok(Some(m)) => {
                        assert!(last.is_none_or(|l| m.offset() > l), "offsets must increase");
                        last = Some(m.offset());
                        // Touch every part of the message.
                        let _ = (m.key().map(<[u8]>::len), m.value().len(), m.timestamp(), m.is_tombstone());
                        for (name, value) in m.headers() {
                            let _ = (name.len(), value.len());
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let _ = topic.verify();
    }
    let _ = broker.verify();
    let _ = broker.close();
}

fuzz_target!(|data: &[u8]| run(data));
