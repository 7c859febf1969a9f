//! Behaviour of the PostgreSQL lease store: the backend-independent suite against a real PostgreSQL, plus
//! what only a shared database does (arbitration between servers, the shared change feed, schema versions).

mod pg;
mod suite;

use leasewire_store::{BindingChange, DhcpState, LeaseStore, PgOptions, PgStore, StoreError};
use pg::Cluster;
use std::time::{Duration, Instant};
use suite::{Backend, T0, ip, lease};

/// A database of its own in the test process's cluster.
struct Postgres {
    url: String,
}

impl Postgres {
    fn new() -> Self {
        Self { url: Cluster::get().new_database() }
    }

    fn open_as(&self, origin: &str, now: u32, guard: bool) -> PgStore {
        let mut o = PgOptions::new(now, origin);
        o.guard_claims = guard;
        PgStore::open(&self.url, o).unwrap()
    }
}

impl Backend for Postgres {
    fn open(&self, now: u32) -> Box<dyn LeaseStore> {
        Box::new(self.open_as("test", now, false))
    }
}

behaviour_suite!(Postgres::new());

/// ALQ-8.2-10: history kept for the configured retention, then forgotten (the suite's check, named here).
#[test]
fn alq_8_2_10_retention_keeps_recent_transitions_and_forgets_old_ones() {
    suite::retention_keeps_recent_transitions_and_forgets_old_ones(&Postgres::new());
}

/// BLQ-8.2-11 (the suite's check, named here so the requirement index finds it).
#[test]
fn blq_8_2_11_a_window_takes_start_time_of_state_and_cltt() {
    suite::blq_8_2_11_a_window_takes_start_time_of_state_and_cltt(&Postgres::new());
}

// ---------------------------------------------------------------------------------------------------------
// Several servers on one database.

/// Two servers choose the same free address for different clients at the same moment: exactly one commit
/// wins, the other is refused with Conflict, and nothing of the refused batch is stored.
#[test]
fn two_servers_never_bind_one_address_to_two_clients() {
    let db = Postgres::new();
    let a = std::sync::Arc::new(db.open_as("a", T0, true));
    let b = std::sync::Arc::new(db.open_as("b", T0, true));
    let mut handles = Vec::new();
    for (store, client_base) in [(a.clone(), 0u32), (b.clone(), 1000)] {
        handles.push(std::thread::spawn(move || {
            let mut won = Vec::new();
            for n in 1..=200u32 {
                // Both servers walk the same addresses, each for its own clients.
                let p = store.commit(T0 + 1, vec![lease(n, client_base + n, b"r", b"x", T0)]);
                match p.wait() {
                    Ok(c) => won.push(c[0].clone()),
                    Err(StoreError::Conflict { ip: i }) => assert_eq!(i, ip(n)),
                    Err(e) => panic!("{e}"),
                }
            }
            won
        }));
    }
    let won: Vec<BindingChange> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(won.len(), 200, "every address went to exactly one client");
    for c in &won {
        assert_eq!(a.get(c.binding.ip).unwrap().unwrap().binding.hardware_address, c.binding.hardware_address);
    }
    // A renewal by the holder through the other server is fine; a claim by another client is not, until the
    // lease runs out.
    let held = a.get(ip(1)).unwrap().unwrap().binding;
    let mut renewal = held.clone();
    renewal.data_source = leasewire_store::DataSource::LOCAL;
    renewal.expires_at = Some(T0 + 7200);
    let through_b = b.commit(T0 + 2, vec![renewal]).wait().unwrap();
    let intruder = lease(1, 4242, b"r", b"x", T0 + 2);
    assert!(matches!(a.commit(T0 + 2, vec![intruder.clone()]).wait(), Err(StoreError::Conflict { .. })));
    // A stale expiry from a server that missed the renewal is refused too.
    let mut stale = held.clone();
    stale.state = DhcpState::Expired;
    stale.expires_at = None;
    assert!(matches!(a.commit(T0 + 3700, vec![stale]).wait(), Err(StoreError::Conflict { .. })));
    assert_eq!(b.get(ip(1)).unwrap().unwrap().seq, through_b[0].seq);
    let after_expiry = a.commit(T0 + 7201, vec![intruder]).wait().unwrap();
    assert_eq!(after_expiry[0].binding.hardware_address, suite::mac(4242));
}

/// A DECLINE is arbitrated like an allocation: server B's copy still shows client X on an address that
/// server A has since given to client Y (X's lease was released and the address re-used); X's DECLINE
/// through B is refused and Y's lease stays ACTIVE, untouched. The decliner's own live lease is abandoned
/// as before.
#[test]
fn a_decline_through_a_stale_server_leaves_another_clients_lease_alone() {
    let db = Postgres::new();
    let a = db.open_as("a", T0, true);
    let b = db.open_as("b", T0, true);
    let x_lease = lease(1, 1, b"r", b"x", T0);
    a.commit(T0, vec![x_lease.clone()]).wait().unwrap();
    let mut released = x_lease.clone();
    released.state = DhcpState::Released;
    released.expires_at = None;
    a.commit(T0 + 1, vec![released]).wait().unwrap();
    let y = a.commit(T0 + 2, vec![lease(1, 2, b"r", b"x", T0 + 2)]).wait().unwrap().remove(0);

    // B missed both changes: its copy is still X's lease. X declines through B.
    let mut abandoned = leasewire_store::Binding::new(ip(1), DhcpState::Abandoned, T0 + 3);
    abandoned.expires_at = Some(T0 + 1000);
    let refused = b.commit_expecting(T0 + 3, vec![abandoned.clone()], vec![x_lease.clone()]).wait();
    assert!(matches!(refused, Err(StoreError::Conflict { ip: i }) if i == ip(1)), "{refused:?}");
    let now = a.get(ip(1)).unwrap().unwrap();
    assert_eq!((now.seq, now.binding.state), (y.seq, DhcpState::Active), "Y's lease is untouched");
    assert_eq!(now.binding.hardware_address, suite::mac(2));

    // Y's own DECLINE (the address is in use by someone else) goes through.
    let mine = a.commit_expecting(T0 + 4, vec![abandoned], vec![y.binding]).wait().unwrap();
    assert_eq!(a.get(ip(1)).unwrap().unwrap().seq, mine[0].seq);
    assert_eq!(a.get(ip(1)).unwrap().unwrap().binding.state, DhcpState::Abandoned);
}

/// A batch with one contested address is refused whole; the others in the same group commit go through
/// and consume no sequence number for it.
#[test]
fn a_refused_batch_consumes_nothing_and_others_in_the_group_commit() {
    let db = Postgres::new();
    let a = db.open_as("a", T0, true);
    a.commit(T0, vec![lease(1, 1, b"r", b"x", T0)]).wait().unwrap();
    let refused = a.commit(T0, vec![lease(2, 2, b"r", b"x", T0), lease(1, 9, b"r", b"x", T0)]);
    let fine = a.commit(T0, vec![lease(3, 3, b"r", b"x", T0)]);
    assert!(matches!(refused.wait(), Err(StoreError::Conflict { ip: i }) if i == ip(1)));
    assert_eq!(fine.wait().unwrap()[0].seq, 2);
    assert_eq!(a.get(ip(2)).unwrap(), None);
    assert_eq!(a.last_seq().unwrap(), 2);
}

/// Records written by another server read as REMOTE (RFC 6926 §6.2.8 data-source, BLQ-6.2.8-2: servers sharing
/// a database each report what they know of an address, and say whose it is); one's own as written.
#[test]
fn rows_of_another_server_read_with_data_source_remote() {
    let db = Postgres::new();
    let a = db.open_as("a", T0, true);
    let b = db.open_as("b", T0, true);
    let mine = a.commit(T0, vec![lease(1, 1, b"r", b"x", T0)]).wait().unwrap().remove(0);
    assert!(!mine.binding.data_source.is_remote());
    assert_eq!(a.get(ip(1)).unwrap().unwrap(), mine);
    let theirs = b.get(ip(1)).unwrap().unwrap();
    assert!(theirs.binding.data_source.is_remote());
    assert_eq!(theirs.seq, mine.seq);
    assert!(b.by_hardware_address(1, &suite::mac(1)).unwrap()[0].binding.data_source.is_remote());
}

fn recv_until(rx: &mut tokio::sync::mpsc::Receiver<Vec<BindingChange>>, seq: u64) -> Vec<BindingChange> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.last().is_none_or(|c: &BindingChange| c.seq < seq) {
        assert!(Instant::now() < deadline, "feed stalled at {:?} waiting for {seq}", got.last().map(|c| c.seq));
        match rx.try_recv() {
            Ok(batch) => got.extend(batch),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("feed ended: {e}"),
        }
    }
    got
}

/// The shared feed: every server's commits, in sequence order, gap-free, each once; the other server's
/// marked REMOTE.
#[test]
fn the_shared_feed_carries_every_servers_commits_in_order() {
    let db = Postgres::new();
    let a = std::sync::Arc::new(db.open_as("a", T0, false));
    let b = std::sync::Arc::new(db.open_as("b", T0, false));
    // A long poll: delivery must come from the notifications.
    let mut feed = a.follow(0, Duration::from_secs(3600));
    let writers: Vec<_> = [(a.clone(), 0u32), (b.clone(), 500)]
        .into_iter()
        .map(|(s, base)| {
            std::thread::spawn(move || {
                let pendings: Vec<_> =
                    (0..300).map(|n| s.commit(T0, vec![lease(base + n, base + n, b"r", b"x", T0)])).collect();
                pendings.into_iter().for_each(|p| drop(p.wait().unwrap()));
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    let got = recv_until(&mut feed, 600);
    assert_eq!(got.iter().map(|c| c.seq).collect::<Vec<_>>(), (1..=600).collect::<Vec<_>>());
    for c in &got {
        let by_b = u32::from(c.binding.ip) - u32::from(ip(0)) >= 500;
        assert_eq!(c.binding.data_source.is_remote(), by_b, "{c:?}");
    }
}

/// A listener whose connection is killed reconnects and resumes from its last sequence number: nothing
/// committed meanwhile is lost.
#[test]
fn a_disconnected_feed_catches_up_from_its_last_sequence() {
    let db = Postgres::new();
    let a = db.open_as("a", T0, false);
    let b = db.open_as("b", T0, false);
    let mut feed = a.follow(0, Duration::from_secs(3600));
    b.commit(T0, vec![lease(1, 1, b"r", b"x", T0)]).wait().unwrap();
    assert_eq!(recv_until(&mut feed, 1).len(), 1);
    let dbname = db.url.rsplit('=').next().unwrap().to_string();
    let killed = Cluster::get().psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{dbname}' \
             AND query LIKE 'LISTEN%' OR (datname = '{dbname}' AND state = 'idle' AND query LIKE '%seq > $1%')"
        ),
    );
    assert!(killed.trim().parse::<u32>().unwrap() >= 1, "no listener connection found to kill");
    // Committed while the listener is down.
    for n in 2..=50 {
        b.commit(T0, vec![lease(n, n, b"r", b"x", T0)]).wait().unwrap();
    }
    let got = recv_until(&mut feed, 50);
    assert_eq!(got.iter().map(|c| c.seq).collect::<Vec<_>>(), (2..=50).collect::<Vec<_>>());
}

/// The schema is versioned: a database migrated by a newer leasewire is refused with a clear error.
#[test]
fn a_newer_schema_is_refused() {
    let db = Postgres::new();
    drop(db.open_as("a", T0, false));
    let dbname = db.url.rsplit('=').next().unwrap().to_string();
    Cluster::get().psql(&dbname, "UPDATE lw_schema SET version = 99");
    let err = PgStore::open(&db.url, PgOptions::new(T0, "a")).unwrap_err();
    assert!(matches!(err, StoreError::NewerPostgresSchema { found: 99, .. }), "{err}");
    assert!(err.to_string().contains(&dbname), "{err}");
}

/// Several servers opening an empty database at once create the schema once and agree on its counters.
#[test]
fn concurrent_first_opens_create_the_schema_once() {
    let db = Postgres::new();
    let url = db.url.clone();
    let opens: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url, PgOptions::new(T0 + i, format!("s{i}"))).map(|_| ()))
        })
        .collect();
    for o in opens {
        o.join().unwrap().unwrap();
    }
    let s = db.open_as("x", T0 + 100, false);
    assert!(s.history_horizon().unwrap() < T0 + 4);
    assert_eq!(s.last_seq().unwrap(), 0);
}

/// An unreachable database is an error naming it, not a hang or a panic.
#[test]
fn an_unreachable_database_is_an_error_naming_it() {
    let mut o = PgOptions::new(T0, "a");
    o.connect_timeout = Duration::from_secs(2);
    let err = PgStore::open("host=/nonexistent-dir port=5999 user=postgres dbname=nothere", o).unwrap_err();
    assert!(err.to_string().contains("nothere"), "{err}");
    let err = PgStore::open("postgresql://[bad", PgOptions::new(T0, "a")).unwrap_err();
    assert!(matches!(err, StoreError::PostgresConfig { .. }), "{err}");
}

/// Opening (and failing to open) from inside an async runtime, as a server might, neither panics nor blocks
/// the runtime for good; the store works there and is dropped there.
#[test]
fn open_use_and_drop_inside_another_runtime() {
    let db = Postgres::new();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut o = PgOptions::new(T0, "a");
        o.connect_timeout = Duration::from_secs(2);
        assert!(PgStore::open("host=/nonexistent-dir port=5999 user=postgres dbname=nothere", o).is_err());
        let store = db.open_as("a", T0, true);
        let mut c = store.commit(T0, vec![lease(1, 1, b"r", b"x", T0)]).await.unwrap();
        assert_eq!(store.get(ip(1)).unwrap(), Some(c.remove(0)));
        drop(store);
    });
}
