//! Errors of the typed non-blocking and timed sends, which hand the value
//! back (as [`TrySendError`](crate::TrySendError) and
//! [`SendTimeoutError`](crate::SendTimeoutError) hand back the record).

use crate::error::Error;

/// Why [`TypedProducer::try_send`](crate::TypedProducer::try_send) did not
/// send.
///
/// # Examples
///
/// ```
/// use millpond::{Backlog, Broker, TopicConfig, TypedTrySendError};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedtryerr-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
/// let _slow = topic.group("slow")?.join()?; // an active group that commits nothing
/// let p = topic.typed_producer::<String>();
/// p.try_send("first".to_string()).map_err(|e| e.into_error())?;
/// match p.try_send("second".to_string()) {
///     Err(TypedTrySendError::Full(value)) => assert_eq!(value, "second"), // yours again
///     other => panic!("expected Full, got {other:?}"),
/// }
/// assert!(matches!(p.try_send("third".to_string()).unwrap_err().into_error(), millpond::Error::Full));
/// # drop(_slow); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TypedTrySendError<T> {
    /// The partition's backlog is at its limit; here is the value back.
    Full(T),
    /// Encoding or sending failed for another reason.
    Failed(Error),
}

/// Why [`TypedProducer::send_timeout`](crate::TypedProducer::send_timeout)
/// did not send.
///
/// # Examples
///
/// ```
/// use millpond::{Backlog, Broker, TopicConfig, TypedSendTimeoutError};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-typedtoerr-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("t", TopicConfig::default().max_backlog(Backlog::Records(1)))?;
/// let _slow = topic.group("slow")?.join()?;
/// let p = topic.typed_producer::<u64>();
/// p.send(&1)?;
/// let err = p.send_timeout(2, Duration::from_millis(10)).unwrap_err();
/// assert!(matches!(err, TypedSendTimeoutError::Timeout(2)));
/// assert_eq!(err.into_value(), Some(2));
/// # drop(_slow); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TypedSendTimeoutError<T> {
    /// The backlog stayed at its limit until the timeout; here is the value back.
    Timeout(T),
    /// Encoding or sending failed for another reason.
    Failed(Error),
}

impl<T> TypedTrySendError<T> {
    /// The value, if it was handed back.
    ///
    /// ```
    /// let e = millpond::TypedTrySendError::Full(7u8);
    /// assert_eq!(e.into_value(), Some(7));
    /// ```
    pub fn into_value(self) -> Option<T> {
        match self {
            TypedTrySendError::Full(v) => Some(v),
            TypedTrySendError::Failed(_) => None,
        }
    }

    /// As an [`Error`] ([`Error::Full`] for a full backlog), for `?`.
    ///
    /// See [`TypedTrySendError`] for an example.
    pub fn into_error(self) -> Error {
        match self {
            TypedTrySendError::Full(_) => Error::Full,
            TypedTrySendError::Failed(e) => e,
        }
    }
}

impl<T> TypedSendTimeoutError<T> {
    /// The value, if it was handed back.
    ///
    /// See [`TypedSendTimeoutError`] for an example.
    pub fn into_value(self) -> Option<T> {
        match self {
            TypedSendTimeoutError::Timeout(v) => Some(v),
            TypedSendTimeoutError::Failed(_) => None,
        }
    }

    /// As an [`Error`] ([`Error::Full`] for a timeout), for `?`.
    ///
    /// ```
    /// let e = millpond::TypedSendTimeoutError::Timeout(7u8);
    /// assert!(matches!(e.into_error(), millpond::Error::Full));
    /// ```
    pub fn into_error(self) -> Error {
        match self {
            TypedSendTimeoutError::Timeout(_) => Error::Full,
            TypedSendTimeoutError::Failed(e) => e,
        }
    }
}

impl<T> std::fmt::Display for TypedTrySendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypedTrySendError::Full(_) => f.write_str("the partition's backlog is full"),
            TypedTrySendError::Failed(e) => e.fmt(f),
        }
    }
}

impl<T> std::fmt::Display for TypedSendTimeoutError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypedSendTimeoutError::Timeout(_) => f.write_str("timed out waiting for room in the partition's backlog"),
            TypedSendTimeoutError::Failed(e) => e.fmt(f),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for TypedTrySendError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TypedTrySendError::Full(_) => None,
            TypedTrySendError::Failed(e) => Some(e),
        }
    }
}

impl<T: std::fmt::Debug> std::error::Error for TypedSendTimeoutError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TypedSendTimeoutError::Timeout(_) => None,
            TypedSendTimeoutError::Failed(e) => Some(e),
        }
    }
}
