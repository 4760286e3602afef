//! [`KafkaSettings`]: how the bridge reaches a Kafka cluster, the librdkafka
//! client configurations it builds from them, and topic creation.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::bridge::kafka::reason::kafka_error;
use crate::error::{Error, Result};

/// How to reach a Kafka cluster: `bootstrap.servers` plus any librdkafka
/// settings.
///
/// # Examples
///
/// ```
/// use millpond::KafkaSettings;
/// let s = KafkaSettings::new("127.0.0.1:9092").set("client.id", "billing");
/// assert_eq!(s.bootstrap_servers(), "127.0.0.1:9092");
/// ```
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    bootstrap: String,
    extra: Vec<(String, String)>,
}

impl KafkaSettings {
    /// Settings for the cluster at `bootstrap_servers` (`host:port[,…]`).
    ///
    /// See [`KafkaSettings`] for an example.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        KafkaSettings { bootstrap: bootstrap_servers.into(), extra: Vec::new() }
    }

    /// Adds a librdkafka setting (it overrides the bridge's defaults).
    ///
    /// See [`KafkaSettings`] for an example.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((key.into(), value.into()));
        self
    }

    /// The bootstrap servers.
    ///
    /// See [`KafkaSettings`] for an example.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// Creates a topic on the cluster with `partitions` partitions
    /// (replication factor 1), doing nothing if it exists already.
    ///
    /// ```no_run
    /// millpond::KafkaSettings::new("127.0.0.1:9092").create_topic("orders", 3)?;
    /// # Ok::<(), millpond::Error>(())
    /// ```
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::types::RDKafkaErrorCode;
        let admin: AdminClient<rdkafka::client::DefaultClientContext> =
            self.client(&[]).create().map_err(|e| Error::Kafka { reason: kafka_error("create admin client", e) })?;
        let partitions = i32::try_from(partitions).unwrap_or(i32::MAX);
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = block_on(admin.create_topics([&topic], &opts))
            .map_err(|e| Error::Kafka { reason: kafka_error("create topic", e) })?;
        for r in results {
            match r {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => return Err(Error::Kafka { reason: kafka_error(&format!("create topic {t}"), e) }),
            }
        }
        Ok(())
    }

    /// A librdkafka configuration: `bootstrap.servers`, then `defaults`, then
    /// the settings added with [`set`](Self::set) (which override them).
    pub(crate) fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }
}

/// Runs a future to completion on this thread (rdkafka's admin API is
/// async; the bridge needs no executor otherwise).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}
