//! Append throughput, 100-byte records, no fsync (`FsyncPolicy::Never`).
//!
//! - `append_single_100B`: one `Producer::send` per record, against
//!   crossbeam-channel's `send` of a `[u8; 100]` into an unbounded channel
//!   (drained between timed chunks, so memory stays bounded).
//! - `append_batch_1000x100B`: `Producer::send_batch` of 1,000 records,
//!   against a raw `memcpy` of the same 100,000 value bytes into a mapping of
//!   a preallocated file, into fresh pages (as a segment is written) and into
//!   already-faulted pages (the copy alone).
//!
//! Topics use 256 MiB segments and are recreated (outside timing) once they
//! hold about 1 GiB, so disk use stays bounded.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{BATCH, BATCH_FRAME_BYTES, MmapSink, RECORD_BYTES, Rig, SINGLE_FRAME_BYTES, chunked, configure, payload};
use criterion::{Criterion, criterion_group, criterion_main};
use millpond::Record;

/// Records per timed chunk of single sends.
const SINGLE_CHUNK: u64 = 1 << 20;
/// Batches per timed chunk.
const BATCH_CHUNK: u64 = 256;

fn append_single(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_single_100B");
    configure(&mut group, 1);
    let value = payload(7);

    // State lives outside the closures: criterion calls them once per
    // warm-up step as well as for the measurement.
    let mut rig = Rig::new("append-single");
    group.bench_function("millpond_send", |b| {
        b.iter_custom(|iters| {
            chunked(iters, SINGLE_CHUNK, |n| {
                rig.reserve(n * SINGLE_FRAME_BYTES);
                let producer = rig.producer();
                let start = Instant::now();
                for _ in 0..n {
                    black_box(producer.send(Record::new(black_box(&value))).expect("send"));
                }
                start.elapsed()
            })
        });
    });

    drop(rig);

    let (tx, rx) = crossbeam_channel::unbounded::<[u8; RECORD_BYTES]>();
    group.bench_function("crossbeam_unbounded_send", |b| {
        b.iter_custom(|iters| {
            chunked(iters, SINGLE_CHUNK, |n| {
                let start = Instant::now();
                for _ in 0..n {
                    tx.send(black_box(value)).expect("send");
                }
                let elapsed = start.elapsed();
                while rx.try_recv().is_ok() {} // outside timing
                elapsed
            })
        });
    });

    group.finish();
}

fn append_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_batch_1000x100B");
    configure(&mut group, BATCH as u64);
    let values: Vec<[u8; RECORD_BYTES]> = (0..BATCH as u64).map(payload).collect();
    let flat: Vec<u8> = values.concat();

    let mut rig = Rig::new("append-batch");
    group.bench_function("millpond_send_batch", |b| {
        b.iter_custom(|iters| {
            chunked(iters, BATCH_CHUNK, |n| {
                rig.reserve(n * BATCH_FRAME_BYTES);
                let producer = rig.producer();
                let start = Instant::now();
                for _ in 0..n {
                    let ids = producer.send_batch(black_box(&values).iter().map(Record::new)).expect("send_batch");
                    black_box(ids);
                }
                start.elapsed()
            })
        });
    });

    drop(rig);

    for (name, fresh) in [("memcpy_mmap_fresh_pages", true), ("memcpy_mmap_warm_pages", false)] {
        let mut sink = MmapSink::new(name, fresh);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                chunked(iters, BATCH_CHUNK, |n| {
                    sink.reserve(n as usize * flat.len());
                    let start = Instant::now();
                    for _ in 0..n {
                        sink.write(black_box(&flat));
                    }
                    let elapsed = start.elapsed();
                    black_box(&sink);
                    elapsed
                })
            });
        });
    }

    group.finish();
}

criterion_group!(benches, append_single, append_batch);
criterion_main!(benches);
