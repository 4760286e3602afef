//! [`OffsetReset`] and [`AutoCommit`]: a consumer group's policies.

use std::time::Duration;

/// Where a group member starts reading a partition that has no committed
/// offset, or whose committed offset is no longer in the log (deleted by
/// retention) or beyond its end; and where it goes on when retention
/// deletes records it has not read yet.
///
/// Records lost to retention are never skipped silently: with `Earliest`
/// or `Latest` the member's receive call returns [`Error::Lagged`](crate::Error::Lagged) once,
/// naming the offsets it missed, and the next call reads on from the log
/// start (or the high watermark); with `Fail` it returns
/// [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange) and stays where it is until it seeks.
///
/// # Examples
///
/// ```
/// use millpond::OffsetReset;
/// assert_eq!(OffsetReset::default(), OffsetReset::Earliest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OffsetReset {
    /// The earliest offset still stored (default: a new group misses nothing).
    #[default]
    Earliest,
    /// The high watermark: only records appended from now on.
    Latest,
    /// Refuse: the receive call returns [`Error::NoCommittedOffset`](crate::Error::NoCommittedOffset) or
    /// [`Error::OffsetOutOfRange`](crate::Error::OffsetOutOfRange).
    Fail,
}

/// When a group member commits its positions by itself.
///
/// See the [module documentation](crate::Group) for the guarantee each
/// mode gives.
///
/// # Examples
///
/// ```
/// use millpond::AutoCommit;
/// use std::time::Duration;
/// assert_eq!(AutoCommit::default(), AutoCommit::Interval(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AutoCommit {
    /// Never; call [`GroupMember::commit`](crate::GroupMember::commit),
    /// [`GroupMember::commit_offsets`](crate::GroupMember::commit_offsets) or
    /// their asynchronous forms ([`GroupMember::commit_async`](crate::GroupMember::commit_async)).
    Off,
    /// At the start of a receive call, when this long has passed since the
    /// last commit, and when the member is dropped. The receive call does
    /// not wait for it: it is written by the broker's commit thread (as
    /// [`GroupMember::commit_async`](crate::GroupMember::commit_async)), and
    /// a failure is returned by a later receive call. The commit on drop
    /// (and on [`GroupMember::close`](crate::GroupMember::close)) is durable
    /// before it returns.
    Interval(Duration),
}

impl Default for AutoCommit {
    fn default() -> Self {
        AutoCommit::Interval(Duration::from_secs(5))
    }
}
