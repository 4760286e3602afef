//! Seeded, deterministic pseudo-random numbers (no `rand`).

use std::fmt;

/// The environment variable that replays a randomized test: the seed its
/// failure printed.
pub const SEED_ENV: &str = "MILLPOND_SEED";

/// Knuth's MMIX linear congruential generator: deterministic and seedable,
/// good enough to pick sizes, kill points and garbage bytes.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        let mut g = Lcg(seed ^ 0x9E37_79B9_7F4A_7C15);
        g.next_u64();
        g
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        // The high bits of an LCG are the good ones.
        self.0 ^ (self.0 >> 29)
    }

    /// Uniform-ish in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + (self.next_u64() >> 11) % (hi - lo)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.range(0, den) < num
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Deterministic bytes for a value of `len` bytes derived from `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Lcg::new(seed).fill(&mut v);
    v
}

/// The seed of a randomized test: `MILLPOND_SEED` when set, else the
/// test's default. While it is alive, a failure (a panic of the thread
/// holding it) prints it with the command line that replays the run.
#[derive(Debug)]
pub struct Seed(u64);

impl Seed {
    /// `MILLPOND_SEED` if set (it must be a number), else `default`.
    pub fn from_env_or(default: u64) -> Seed {
        match std::env::var(SEED_ENV) {
            Ok(s) => Seed(s.trim().parse().unwrap_or_else(|_| panic!("{SEED_ENV}={s:?} is not a number"))),
            Err(_) => Seed(default),
        }
    }

    pub fn value(&self) -> u64 {
        self.0
    }

    /// A generator seeded with this seed.
    pub fn rng(&self) -> Lcg {
        Lcg::new(self.0)
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("the failed test ran with seed {0}; {SEED_ENV}={0} replays it", self.0);
        }
    }
}
