//! [`ConsumerChannel`]: a consumer on its own thread, feeding a
//! `crossbeam_channel::Receiver` that works with `select!`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};

use crate::client::consume::consumer::Consumer;
use crate::error::{Error, Result};
use crate::storage::background::spawn_thread;
use crate::storage::message::Message;
use crate::storage::notify::WaitCell;

/// A [`Consumer`] running on a thread of its own, forwarding each record into
/// a bounded crossbeam channel. Made by [`Consumer::into_channel`].
///
/// The channel yields `Ok(message)` for records and at most one `Err` for a
/// failure other than closing, after which the thread stops; when the broker
/// closes or the topic is deleted the channel simply disconnects. The one
/// exception is [`Error::Lagged`] (the consumer fell behind retention): it
/// is passed on, and the thread goes on from where the consumer resumed. A full
/// channel holds the thread back, so back-pressure reaches the log, not
/// memory. Dropping the `ConsumerChannel` stops and joins the thread;
/// [`ConsumerChannel::stop`] does the same and hands the consumer back,
/// positioned just after the last record it put into the channel.
///
/// # Examples
///
/// ```
/// use crossbeam_channel::{select, tick};
/// use millpond::{Broker, Record, StartFrom, TopicConfig};
/// use std::time::Duration;
/// # let dir = std::env::temp_dir().join(format!("millpond-doc-channel-{}", std::process::id()));
/// let broker = Broker::open(&dir)?;
/// let orders = broker.create_topic("orders", TopicConfig::default())?;
/// let payments = broker.create_topic("payments", TopicConfig::default())?;
/// let order_rx = orders.consumer(StartFrom::Earliest)?.into_channel(64);
/// let payment_rx = payments.consumer(StartFrom::Earliest)?.into_channel(64);
/// orders.producer().send(Record::new("order-1"))?;
/// payments.producer().send(Record::new("payment-1"))?;
///
/// let ticker = tick(Duration::from_secs(5));
/// let mut seen = Vec::new();
/// while seen.len() < 2 {
///     select! {
///         recv(order_rx.receiver()) -> m => seen.push(m.unwrap()?.value().to_vec()),
///         recv(payment_rx.receiver()) -> m => seen.push(m.unwrap()?.value().to_vec()),
///         recv(ticker) -> _ => panic!("nothing arrived"),
///     }
/// }
/// seen.sort();
/// assert_eq!(seen, [b"order-1".to_vec(), b"payment-1".to_vec()]);
/// let consumer = order_rx.stop().expect("the consumer thread did not panic");
/// assert_eq!(consumer.position(0)?, 1);
/// # drop(payment_rx); drop(broker); std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ConsumerChannel {
    rx: Receiver<Result<Message>>,
    stop: Arc<AtomicBool>,
    cell: Arc<WaitCell>,
    thread: Option<JoinHandle<Consumer>>,
}

impl std::fmt::Debug for ConsumerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerChannel").field("buffered", &self.rx.len()).finish()
    }
}

/// How often a thread blocked on a full channel checks for a stop request.
const STOP_CHECK: Duration = Duration::from_millis(20);

impl ConsumerChannel {
    pub(crate) fn spawn(mut consumer: Consumer, capacity: usize) -> ConsumerChannel {
        let (tx, rx) = bounded(capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let cell = consumer.set_interrupt(Arc::clone(&stop));
        let flag = Arc::clone(&stop);
        let thread = spawn_thread(format!("millpond-consumer-{}", consumer.topic().name()), move || {
            forward(&mut consumer, &tx, &flag);
            consumer.clear_interrupt();
            consumer
        });
        match thread {
            Ok(handle) => ConsumerChannel { rx, stop, cell, thread: Some(handle) },
            Err(e) => {
                // No thread: the channel reports why and is disconnected.
                let (tx, rx) = bounded(1);
                let _ = tx.send(Err(e)); // cannot fail: capacity 1
                ConsumerChannel { rx, stop, cell, thread: None }
            }
        }
    }

    /// The receiving end, for `recv`, `iter` or `select!`. It may be cloned.
    ///
    /// See [`ConsumerChannel`] for an example.
    pub fn receiver(&self) -> &Receiver<Result<Message>> {
        &self.rx
    }

    /// Stops the thread and returns the consumer, positioned after the last
    /// record sent into the channel (records still buffered in the channel
    /// stay readable from [`receiver`](ConsumerChannel::receiver) clones).
    /// `None` if the thread could not be started or panicked.
    ///
    /// See [`ConsumerChannel`] for an example.
    pub fn stop(mut self) -> Option<Consumer> {
        self.halt()
    }

    fn halt(&mut self) -> Option<Consumer> {
        self.stop.store(true, Ordering::SeqCst);
        self.cell.wake();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for ConsumerChannel {
    fn drop(&mut self) {
        let _ = self.halt(); // the consumer is not wanted back
    }
}

/// The bridge thread's loop: receive, forward, until stopped, closed or
/// disconnected.
fn forward(consumer: &mut Consumer, tx: &Sender<Result<Message>>, stop: &AtomicBool) {
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let item = match consumer.recv_timeout(Duration::from_secs(3600)) {
            Ok(Some(m)) => Ok(m),
            // Interrupted (by the bridge's stop or a `WakeupHandle`) or
            // timed out: re-check the flag.
            Ok(None) | Err(Error::Interrupted) => continue,
            Err(Error::Closed | Error::TopicDeleted { .. }) => return,
            Err(e) => Err(e),
        };
        // `Lagged` is reported and the thread goes on at the log start (the
        // consumer already moved there), as a tokio receiver stays
        // subscribed; any other failure is the channel's last item.
        let last = matches!(&item, Err(e) if !matches!(e, Error::Lagged { .. }));
        let mut item = item;
        loop {
            match tx.send_timeout(item, STOP_CHECK) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(back)) => {
                    if stop.load(Ordering::SeqCst) {
                        // Hand the consumer back positioned at the record
                        // that never made it into the channel. The offset was
                        // just read, so it is in range unless retention
                        // removed it meanwhile; then the position stays after it.
                        if let Ok(m) = &back {
                            let _ = consumer.seek(m.partition(), m.offset());
                        }
                        return;
                    }
                    item = back;
                }
                Err(SendTimeoutError::Disconnected(_)) => return,
            }
        }
        if last {
            return;
        }
    }
}

impl Consumer {
    /// Moves this consumer onto a thread of its own that forwards records
    /// into a bounded `crossbeam_channel` of `capacity`, so a service can
    /// `select!` over topics, timers and its own channels.
    ///
    /// See [`ConsumerChannel`] for an example.
    pub fn into_channel(self, capacity: usize) -> ConsumerChannel {
        ConsumerChannel::spawn(self, capacity)
    }
}
