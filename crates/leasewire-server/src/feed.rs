//! The change feed: committed binding changes, in commit (sequence) order, for the leasequery services.
//!
//! A bounded broadcast: the engine never waits on a subscriber. A subscriber that falls more than the capacity
//! behind gets `Lagged` and must recover from the store (Active Leasequery does this through catch-up).

use leasewire_store::BindingChange;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Default number of changes a subscriber may fall behind before it lags.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// The publishing side of the feed (cheap to clone).
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<BindingChange>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ChangeFeed {
    /// A feed holding up to `capacity` changes per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity.max(1)).0 }
    }

    /// Publish committed changes (in sequence order).
    pub fn publish(&self, changes: Vec<BindingChange>) {
        for c in changes {
            // No subscribers is fine: nobody is watching.
            let _ = self.tx.send(Arc::new(c));
        }
    }

    /// Subscribe: receives every change published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BindingChange>> {
        self.tx.subscribe()
    }

    /// Number of current subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
