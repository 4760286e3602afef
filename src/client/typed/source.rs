//! [`Source`]: what a [`TypedConsumer`](crate::TypedConsumer) reads from (a consumer or a group member).

use std::time::{Duration, Instant};

use crate::client::consume::consumer::Consumer;
use crate::client::consume::poll_future::PollFuture;
use crate::client::consume::recv_future::RecvFuture;
use crate::client::consume::stream::MessageStream;
use crate::client::consumer_group::member::GroupMember;
use crate::error::Result;
use crate::storage::message::Message;

/// Where a [`TypedConsumer`](crate::TypedConsumer) gets its messages: an independent [`Consumer`]
/// or a [`GroupMember`]. Sealed: those two are all there is.
///
/// # Examples
///
/// ```
/// use millpond::{Broker, Source, StartFrom, TopicConfig, TypedConsumer};
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-source-{}", std::process::id()));
/// // One function for typed reading from either kind of source.
/// fn total<S: Source>(c: &mut TypedConsumer<u64, millpond::Bincode, S>) -> millpond::Result<u64> {
///     c.try_iter().map(|m| m.map(|m| m.value)).sum()
/// }
/// let broker = Broker::open(&dir)?;
/// let topic = broker.create_topic("amounts", TopicConfig::default())?;
/// topic.typed_producer::<u64>().send_batch(&[1, 2, 3])?;
/// assert_eq!(total(&mut topic.typed_consumer(StartFrom::Earliest)?)?, 6);
/// let member = topic.group("sum")?.join()?;
/// assert_eq!(total(&mut TypedConsumer::new(member, millpond::Bincode))?, 6);
/// # drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Source: sealed::Sealed {
    #[doc(hidden)]
    fn source_try_recv(&mut self) -> Result<Option<Message>>;
    #[doc(hidden)]
    fn source_recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>>;
    #[doc(hidden)]
    fn source_recv(&mut self) -> Result<Message>;
    #[doc(hidden)]
    fn source_topic(&self) -> &str;
    #[doc(hidden)]
    fn source_poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>>;
    #[doc(hidden)]
    fn source_recv_async(&mut self) -> RecvFuture<'_>;
    #[doc(hidden)]
    fn source_poll_async(&mut self, max: usize) -> PollFuture<'_>;
    #[doc(hidden)]
    fn source_stream(&mut self) -> MessageStream<'_>;
}

mod sealed {
    use crate::client::consume::consumer::Consumer;
    use crate::client::consumer_group::member::GroupMember;

    /// Keeps `Source` implemented by millpond's receivers only.
    pub trait Sealed {}
    impl Sealed for Consumer {}
    impl Sealed for GroupMember {}
}

/// `Source` for a receiver whose inherent methods of the same names do the
/// work: `Consumer` and `GroupMember` have the same receive API, so both
/// implementations are this one.
macro_rules! source_by_delegation {
    ($receiver:ty) => {
        impl Source for $receiver {
            fn source_recv_async(&mut self) -> RecvFuture<'_> {
                self.recv_async()
            }
            fn source_poll_async(&mut self, max: usize) -> PollFuture<'_> {
                self.poll_async(max)
            }
            fn source_stream(&mut self) -> MessageStream<'_> {
                self.stream()
            }
            fn source_try_recv(&mut self) -> Result<Option<Message>> {
                self.try_recv()
            }
            fn source_recv_deadline(&mut self, deadline: Instant) -> Result<Option<Message>> {
                self.recv_deadline(deadline)
            }
            fn source_recv(&mut self) -> Result<Message> {
                self.recv()
            }
            fn source_topic(&self) -> &str {
                self.topic().name()
            }
            fn source_poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>> {
                self.poll(max, timeout)
            }
        }
    };
}

source_by_delegation!(Consumer);
source_by_delegation!(GroupMember);
