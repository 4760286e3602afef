//! [`Transactions`]: what a broker keeps for its transactions (the
//! commit itself is in `broker/transactions.rs`).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::storage::transaction_log::{TransactionLog, Unsettled};

/// A broker's transaction machinery: its log, and what recovery found in it.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    pub(crate) log: Mutex<Option<Arc<TransactionLog>>>,
    /// The commits recovery found unsettled (between opening the log and
    /// the end of the broker's open).
    pub(crate) unsettled: Mutex<Unsettled>,
}
