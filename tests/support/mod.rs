//! What the integration tests share: temporary directories, millpond's
//! on-disk layout, seeded pseudo-random numbers, child processes, waiting
//! with a deadline, and the helpers of the fault, group and Kafka tests.
//! Only `std` (and the crate's own dependencies): no `tempfile`, no `rand`.
//!
//! Every test file says `mod support;` and imports what it needs, for
//! example `use support::dir::TempDir;`.
//!
//! Environment variables:
//!
//! - `MILLPOND_KEEP_TEST_DIRS=1` keeps the temporary directories for
//!   inspection (see [`dir::TempDir`]);
//! - `MILLPOND_SEED=<n>` replays a randomized test with the seed a failure
//!   printed (see [`rng::Seed`]);
//! - `MILLPOND_SOAK=1` runs the long variants (see [`soak`]).

// Every test binary compiles this whole module but uses only a part of it,
// a different part in each: what one binary leaves unused is used by others.
#![allow(dead_code)]
// A test binary has no public API: these items are `pub` only so that each
// test file can import them (the crate's `unreachable_pub` lint is for the
// library).
#![allow(unreachable_pub)]

pub mod child;
pub mod dir;
pub mod frames;
pub mod groups;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod layout;
pub mod records;
pub mod rng;
pub mod tmpfs;
pub mod tree;
pub mod wait;

/// Whether the long variants should run: `MILLPOND_SOAK` is set to
/// anything but nothing or `0`.
pub fn soak() -> bool {
    std::env::var_os("MILLPOND_SOAK").is_some_and(|v| !v.is_empty() && v != "0")
}
