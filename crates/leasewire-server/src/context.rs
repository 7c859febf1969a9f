//! What every service of one server shares, handed to each as one value: the services are started with the
//! same four things, and a fifth would otherwise be threaded through every `start` again.

use crate::feed::ChangeFeed;
use crate::metrics::Metrics;
use leasewire_store::LeaseStore;
use std::sync::Arc;
use tokio::sync::watch;

/// The store, the change feed, the metrics and the shutdown signal of a server; cheap to clone.
#[derive(Clone)]
pub struct ServiceContext {
    /// Where bindings are committed and read.
    pub store: Arc<dyn LeaseStore>,
    /// Committed changes, in order, to the Active Leasequery connections.
    pub feed: ChangeFeed,
    /// Counters and gauges of every service.
    pub metrics: Arc<Metrics>,
    /// Turns true when the server stops: each service drains and ends.
    pub shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceContext").field("shutdown", &*self.shutdown.borrow()).finish_non_exhaustive()
    }
}
