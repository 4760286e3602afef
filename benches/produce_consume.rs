//! End-to-end throughput, 100-byte records, no fsync.
//!
//! - `spsc_100B`: one producer thread sending record by record while one
//!   consumer thread receives them with a blocking `recv`, concurrently;
//!   millpond (1 partition, default `SpinThenPark` wait) against
//!   crossbeam-channel bounded (1,024) and unbounded channels of `[u8; 100]`.
//!   The clock runs from the moment both threads are released until the
//!   consumer holds the last record.
//! - `backlog_read_100B`: one consumer draining a pre-filled backlog of
//!   1,000,000 records with `try_recv` (written one record per frame, and
//!   1,000 records per frame), against `recv` from a pre-filled unbounded
//!   crossbeam channel.
//!
//! Every consumer touches the first and last byte of each value, so
//! millpond's zero-copy reads really read the mapped memory.

mod common;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

use common::{BATCH, RECORD_BYTES, Rig, SINGLE_FRAME_BYTES, chunked, configure, payload, touch};
use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_channel::{Receiver, Sender};
use millpond::{Record, StartFrom};

/// Records per timed producer/consumer run.
const SPSC_CHUNK: u64 = 1 << 20;
/// Records in the pre-filled backlogs.
const BACKLOG: u64 = 1_000_000;

/// One timed crossbeam producer/consumer run of `n` records.
fn crossbeam_run(n: u64, tx: Sender<[u8; RECORD_BYTES]>, rx: &Receiver<[u8; RECORD_BYTES]>) -> std::time::Duration {
    let value = payload(7);
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            for _ in 0..n {
                tx.send(black_box(value)).expect("send");
            }
        });
        barrier.wait();
        let start = Instant::now();
        let mut acc = 0u64;
        for _ in 0..n {
            acc += touch(&rx.recv().expect("recv"));
        }
        let elapsed = start.elapsed();
        black_box(acc);
        elapsed
    })
}

fn spsc(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_100B");
    configure(&mut group, 1);

    // State lives outside the closures: criterion calls them once per
    // warm-up step as well as for the measurement.
    let mut rig = Rig::new("spsc");
    let value = payload(7);
    group.bench_function("millpond_send_recv", |b| {
        b.iter_custom(|iters| {
            chunked(iters, SPSC_CHUNK, |n| {
                rig.reserve(n * SINGLE_FRAME_BYTES);
                let producer = rig.producer();
                let mut consumer = rig.topic().consumer(StartFrom::Latest).expect("consumer");
                let barrier = Barrier::new(2);
                std::thread::scope(|s| {
                    s.spawn(|| {
                        barrier.wait();
                        for _ in 0..n {
                            producer.send(Record::new(black_box(&value))).expect("send");
                        }
                    });
                    barrier.wait();
                    let start = Instant::now();
                    let mut acc = 0u64;
                    for _ in 0..n {
                        acc += touch(consumer.recv().expect("recv").value());
                    }
                    let elapsed = start.elapsed();
                    black_box(acc);
                    elapsed
                })
            })
        });
    });

    drop(rig);

    group.bench_function("crossbeam_bounded_1024", |b| {
        b.iter_custom(|iters| {
            chunked(iters, SPSC_CHUNK, |n| {
                let (tx, rx) = crossbeam_channel::bounded(1024);
                crossbeam_run(n, tx, &rx)
            })
        });
    });

    group.bench_function("crossbeam_unbounded", |b| {
        b.iter_custom(|iters| {
            chunked(iters, SPSC_CHUNK, |n| {
                let (tx, rx) = crossbeam_channel::unbounded();
                crossbeam_run(n, tx, &rx)
            })
        });
    });

    group.finish();
}

/// A rig whose topic holds [`BACKLOG`] records, `per_frame` records per
/// frame, and a consumer at its start. (The consumer comes first so that it
/// is dropped before the rig.)
fn prefilled(label: &str, per_frame: usize) -> (millpond::Consumer, Rig) {
    let rig = Rig::new(label);
    let values: Vec<[u8; RECORD_BYTES]> = (0..per_frame as u64).map(payload).collect();
    for _ in 0..BACKLOG / per_frame as u64 {
        if per_frame == 1 {
            rig.producer().send(Record::new(&values[0])).expect("prefill");
        } else {
            rig.producer().send_batch(values.iter().map(Record::new)).expect("prefill");
        }
    }
    assert_eq!(rig.topic().high_watermark(0).expect("high watermark"), BACKLOG);
    let consumer = rig.topic().consumer(StartFrom::Earliest).expect("consumer");
    (consumer, rig)
}

fn backlog(c: &mut Criterion) {
    let mut group = c.benchmark_group("backlog_read_100B");
    configure(&mut group, 1);

    for (name, per_frame) in [("millpond_try_recv_1_per_frame", 1), ("millpond_try_recv_1000_per_frame", BATCH)] {
        // Filled once, on first use (criterion calls the closure once per
        // warm-up step as well as for the measurement, and not at all when
        // the bench is filtered out).
        let mut state: Option<(millpond::Consumer, Rig)> = None;
        group.bench_function(name, |b| {
            let (consumer, _rig) = state.get_or_insert_with(|| prefilled(name, per_frame));
            b.iter_custom(|iters| {
                chunked(iters, BACKLOG, |n| {
                    if consumer.position(0).expect("position") + n > BACKLOG {
                        consumer.seek_to_beginning().expect("seek"); // outside timing
                    }
                    let start = Instant::now();
                    let mut acc = 0u64;
                    for _ in 0..n {
                        acc += touch(consumer.try_recv().expect("try_recv").expect("backlogged record").value());
                    }
                    let elapsed = start.elapsed();
                    black_box(acc);
                    elapsed
                })
            });
        });
    }

    let value = payload(7);
    group.bench_function("crossbeam_recv_unbounded", |b| {
        b.iter_custom(|iters| {
            chunked(iters, BACKLOG, |n| {
                let (tx, rx) = crossbeam_channel::unbounded::<[u8; RECORD_BYTES]>();
                for _ in 0..n {
                    tx.send(value).expect("prefill"); // outside timing
                }
                let start = Instant::now();
                let mut acc = 0u64;
                for _ in 0..n {
                    acc += touch(&rx.recv().expect("recv"));
                }
                let elapsed = start.elapsed();
                black_box(acc);
                elapsed
            })
        });
    });

    group.finish();
}

criterion_group!(benches, spsc, backlog);
criterion_main!(benches);
