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
//!
//! The feed owns the lifecycle of a commit on its way (ALQ-8.2-9): a [`Ticket`] taken when the commit is
//! decided holds its time in flight until the commit's changes are broadcast (the ticket travels with them in
//! an [`Outgoing`] to the [`Publisher`]) or the commit fails (the ticket is dropped). A [`Subscription`] reads
//! the floor of what is still in flight together with what it holds ([`Subscription::catch_up_point`]), so
//! an Active Leasequery connection cannot read them in the wrong order.

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

    fn leave(&self, time: u32) {
        let mut times = self.times();
        if let Some(n) = times.get_mut(&time) {
            *n -= 1;
            if *n == 0 {
                times.remove(&time);
            }
        }
    }

    fn floor(&self, now: u32) -> u32 {
        self.times().keys().next().map_or(now, |&t| t.min(now))
    }
}

/// A commit on its way to the feed: while it lives, [`ChangeFeed::undelivered_floor`] stays at or below its
/// time. Taken with [`ChangeFeed::ticket`] before the commit can become visible in the store; released when
/// dropped — on the publisher's thread right after the broadcast when it travels with the commit's changes
/// ([`Outgoing::add`]), at once when the commit failed (nothing of it is on its way).
#[must_use = "dropping a ticket releases it: keep it until the commit's changes are handed to the publisher"]
#[derive(Debug)]
pub struct Ticket {
    in_flight: Arc<InFlight>,
    time: u32,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.in_flight.leave(self.time);
    }
}

/// Committed changes (in sequence order) and the tickets of the commits they came from, gathered until they
/// are handed to the [`Publisher`] together.
#[derive(Debug, Default)]
pub struct Outgoing {
    changes: Vec<BindingChange>,
    tickets: Vec<Ticket>,
}

impl Outgoing {
    /// Add a commit's changes, and its ticket (released once the changes are broadcast).
    pub fn add(&mut self, changes: impl IntoIterator<Item = BindingChange>, ticket: Option<Ticket>) {
        self.changes.extend(changes);
        self.tickets.extend(ticket);
    }

    /// Nothing to publish and nothing to release.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.tickets.is_empty()
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

    /// A commit stamped `time` is about to be queued: until the returned ticket is released, no
    /// [`ChangeFeed::undelivered_floor`] passes it. Take it before the commit can become visible in the store.
    pub fn ticket(&self, time: u32) -> Ticket {
        *self.in_flight.times().entry(time).or_default() += 1;
        Ticket { in_flight: self.in_flight.clone(), time }
    }

    /// For an Active Leasequery connection subscribed to this feed, right after a catch-up read and *before*
    /// it takes what its subscription holds: every change that neither the read saw nor the connection will
    /// find in its subscription now is stamped `floor` or later. Such a change was either decided but not yet
    /// published (it is in flight: at or after the oldest in-flight time) or decided from now on (at or after
    /// `now`). Its CatchUpComplete base-time stays below it, so a requestor that reconnects catches it up.
    pub fn undelivered_floor(&self, now: u32) -> u32 {
        self.in_flight.floor(now)
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
    pub fn subscribe(&self) -> Subscription {
        Subscription { rx: self.tx.subscribe(), in_flight: self.in_flight.clone() }
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
        let (tx, rx) = std::sync::mpsc::channel::<Outgoing>();
        let feed = self.clone();
        std::thread::Builder::new().name("leasewire-feed".into()).spawn(move || {
            while let Ok(mut out) = rx.recv() {
                // Whatever else queued meanwhile goes in the same batches (still in sequence order).
                while let Ok(more) = rx.try_recv() {
                    out.changes.extend(more.changes);
                    out.tickets.extend(more.tickets);
                }
                feed.publish(out.changes);
                // Only now are they out of flight: a subscriber finds them in its subscription.
                drop(out.tickets);
            }
        })?;
        Ok(Publisher { tx })
    }
}

/// One subscriber's view of the feed: every batch published since it subscribed, and the in-flight floor.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Batch>,
    in_flight: Arc<InFlight>,
}

/// Where an Active Leasequery connection stands right after a catch-up read ([`Subscription::catch_up_point`]).
#[derive(Debug)]
pub struct CatchUpPoint {
    /// Every committed change that neither the read saw nor `queued` holds is stamped at or after this.
    pub floor: u32,
    /// What the subscription held, in sequence order.
    pub queued: Vec<Batch>,
    /// The subscription fell behind the ring: changes were lost to it, and the connection must recover.
    pub lagged: bool,
}

impl Subscription {
    /// The next batch.
    pub async fn recv(&mut self) -> Result<Batch, broadcast::error::RecvError> {
        self.rx.recv().await
    }

    /// The next batch if one is queued.
    pub fn try_recv(&mut self) -> Result<Batch, broadcast::error::TryRecvError> {
        self.rx.try_recv()
    }

    /// Call right after a catch-up read (ALQ-8.2-9): the floor of what is still on its way, *then* everything
    /// the subscription holds, in that order — a change published between the two is then in `queued`, and
    /// one published after is at or after `floor` — so CatchUpComplete's base-time can stay below every change
    /// the connection has not got yet (see [`ChangeFeed::undelivered_floor`]).
    pub fn catch_up_point(&mut self, now: u32) -> CatchUpPoint {
        let floor = self.in_flight.floor(now);
        let mut queued = Vec::new();
        let lagged = loop {
            match self.rx.try_recv() {
                Ok(batch) => queued.push(batch),
                Err(broadcast::error::TryRecvError::Lagged(_)) => break true,
                Err(_) => break false,
            }
        };
        CatchUpPoint { floor, queued, lagged }
    }
}

/// Publishes on a [`ChangeFeed`] through its thread (see [`ChangeFeed::publisher`]).
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: std::sync::mpsc::Sender<Outgoing>,
}

impl Publisher {
    /// Hand over what `out` gathered (leaving it empty): the changes are broadcast in order, then the tickets
    /// released; never blocks.
    pub fn publish(&self, out: &mut Outgoing) {
        if !out.is_empty() {
            // The thread ends only when every Publisher is gone, so the send cannot fail while `self` lives.
            let _ = self.tx.send(std::mem::take(out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ChangeFeed, Outgoing};
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
        let (first, second, third) = (feed.ticket(100), feed.ticket(100), feed.ticket(200));
        assert_eq!(feed.undelivered_floor(500), 100);
        let publisher = feed.publisher().unwrap();
        let mut out = Outgoing::default();
        out.add(vec![change(1)], Some(first));
        publisher.publish(&mut out);
        assert!(out.is_empty(), "handed over");
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
        drop(second);
        assert!(!feed.in_flight.times().contains_key(&100), "a failed commit's ticket is released when dropped");
        assert_eq!(feed.undelivered_floor(500), 200);
        assert_eq!(feed.undelivered_floor(150), 150, "never later than now");
        drop(third);
        assert_eq!(feed.undelivered_floor(500), 500);
    }

    // ALQ-8.2-9: the floor is read before what is queued, so a change is in one or at or after the other.
    #[tokio::test]
    async fn a_catch_up_point_holds_what_was_published_and_the_floor_of_what_was_not() {
        let feed = ChangeFeed::default();
        let mut sub = feed.subscribe();
        let published = feed.ticket(100);
        let _still_on_its_way = feed.ticket(150);
        feed.publish(vec![change(1)]);
        drop(published);
        let point = sub.catch_up_point(500);
        assert_eq!(point.floor, 150);
        assert_eq!(point.queued.iter().flat_map(|b| b.iter().map(|c| c.seq)).collect::<Vec<_>>(), vec![1]);
        assert!(!point.lagged);
        let small = ChangeFeed::new(1);
        let mut behind = small.subscribe();
        small.publish(vec![change(1)]);
        small.publish(vec![change(2)]);
        assert!(behind.catch_up_point(500).lagged, "a subscription past the ring says so");
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
            let mut out = Outgoing::default();
            out.add(vec![change(seq)], None);
            publisher.clone().publish(&mut out);
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
