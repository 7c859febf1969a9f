use super::*;
use crate::replica::{Replica, Via};
use leasewire_proto::{DhcpState, RelayAgentInfoBuilder};

const T0: u32 = 1_800_000_000;

fn lease(ip: Ipv4Addr, mac: u8, since: u32, cltt: u32, remote_id: &[u8]) -> Binding {
    let mut b = Binding::new(ip, DhcpState::Active, since);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, mac];
    b.client_id = Some(vec![1, 2, 0, 0, 0, 0, mac]);
    b.cltt = Some(cltt);
    b.expires_at = Some(cltt + 100);
    b.relay_agent_info =
        Some(RelayAgentInfoBuilder::new().circuit_id(b"port1").remote_id(remote_id).relay_id(b"relay-a").build());
    b
}

fn freed(ip: Ipv4Addr, state: DhcpState, at: u32) -> Binding {
    let mut b = Binding::new(ip, state, at);
    b.cltt = Some(at);
    b
}

fn at(r: &mut HistoryReader, key: Key, t: u32) -> Vec<Interval> {
    r.query(&Query { key, window: Window::At(t), now: T0 + 10_000 }).unwrap()
}

/// Leased, renewed, released, re-leased to another client, and a lease that ended without a message: the
/// answers at each moment, and the periods.
#[test]
fn who_held_it_at_each_moment_of_a_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    let ip = Ipv4Addr::new(10, 0, 0, 5);
    let mut rep = Replica::open(&path, &["127.0.0.1:67".into()]).unwrap();
    let ledger = [
        lease(ip, 1, T0, T0, b"r1"),             // created
        lease(ip, 1, T0, T0 + 50, b"r1"),        // renewed (state unchanged, cltt moves)
        freed(ip, DhcpState::Released, T0 + 80), // released
        lease(ip, 2, T0 + 200, T0 + 200, b"r2"), // re-leased to another client: lease to T0+300
        freed(ip, DhcpState::Expired, T0 + 302), // the server's expiry, a little after the lease end
    ];
    for b in &ledger {
        rep.apply(0, b, Some(changed_at(b)), Via::Active);
    }
    // A Bulk gap fill or seed that re-reports the current binding adds nothing.
    rep.apply(0, &ledger[4], Some(T0 + 400), Via::Bulk);
    rep.flush().unwrap();
    let mut r = HistoryReader::open(&path).unwrap();
    assert_eq!(r.events().unwrap(), 5);
    assert!(at(&mut r, Key::Ip(ip), T0 - 1).is_empty(), "before the first event: no answer");
    let a = at(&mut r, Key::Ip(ip), T0 + 60);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].held(), a[0].mac[5], a[0].from, a[0].to, a[0].events), (true, 1, T0, Some(T0 + 80), 2));
    assert_eq!(a[0].remote_id.as_deref(), Some(&b"r1"[..]));
    let a = at(&mut r, Key::Ip(ip), T0 + 100);
    assert_eq!((a[0].held(), a[0].state, a[0].from, a[0].to), (false, DhcpState::Released, T0 + 80, Some(T0 + 200)));
    let a = at(&mut r, Key::Ip(ip), T0 + 250);
    assert_eq!((a[0].mac[5], a[0].from, a[0].lease_end), (2, T0 + 200, Some(T0 + 300)));
    let a = at(&mut r, Key::Ip(ip), T0 + 301);
    assert_eq!((a[0].held(), a[0].from, a[0].inferred), (false, T0 + 300, true), "free from the lease end");
    // The whole timeline.
    let all =
        r.query(&Query { key: Key::Ip(ip), window: Window::Between { from: 0, to: T0 + 1_000 }, now: T0 + 1_000 });
    let all: Vec<_> = all.unwrap().iter().map(|i| (i.state, i.from, i.to)).collect();
    assert_eq!(
        all,
        [
            (DhcpState::Active, T0, Some(T0 + 80)),
            (DhcpState::Released, T0 + 80, Some(T0 + 200)),
            (DhcpState::Active, T0 + 200, Some(T0 + 300)),
            (DhcpState::Expired, T0 + 300, None),
        ]
    );
    // By client: the MAC, the client-id, the relay's remote-id and relay-id.
    let by_mac = at(&mut r, Key::Mac(vec![2, 0, 0, 0, 0, 2]), T0 + 250);
    assert_eq!(by_mac.iter().map(|i| i.ip).collect::<Vec<_>>(), [ip]);
    assert!(at(&mut r, Key::Mac(vec![2, 0, 0, 0, 0, 1]), T0 + 250).is_empty(), "client 1 had released it");
    assert_eq!(at(&mut r, Key::ClientId(vec![1, 2, 0, 0, 0, 0, 1]), T0 + 10).len(), 1);
    assert_eq!(at(&mut r, Key::RemoteId(b"r2".to_vec()), T0 + 250).len(), 1);
    assert!(at(&mut r, Key::RemoteId(b"r2".to_vec()), T0 + 10).is_empty());
    let through = r.query(&Query {
        key: Key::RelayId(b"relay-a".to_vec()),
        window: Window::Between { from: 0, to: T0 + 1_000 },
        now: T0 + 1_000,
    });
    assert_eq!(through.unwrap().len(), 2, "both holdings went through relay-a");
}

/// History rides in the replica's flush: what is not flushed is in neither; a reopened replica appends
/// after what it had.
#[test]
fn history_and_replica_are_written_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    let ip = Ipv4Addr::new(10, 0, 0, 6);
    {
        let mut rep = Replica::open(&path, &["s".into()]).unwrap();
        rep.apply(0, &lease(ip, 1, T0, T0, b"r"), Some(T0), Via::Active);
        rep.flush().unwrap();
        rep.apply(0, &freed(ip, DhcpState::Released, T0 + 5), Some(T0 + 5), Via::Active);
        // dropped without a flush: a crash
    }
    let rep = Replica::open(&path, &[]).unwrap();
    assert_eq!(rep.get(ip).unwrap().0.state, DhcpState::Active);
    let mut r = HistoryReader::open(&path).unwrap();
    assert_eq!(r.events().unwrap(), 1, "the unflushed release is in neither");
    assert!(at(&mut r, Key::Ip(ip), T0 + 6)[0].held());
}

#[test]
fn retention_prunes_old_events_and_zero_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    let mut rep = Replica::open(&path, &["s".into()]).unwrap();
    for i in 0..5_000u32 {
        let ip = Ipv4Addr::from(0x0a00_0000 + i);
        rep.apply(0, &lease(ip, 1, T0, T0, b"r"), Some(T0), Via::Active);
    }
    rep.flush().unwrap();
    let pruner = rep.pruner().unwrap();
    let now =
        u32::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()).unwrap();
    assert_eq!(pruner.prune(now).unwrap(), 0, "events that arrived just now are kept");
    assert_eq!(pruner.prune(now + 31 * 86_400).unwrap(), 5_000, "in batches, all of them once old");
    let mut off = Replica::open(&dir.path().join("off.sqlite3"), &["s".into()]).unwrap();
    off.set_history(None);
    off.apply(0, &lease(Ipv4Addr::new(10, 9, 9, 9), 1, T0, T0, b"r"), Some(T0), Via::Active);
    off.flush().unwrap();
    assert!(off.pruner().is_none());
    assert_eq!(HistoryReader::open(&dir.path().join("off.sqlite3")).unwrap().events().unwrap(), 0);
}

/// What the previous version (schema 1) wrote: MAC 02:00:00:00:00:01 interned as client 1 with `client_id`
/// (an SQL literal), and one ACTIVE event of it for `ip` at T0.
fn schema_1_file(path: &std::path::Path, ip: Ipv4Addr, client_id: &str) {
    drop(Replica::open(path, &["s".into()]).unwrap());
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "UPDATE meta SET value = 1 WHERE key = 'schema';
         INSERT INTO client (id, htype, mac, client_id) VALUES (1, 1, x'020000000001', {client_id});
         INSERT INTO event (ip, t, since, seen, state, server, client, relay, lease, flags)
             VALUES ({}, {T0}, 0, 0, {}, 0, 1, NULL, 100, 0);",
        u32::from(ip),
        DhcpState::Active.code()
    ))
    .unwrap();
}

/// A file of schema 1 (every client interned in the client table) opens as schema 2: its events still
/// resolve to their clients, and a MAC's history spans both (new events carry ids derived from the MAC).
#[test]
fn a_schema_1_file_is_migrated_and_its_history_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    let (old, new) = (Ipv4Addr::new(10, 0, 0, 7), Ipv4Addr::new(10, 0, 0, 8));
    schema_1_file(&path, old, "NULL");
    let mut rep = Replica::open(&path, &[]).unwrap();
    let schema: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(schema, 2);
    let mut b = lease(new, 1, T0 + 10, T0 + 10, b"r");
    b.client_id = None;
    rep.apply(0, &b, Some(T0 + 10), Via::Active);
    rep.flush().unwrap();
    let mut r = HistoryReader::open(&path).unwrap();
    let a = at(&mut r, Key::Ip(old), T0 + 5);
    assert_eq!((a[0].held(), a[0].mac.as_slice()), (true, &[2, 0, 0, 0, 0, 1][..]), "the old event's client");
    let by_mac = at(&mut r, Key::Mac(vec![2, 0, 0, 0, 0, 1]), T0 + 50);
    assert_eq!(by_mac.iter().map(|i| i.ip).collect::<Vec<_>>(), [old, new]);
    assert_eq!((by_mac[1].htype, by_mac[1].client_id.as_deref()), (1, None));
}

/// A lease held across the upgrade from schema 1 and renewed after it stays one holding: the old event's
/// stored client id and the renewal's derived id stand for the same client (a review found it split in two).
#[test]
fn a_lease_held_across_the_schema_upgrade_stays_one_holding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    let ip = Ipv4Addr::new(10, 0, 0, 9);
    schema_1_file(&path, ip, "x'01020000000001'");
    let mut rep = Replica::open(&path, &[]).unwrap();
    let mut renewed = lease(ip, 1, T0, T0 + 50, b"r");
    renewed.relay_agent_info = None;
    rep.apply(0, &renewed, Some(T0 + 50), Via::Active);
    rep.flush().unwrap();
    let mut r = HistoryReader::open(&path).unwrap();
    let now = at(&mut r, Key::Ip(ip), T0 + 60);
    assert_eq!((now.len(), now[0].from, now[0].events), (1, T0, 2), "held since T0, renewed once: {now:?}");
    let period = r
        .query(&Query {
            key: Key::Mac(vec![2, 0, 0, 0, 0, 1]),
            window: Window::Between { from: T0, to: T0 + 60 },
            now: T0 + 60,
        })
        .unwrap();
    assert_eq!(period.len(), 1, "one holding by that MAC: {period:?}");
}

/// A file written by a newer leasewire is refused, with what to do.
#[test]
fn a_file_of_a_newer_schema_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    drop(Replica::open(&path, &["s".into()]).unwrap());
    rusqlite::Connection::open(&path).unwrap().execute_batch("UPDATE meta SET value = 9 WHERE key = 'schema'").unwrap();
    let e = Replica::open(&path, &[]).unwrap_err().to_string();
    assert!(e.contains("schema version 9") && e.contains("start a new file"), "{e}");
}

/// Ids derived from the MAC stand for exactly the client they were derived from; other clients have none.
#[test]
fn derived_client_ids_round_trip() {
    use super::store::{derived, underived};
    for mac in [[0u8; 6], [2, 0, 0, 0, 0, 1], [0xff; 6]] {
        let with_cid = [&[1u8][..], &mac].concat();
        for cid in [None, Some(&with_cid[..])] {
            let id = derived(1, &mac, cid).unwrap();
            assert!(id < 0);
            assert_eq!(underived(id), Some((1, mac.to_vec(), cid.map(<[u8]>::to_vec))));
        }
    }
    assert_eq!(derived(6, &[2, 0, 0, 0, 0, 1], None), None, "not Ethernet");
    assert_eq!(derived(1, &[2, 0, 0, 0, 1], None), None, "not six octets");
    assert_eq!(derived(1, &[2, 0, 0, 0, 0, 1], Some(b"host")), None, "another client-id");
    assert_eq!(derived(1, &[2, 0, 0, 0, 0, 1], Some(&[1, 2, 0, 0, 0, 0, 2])), None, "another MAC's client-id");
    assert_eq!(underived(1), None, "interned ids are positive");
}
