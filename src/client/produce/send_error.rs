//! Errors of the non-blocking and timed sends, which hand the record back
//! (crossbeam-channel's `TrySendError` / `SendTimeoutError` pattern).

use crate::error::Error;
use crate::storage::record::Record;

/// Why [`Producer::try_send`](crate::Producer::try_send) did not send.
///
/// # Examples
///
/// ```
/// use millpond::{Backlog, Broker, Record, TopicConfig, TrySendError};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-trysend-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
/// let _member = topic.group("slow")?.join()?; // an active group that commits nothing
/// let p = topic.producer();
/// p.try_send(Record::new("first")).map_err(|e| e.into_error())?;
/// match p.try_send(Record::new("second")) {
///     Err(TrySendError::Full(record)) => assert_eq!(record.value_bytes(), Some(&b"second"[..])),
///     other => panic!("expected Full, got {other:?}"),
/// }
/// // The record back, to keep for later, or the error, for `?`.
/// let back = p.try_send(Record::new("third")).unwrap_err().into_record();
/// assert_eq!(back.and_then(|r| r.value_bytes().map(<[u8]>::to_vec)), Some(b"third".to_vec()));
/// assert!(matches!(p.try_send(Record::new("fourth")).unwrap_err().into_error(), millpond::Error::Full));
/// # drop(_member); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TrySendError<'a> {
    /// The partition's backlog is at its limit; here is the record back.
    Full(Record<'a>),
    /// Sending failed for another reason.
    Failed(Error),
}

/// Why [`Producer::send_timeout`](crate::Producer::send_timeout) did not send.
///
/// # Examples
///
/// ```
/// use millpond::{Backlog, Broker, Record, SendTimeoutError, TopicConfig};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-sendto-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
/// let _member = topic.group("slow")?.join()?;
/// let p = topic.producer();
/// p.send(Record::new("first"))?;
/// let err = p.send_timeout(Record::new("second"), Duration::from_millis(20)).unwrap_err();
/// assert!(matches!(err, SendTimeoutError::Timeout(_)));
/// // The record back, to keep for later, or the error, for `?`.
/// let record = err.into_record().expect("a timeout hands the record back");
/// let err = p.send_timeout(record, Duration::from_millis(5)).unwrap_err();
/// assert!(matches!(err.into_error(), millpond::Error::Full));
/// # drop(_member); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum SendTimeoutError<'a> {
    /// The backlog stayed at its limit until the timeout; here is the record back.
    Timeout(Record<'a>),
    /// Sending failed for another reason.
    Failed(Error),
}

impl<'a> TrySendError<'a> {
    /// The record, if it was handed back.
    ///
    /// See [`TrySendError`] for an example.
    pub fn into_record(self) -> Option<Record<'a>> {
        match self {
            TrySendError::Full(r) => Some(r),
            TrySendError::Failed(_) => None,
        }
    }

    /// As an [`Error`] ([`Error::Full`] for a full backlog), for `?`.
    ///
    /// See [`TrySendError`] for an example.
    pub fn into_error(self) -> Error {
        match self {
            TrySendError::Full(_) => Error::Full,
            TrySendError::Failed(e) => e,
        }
    }
}

impl<'a> SendTimeoutError<'a> {
    /// The record, if it was handed back.
    ///
    /// See [`SendTimeoutError`] for an example.
    pub fn into_record(self) -> Option<Record<'a>> {
        match self {
            SendTimeoutError::Timeout(r) => Some(r),
            SendTimeoutError::Failed(_) => None,
        }
    }

    /// As an [`Error`] ([`Error::Full`] for a timeout), for `?`.
    ///
    /// See [`SendTimeoutError`] for an example.
    pub fn into_error(self) -> Error {
        match self {
            SendTimeoutError::Timeout(_) => Error::Full,
            SendTimeoutError::Failed(e) => e,
        }
    }
}

impl std::fmt::Display for TrySendError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the partition's backlog is full"),
            TrySendError::Failed(e) => e.fmt(f),
        }
    }
}

impl std::fmt::Display for SendTimeoutError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendTimeoutError::Timeout(_) => f.write_str("timed out waiting for room in the partition's backlog"),
            SendTimeoutError::Failed(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for TrySendError<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrySendError::Full(_) => None,
            TrySendError::Failed(e) => Some(e),
        }
    }
}

impl std::error::Error for SendTimeoutError<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendTimeoutError::Timeout(_) => None,
            SendTimeoutError::Failed(e) => Some(e),
        }
    }
}
