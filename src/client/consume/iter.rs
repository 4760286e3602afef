//! [`Iter`] and [`TryIter`]: a consumer's records as iterators, ended by a
//! closed broker or a repeated error.

use crate::client::consume::consumer::Consumer;
use crate::error::{Error, Result};
use crate::storage::message::Message;

/// Blocking iterator from [`Consumer::iter`].
///
/// See [`Consumer::iter`] for an example.
#[derive(Debug)]
pub struct Iter<'c> {
    consumer: &'c mut Consumer,
    fuse: ErrorFuse,
}

impl Iterator for Iter<'_> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| blocking_item(self.consumer.recv()))
    }
}

/// An item of a blocking iterator over receive results: the iteration ends
/// when the broker closed or the topic was deleted; other errors are items.
pub(crate) fn blocking_item<T>(received: Result<T>) -> Option<Result<T>> {
    match received {
        Ok(m) => Some(Ok(m)),
        Err(Error::Closed | Error::TopicDeleted { .. }) => None,
        Err(e) => Some(Err(e)),
    }
}

/// An item of a non-blocking iterator: like [`blocking_item`], and the
/// iteration also ends when nothing more is available.
pub(crate) fn available_item<T>(received: Result<Option<T>>) -> Option<Result<T>> {
    blocking_item(received).and_then(Result::transpose)
}

/// Ends an iteration instead of yielding the same error twice in a row:
/// the reader stays where it is on damage, so every further call would
/// return it again, and a `for m in consumer.try_iter()` must not spin on
/// it. An error that does not repeat (`Lagged`, `Decode`, a damaged
/// partition a group member reports once) leaves the iteration going.
#[derive(Debug, Default)]
pub(crate) struct ErrorFuse {
    ended: bool,
    last_error: Option<String>,
}

impl ErrorFuse {
    /// The next item of the iteration: what `receive` gives, or `None`
    /// once the iteration ended.
    pub(crate) fn next<T>(&mut self, receive: impl FnOnce() -> Option<Result<T>>) -> Option<Result<T>> {
        if self.ended {
            return None;
        }
        self.pass(receive())
    }

    /// Whether the iteration ended on a repeated error.
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// Lets `item` through, unless it repeats the error just let through:
    /// then the iteration ends. For a stream, which receives between its
    /// own check of [`ended`](ErrorFuse::ended) and this.
    pub(crate) fn pass<T>(&mut self, item: Option<Result<T>>) -> Option<Result<T>> {
        match &item {
            Some(Err(e)) => {
                let text = e.to_string();
                if self.last_error.as_deref() == Some(text.as_str()) {
                    self.ended = true;
                    return None;
                }
                self.last_error = Some(text);
            }
            _ => self.last_error = None,
        }
        item
    }
}

/// Non-blocking iterator from [`Consumer::try_iter`]. Errors other than
/// closing are yielded as `Err`; it ends when nothing more is available.
///
/// See [`Consumer::try_iter`] for an example.
#[derive(Debug)]
pub struct TryIter<'c> {
    consumer: &'c mut Consumer,
    fuse: ErrorFuse,
}

impl Iterator for TryIter<'_> {
    type Item = Result<Message>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fuse.next(|| available_item(self.consumer.try_recv()))
    }
}

impl Consumer {
    /// A blocking iterator over records. It ends when the broker closes or
    /// the topic is deleted; other errors are yielded as `Err`. After an
    /// error that the next receive call would return again (damage such as
    /// [`Error::Corrupt`], a failed read) the iterator ends instead of
    /// yielding it a second time, so a loop over it never spins on the same
    /// error; [`Error::Lagged`] is yielded and iteration goes on, since the
    /// reader has already moved past it.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-iter-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// let closer = broker.clone();
    /// let closing = std::thread::spawn(move || { std::thread::sleep(std::time::Duration::from_millis(50)); closer.close() });
    /// let values: Vec<Vec<u8>> = c.iter().map(|m| m.map(|m| m.value().to_vec())).collect::<Result<_, _>>()?;
    /// assert_eq!(values, [b"0", b"1", b"2"]); // ended when the broker closed
    /// closing.join().expect("closed")?; // close finished writing before the directory goes
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn iter(&mut self) -> Iter<'_> {
        Iter { consumer: self, fuse: ErrorFuse::default() }
    }

    /// A non-blocking iterator over the records available now. Errors end
    /// it as they end [`Consumer::iter`]: an error that repeats is yielded
    /// once, [`Error::Lagged`] never ends it.
    ///
    /// ```
    /// use millpond::{Broker, Record, StartFrom, TopicConfig};
    /// # let dir = std::env::temp_dir().join(format!("millpond-doc-tryiter-{}", std::process::id()));
    /// let broker = Broker::open(&dir)?;
    /// let topic = broker.create_topic("t", TopicConfig::default())?;
    /// topic.producer().send_batch((0..3).map(|i| Record::new(format!("{i}"))))?;
    /// let mut c = topic.consumer(StartFrom::Earliest)?;
    /// assert_eq!(c.try_iter().count(), 3);
    /// assert_eq!(c.try_iter().count(), 0);
    /// # drop(c); drop(broker); std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_> {
        TryIter { consumer: self, fuse: ErrorFuse::default() }
    }
}
