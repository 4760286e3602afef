//! [`CachePadded`]: keeps a value on cache lines of its own.

/// Aligns and pads `T` to 128 bytes (two 64-byte lines: x86 prefetches
/// lines in adjacent pairs), so that what one thread writes often does not
/// share a line with what another thread reads often. Without it, a
/// producer's store of the high watermark invalidated the line a spinning
/// consumer read its closed flag from, and every append paid a cache miss
/// for the wake-up check.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(T);

impl<T> CachePadded<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> CachePadded<T> {
        CachePadded(value)
    }
}

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_values_never_share_a_line() {
        let pair = [CachePadded::new(1u8), CachePadded::new(2u8)];
        let (a, b) = (&*pair[0] as *const u8 as usize, &*pair[1] as *const u8 as usize);
        assert_eq!(a % 128, 0);
        assert_eq!(b - a, 128);
        assert_eq!((*pair[0], *pair[1]), (1, 2));
    }
}
