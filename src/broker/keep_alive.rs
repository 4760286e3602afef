//! [`KeepAlive`]: what every user-held handle of a broker carries, so the
//! broker closes when the last of them goes (or on an explicit close).

use std::sync::Arc;

use crate::broker::shared::Shared;
use crate::storage::health::{BackgroundError, BackgroundTask};

/// Closes the broker when the last handle that holds it goes away.
///
/// A [`Broker`](crate::Broker) and every [`Topic`](crate::Topic) hold one
/// `Arc<KeepAlive>`; producers, consumers, groups and group members hold a
/// `Topic`, so they keep the broker open too. What the broker runs for
/// itself (the maintenance thread, the pre-fault thread) holds only the
/// [`Shared`] state, or a `Weak` of it, never a `KeepAlive`: otherwise the
/// broker would keep itself open for ever.
pub(crate) struct KeepAlive {
    shared: Arc<Shared>,
}

impl KeepAlive {
    /// The token for a broker just opened.
    pub(crate) fn new(shared: Arc<Shared>) -> KeepAlive {
        KeepAlive { shared }
    }

    /// The state the handles share.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Err(e) = self.shared.close() {
            // Drop cannot return the error; callers who need it use
            // `Broker::close`. It is still reported rather than swallowed.
            self.shared.health.report(BackgroundError::new(BackgroundTask::Close, e));
        }
    }
}
