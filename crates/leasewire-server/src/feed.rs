//! The change feed: committed binding changes, in commit (sequence) order, for the leasequery services.
//!
//! A bounded broadcast of batches: the engine never waits on a subscriber. A subscriber that falls more than
//! the capacity behind gets `Lagged` and must recover from the store (Active Leasequery does this through
//! catch-up).
//!
//! A batch is what one or a few group commits made durable (at most [`MAX_BATCH`] changes), so under load a
//! subscriber wakes once per group rather than once per change; each change is behind its own `Arc`, so every
//! Active Leasequery connection can queue it without a copy.
//!
//! The ring is the memory bound for a subscriber that stopped reading (a connection blocked on a write for up
//! to the send timeout): at most `capacity` × [`MAX_BATCH`] changes are held for it before it lags.

use leasewire_store::BindingChange;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Default number of batches a subscriber may fall behind before it lags: at most 262,144 changes, about 8,000
/// group commits of typical size.
pub const DEFAULT_CAPACITY: usize = 8_192;

/// The most changes in one batch: a larger publish goes out as several.
pub const MAX_BATCH: usize = 32;

/// Changes committed together, in sequence order.
pub type Batch = Arc<[Arc<BindingChange>]>;

/// The publishing side of the feed (cheap to clone).
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Batch>,
    in_flight: Arc<InFlight>,
}

/// Commit times of changes decided but not yet published (a multiset), so an Active Leasequery connection
/// can tell how far back a change it has not received yet can be (see [`ChangeFeed::undelivered_floor`]).
#[derive(Debug, Default)]
struct InFlight(Mutex<BTreeMap<u32, usize>>);

impl InFlight {
    fn times(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, usize>> {
        // Counting only: a panic elsewhere cannot leave it half-updated.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ChangeFeed {
    /// A feed holding up to `capacity` batches per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        Self { tx: broadcast::channel(capacity.max(1)).0, in_flight: Arc::default() }
    }

    /// A commit stamped `time` is about to be queued: until [`Publisher::publish`] releases it, no
    /// [`ChangeFeed::undelivered_floor`] passes it. Call before the commit can become visible in the store.
    pub fn entering(&self, time: u32) {
        *self.in_flight.times().entry(time).or_default() += 1;
    }

    fn leave(&self, time: u32) {
        let mut times = self.in_flight.times();
        if let Some(n) = times.get_mut(&time) {
            *n -= 1;
            if *n == 0 {
                times.remove(&time);
            }
        }
    }

    /// For an Active Leasequery connection subscribed to this feed, right after a catch-up read and *before*
    /// it takes what its subscription holds: every change that neither the read saw nor the connection will
    /// find in its subscription now is stamped `floor` or later. Such a change was either decided but not yet
    /// published (it is in flight: at or after the oldest in-flight time) or decided from now on (at or after
    /// `now`). Its CatchUpComplete base-time stays below it, so a requestor that reconnects catches it up.
    pub fn undelivered_floor(&self, now: u32) -> u32 {
        self.in_flight.times().keys().next().map_or(now, |&t| t.min(now))
    }

    /// Publish committed changes (in sequence order), in batches of at most [`MAX_BATCH`].
    pub fn publish(&self, changes: Vec<BindingChange>) {
        let mut changes = changes.into_iter().map(Arc::new).peekable();
        while changes.peek().is_some() {
            let batch: Batch = changes.by_ref().take(MAX_BATCH).collect();
            // No subscribers is fine: nobody is watching.
            let _ = self.tx.send(batch);
        }
    }

    /// Subscribe: receives every batch published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Batch> {
        self.tx.subscribe()
    }

    /// Number of current subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// A handle that publishes on this feed from a thread of its own (named `leasewire-feed`), which runs
    /// until every clone of the handle is dropped.
    ///
    /// Why: publishing wakes every Active Leasequery connection, and those wake-ups take locks that the
    /// connections' own (lower priority) threads hold at times. Done on the DHCP path, that would make a
    /// client's ACK wait behind the requestors; a [`Publisher`] costs the DHCP path one lock-free queue push.
    /// Subscribing before a catch-up scan still leaves no gap: a change is committed before it is queued
    /// here, so it is either published after the subscription or visible to the scan.
    pub fn publisher(&self) -> std::io::Result<Publisher> {
        let (tx, rx) = std::sync::mpsc::channel::<(Vec<BindingChange>, Vec<u32>)>();
        let feed = self.clone();
        std::thread::Builder::new().name("leasewire-feed".into()).spawn(move || {
            while let Ok((mut changes, mut released)) = rx.recv() {
                // Whatever else queued meanwhile goes in the same batches (still in sequence order).
                while let Ok((more, times)) = rx.try_recv() {
                    changes.extend(more);
                    released.extend(times);
                }
                feed.publish(changes);
                // Only now are they out of flight: a subscriber finds them in its subscription.
                for t in released {
                    feed.leave(t);
                }
            }
        })?;
        Ok(Publisher { tx })
    }
}

/// Publishes on a [`ChangeFeed`] through its thread (see [`ChangeFeed::publisher`]).
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: std::sync::mpsc::Sender<(Vec<BindingChange>, Vec<u32>)>,
}

impl Publisher {
    /// Queue committed changes (in sequence order) for publishing, and the times [`ChangeFeed::entering`]
    /// registered for the commits they came from (also for commits that failed: nothing of theirs is on its
    /// way), released once published; never blocks.
    pub fn publish(&self, changes: Vec<BindingChange>, released: Vec<u32>) {
        if !changes.is_empty() || !released.is_empty() {
            // The thread ends only when every Publisher is gone, so the send cannot fail while `self` lives.
            let _ = self.tx.send((changes, released));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChangeFeed;
    use leasewire_store::{Binding, BindingChange, DhcpState};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn change(seq: u64) -> BindingChange {
        let binding = Binding::new(Ipv4Addr::new(10, 0, 0, seq as u8), DhcpState::Active, 100);
        BindingChange { seq, time: 100, binding }
    }

    #[tokio::test]
    async fn a_publish_is_one_batch_in_order_and_empty_publishes_send_nothing() {
        let feed = ChangeFeed::default();
        let mut rx = feed.subscribe();
        feed.publish(Vec::new());
        feed.publish(vec![change(1), change(2), change(3)]);
        let batch = rx.recv().await.unwrap();
        assert_eq!(batch.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(rx.try_recv().is_err(), "the empty publish sent nothing");
    }

    // ALQ-8.2-9: the floor stays at an in-flight commit until the publisher has broadcast it.
    #[tokio::test]
    async fn the_undelivered_floor_holds_until_a_commit_is_published() {
        let feed = ChangeFeed::default();
        let mut rx = feed.subscribe();
        assert_eq!(feed.undelivered_floor(500), 500, "nothing in flight: now");
        feed.entering(100);
        feed.entering(100);
        feed.entering(200);
        assert_eq!(feed.undelivered_floor(500), 100);
        let publisher = feed.publisher().unwrap();
        publisher.publish(vec![change(1)], vec![100]);
        rx.recv().await.unwrap();
        // Released right after the broadcast, on the publisher's thread (waited for, not timed).
        let wait_until = |done: &dyn Fn() -> bool| {
            for _ in 0..2000 {
                if done() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            panic!("the publisher thread did not get there");
        };
        wait_until(&|| feed.in_flight.times().get(&100) == Some(&1));
        assert_eq!(feed.undelivered_floor(500), 100, "one commit stamped 100 is still in flight");
        publisher.publish(Vec::new(), vec![100]);
        wait_until(&|| !feed.in_flight.times().contains_key(&100));
        assert_eq!(feed.undelivered_floor(500), 200, "a failed commit releases its time too");
        assert_eq!(feed.undelivered_floor(150), 150, "never later than now");
    }

    #[tokio::test]
    async fn a_large_publish_is_split_so_a_stalled_subscriber_holds_a_bounded_amount() {
        let feed = ChangeFeed::new(2);
        let mut rx = feed.subscribe();
        feed.publish((1..=2 * super::MAX_BATCH as u64 + 1).map(change).collect());
        // Three batches into a ring of two: the stalled subscriber lags instead of holding them all.
        assert!(matches!(rx.recv().await, Err(tokio::sync::broadcast::error::RecvError::Lagged(1))));
        let sizes = [rx.recv().await.unwrap().len(), rx.recv().await.unwrap().len()];
        assert_eq!(sizes, [super::MAX_BATCH, 1]);
    }

    #[tokio::test]
    async fn the_publisher_thread_delivers_everything_in_order_and_ends_with_its_handles() {
        let feed = ChangeFeed::default();
        let mut rx = feed.subscribe();
        let publisher = feed.publisher().unwrap();
        for seq in 1..=100 {
            publisher.clone().publish(vec![change(seq)], Vec::new());
        }
        let mut seen = Vec::new();
        while seen.len() < 100 {
            let batch = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
            seen.extend(batch.iter().map(|c| c.seq));
        }
        assert_eq!(seen, (1..=100).collect::<Vec<_>>());
        // The thread holds a clone of the feed; once the publisher is gone and the thread ended, only ours
        // remains, and dropping it closes the channel.
        drop(publisher);
        drop(feed);
        let closed = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap();
        assert!(matches!(closed, Err(tokio::sync::broadcast::error::RecvError::Closed)));
    }
}
