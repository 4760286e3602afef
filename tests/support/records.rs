//! Records as the tests send and remember them, and reading them back.

use millpond::{Broker, Consumer, Message, Producer, Record, RecordId, StartFrom, Topic};

/// A record as the tests remember it: what was written at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Stored {
    /// Everything observable about a received message.
    pub fn of(m: &Message) -> Stored {
        Stored {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: m.timestamp(),
            key: m.key().map(<[u8]>::to_vec),
            value: (!m.is_tombstone()).then(|| m.value().to_vec()),
            headers: m.headers().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
        }
    }
}

/// What a test sends, kept so that it can check what comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Vec<(String, Vec<u8>)>,
    /// An explicit partition, if any.
    pub partition: Option<u32>,
}

impl Spec {
    /// A keyless record with `value` at `timestamp`.
    pub fn value(value: impl Into<Vec<u8>>, timestamp: i64) -> Spec {
        Spec { key: None, value: Some(value.into()), timestamp, headers: Vec::new(), partition: None }
    }

    /// A keyed record.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, timestamp: i64) -> Spec {
        Spec { key: Some(key.into()), ..Spec::value(value, timestamp) }
    }

    /// A tombstone for `key`.
    pub fn tombstone(key: impl Into<Vec<u8>>, timestamp: i64) -> Spec {
        Spec { key: Some(key.into()), value: None, timestamp, headers: Vec::new(), partition: None }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Spec {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sends to `partition` explicitly.
    pub fn in_partition(mut self, partition: u32) -> Spec {
        self.partition = Some(partition);
        self
    }

    /// The record to send (borrowing this spec's bytes).
    pub fn record(&self) -> Record<'_> {
        let mut r = match &self.value {
            Some(v) => Record::new(v.as_slice()),
            None => Record::tombstone(self.key.as_deref().expect("a tombstone has a key")),
        };
        if let (Some(k), Some(_)) = (&self.key, &self.value) {
            r = r.key(k.as_slice());
        }
        for (n, v) in &self.headers {
            r = r.header(n.as_str(), v.as_slice());
        }
        if let Some(p) = self.partition {
            r = r.partition(p);
        }
        r.timestamp(self.timestamp)
    }

    /// What a consumer must receive for this record stored at `id`.
    pub fn stored(&self, id: RecordId) -> Stored {
        Stored {
            partition: id.partition,
            offset: id.offset,
            timestamp: self.timestamp,
            key: self.key.clone(),
            value: self.value.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// Sends every spec one by one, returning what was stored.
pub fn send_all(p: &Producer, specs: &[Spec]) -> Vec<Stored> {
    specs
        .iter()
        .map(|s| {
            let id = p.send(s.record()).unwrap_or_else(|e| panic!("send failed: {e}"));
            s.stored(id)
        })
        .collect()
}

/// Reads with `try_recv` until the consumer is caught up (`Ok(None)`),
/// panicking on an error. At most `cap` messages.
pub fn drain(c: &mut Consumer, cap: usize) -> Vec<Message> {
    let mut out = Vec::new();
    while out.len() < cap {
        match c.try_recv() {
            Ok(Some(m)) => out.push(m),
            Ok(None) => break,
            Err(e) => panic!("unexpected error while reading after {} messages: {e}", out.len()),
        }
    }
    out
}

/// Everything a fresh consumer reads from the earliest offset (panics on
/// errors), as [`Stored`] values.
pub fn read_all(topic: &Topic) -> Vec<Stored> {
    let mut c = topic.consumer(StartFrom::Earliest).expect("consumer");
    drain(&mut c, usize::MAX).iter().map(Stored::of).collect()
}

/// Sorts by (partition, offset), the order the tests compare in.
pub fn by_position(mut v: Vec<Stored>) -> Vec<Stored> {
    v.sort_by_key(|s| (s.partition, s.offset));
    v
}

/// The values of every record of `topic`, sorted (panics on errors).
pub fn sorted_values(broker: &Broker, topic: &str) -> Vec<Vec<u8>> {
    let mut c = broker.topic(topic).unwrap().consumer(StartFrom::Earliest).unwrap();
    let mut v: Vec<Vec<u8>> = c.try_iter().map(|m| m.unwrap().value().to_vec()).collect();
    v.sort();
    v
}
