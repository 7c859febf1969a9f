//! A server on a shared (PostgreSQL) store publishes its own commits through the store's change feed, like
//! every other server's: until that feed has published a commit, it stays counted as in flight, so an Active
//! Leasequery connection's CatchUpComplete base-time stays below it (ALQ-8.2-9).
//!
//! The store's change feed is played by hand here, so the test decides when the commit is published.

#[path = "../../leasewire-store/tests/pg/mod.rs"]
mod pg;
#[path = "../../leasewire/tests/support/relay.rs"]
#[allow(dead_code)] // the relay helper serves other tests too
mod relay;

use leasewire_server::config::Config;
use leasewire_server::context::ServiceContext;
use leasewire_server::feed::ChangeFeed;
use leasewire_server::metrics::Metrics;
use leasewire_server::udp::dhcp::DhcpService;
use leasewire_store::{LeaseStore, PgOptions, PgStore};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alq_8_2_9_own_commits_on_a_shared_store_stay_in_flight_until_its_feed_publishes_them() {
    let url = pg::Cluster::get().new_database();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as u32;
    let mut options = PgOptions::new(now, "a");
    options.guard_claims = true;
    let store = Arc::new(PgStore::open(&url, options).unwrap());
    let config = Config::parse(&format!(
        r#"
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:0"]
store = {{ kind = "postgres", url = "{url}" }}
[[subnet]]
subnet = "127.0.0.0/8"
pools = [{{ start = "127.41.0.1", end = "127.41.0.9" }}]
"#
    ))
    .unwrap();
    let feed = ChangeFeed::default();
    let mut subscriber = feed.subscribe();
    let (store_feed, changes) = tokio::sync::mpsc::channel(8);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = ServiceContext {
        store: store.clone(),
        feed: feed.clone(),
        metrics: Arc::new(Metrics::new()),
        shutdown: stop_rx,
    };
    let (running, done) = DhcpService::start_shared(&config, ctx, changes, now).await.unwrap();
    let server = running.local_addrs[0];
    let ip = tokio::task::spawn_blocking(move || {
        relay::Relay::new(server, Ipv4Addr::new(127, 41, 0, 254)).dora([2, 0, 0, 0, 41, 1], 1, Ipv4Addr::LOCALHOST)
    })
    .await
    .unwrap()
    .expect("a lease");

    // ACKed and durable, but the store's feed has not carried it: still in flight, whatever time passes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let floor = feed.undelivered_floor(u32::MAX);
    assert!(floor <= now + 60, "the commit is still counted in flight (floor {floor})");

    // The store's feed carries it: published, then out of flight.
    let change = store.get(ip).unwrap().expect("in the store");
    store_feed.send(vec![change.clone()]).await.unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(10), subscriber.recv()).await.unwrap().unwrap();
    assert_eq!(batch.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![change.seq]);
    // What stays is the floor of every server's commits not delivered yet: the time of the last change the
    // store's feed delivered (times never decrease in sequence order).
    let mut released = false;
    for _ in 0..400 {
        if feed.undelivered_floor(u32::MAX) == change.time {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(released, "published, so no longer in flight");
    stop.send(true).unwrap();
    drop(store_feed);
    done.await.unwrap();
}
