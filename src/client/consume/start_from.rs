//! [`StartFrom`]: where a new consumer starts reading.

/// Where a new [`Consumer`](crate::Consumer) starts reading each partition.
///
/// # Examples
///
/// ```
/// use millpond::StartFrom;
/// let from_start = StartFrom::Earliest;
/// let only_new = StartFrom::Latest;
/// let exact = StartFrom::Offset(42);
/// let since = StartFrom::Timestamp(1_700_000_000_000);
/// # let _ = (from_start, only_new, exact, since);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartFrom {
    /// The earliest offset still stored in each partition.
    Earliest,
    /// The high watermark: only records appended from now on.
    Latest,
    /// This offset in every partition; an offset outside
    /// `log start ..= high watermark` is [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange).
    Offset(u64),
    /// The first record whose timestamp (milliseconds since the Unix epoch) is
    /// at least this, in each partition; the high watermark if there is none.
    Timestamp(i64),
}
