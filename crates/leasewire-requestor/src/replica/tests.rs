use super::*;
use leasewire_proto::{DataSource, DhcpState};

fn b(last: u8, state: DhcpState, since: u32, cltt: Option<u32>, mac: u8) -> Binding {
    let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, last), state, since);
    b.htype = 1;
    b.hardware_address = vec![2, 0, 0, 0, 0, mac];
    b.cltt = cltt;
    b.expires_at = (state == DhcpState::Active).then_some(since + 3600);
    b
}

#[test]
fn alq_7_4_6_several_messages_about_one_address_newest_wins_in_any_order() {
    let old = b(1, DhcpState::Active, 100, Some(100), 1);
    let new = b(1, DhcpState::Released, 200, Some(200), 1);
    let mut r = Replica::in_memory(&["s".into()]);
    assert_eq!(r.apply(0, &old, Some(100), Via::Active), Applied::New);
    assert_eq!(r.apply(0, &new, Some(200), Via::Active), Applied::Changed);
    assert_eq!(r.apply(0, &old, Some(300), Via::Bulk), Applied::Stale, "an older binding never overwrites");
    assert_eq!(r.apply(0, &new, Some(300), Via::Bulk), Applied::Duplicate, "duplicates are harmless");
    assert_eq!(r.get(new.ip).unwrap().0, new);
    let mut other = Replica::in_memory(&["s".into()]);
    other.apply(0, &new, Some(200), Via::Bulk);
    other.apply(0, &old, Some(100), Via::Active);
    assert_eq!(other.get(new.ip).unwrap().0, new, "same result whatever the arrival order");
}

/// ALQ-7.4.1-13 / BLQ-7.6-3: a client releases and is leased the same address again within one second; the
/// RELEASE arrives on the Active stream, the re-lease is lost with the connection, and the server answers the
/// reconnection with DataMissing. The gap fill's Bulk reply (asked for after the RELEASE arrived) carries the
/// ACTIVE binding with the same times: it must win, or the replica keeps the released lease until the
/// client's next change. A live Active record (arrived after the Bulk query was asked for) still wins the
/// same tie against the snapshot.
#[test]
fn alq_7_4_1_13_a_gap_fill_snapshot_beats_an_earlier_active_record_of_the_same_second() {
    let released = b(1, DhcpState::Released, 100, Some(100), 1);
    let leased = b(1, DhcpState::Active, 100, Some(100), 1);
    let mut r = Replica::in_memory(&["s".into()]);
    assert_eq!(r.apply(0, &released, Some(100), Via::Active), Applied::New);
    r.bulk_requested(0);
    assert_eq!(r.apply(0, &leased, Some(101), Via::Bulk), Applied::Changed, "the snapshot is newer");
    assert_eq!(r.get(leased.ip).unwrap().0, leased);
    // The other order: the Active record arrives while the Bulk query runs; the snapshot may predate it.
    let mut r = Replica::in_memory(&["s".into()]);
    r.bulk_requested(0);
    assert_eq!(r.apply(0, &released, Some(100), Via::Active), Applied::New);
    assert_eq!(r.apply(0, &leased, Some(101), Via::Bulk), Applied::Stale, "a live change beats the snapshot");
    // Two queries under way: the second one settles nothing, or the first one's older snapshot would beat the
    // RELEASE that arrived during it.
    let mut r = Replica::in_memory(&["s".into()]);
    r.bulk_requested(0);
    assert_eq!(r.apply(0, &released, Some(100), Via::Active), Applied::New);
    r.bulk_requested(0);
    assert_eq!(r.apply(0, &leased, Some(101), Via::Bulk), Applied::Stale, "still live for the first query");
    // Once both ended, the next query settles again.
    r.bulk_ended(0);
    r.bulk_ended(0);
    r.bulk_requested(0);
    assert_eq!(r.apply(0, &leased, Some(102), Via::Bulk), Applied::Changed);
    // Another server's query settles nothing of this one.
    let mut r = Replica::in_memory(&["s".into(), "t".into()]);
    assert_eq!(r.apply(0, &released, Some(100), Via::Active), Applied::New);
    r.bulk_requested(1);
    assert_eq!(r.apply(0, &leased, Some(101), Via::Bulk), Applied::Stale);
}

#[test]
fn blq_7_6_1_several_servers_merge_by_address_and_local_data_wins_ties() {
    let mut r = Replica::in_memory(&["a".into(), "b".into()]);
    let mut remote = b(1, DhcpState::Active, 100, Some(100), 1);
    remote.data_source = DataSource::REMOTE;
    let mut local = remote.clone();
    local.data_source = DataSource::LOCAL;
    local.hardware_address = vec![2, 0, 0, 0, 0, 9];
    r.apply(1, &remote, Some(100), Via::Active);
    assert_eq!(r.apply(0, &local, Some(100), Via::Active), Applied::Changed);
    assert_eq!(r.apply(1, &remote, Some(150), Via::Active), Applied::Stale, "REMOTE copy loses the tie");
    assert_eq!(r.get(local.ip).unwrap().1, "a");
}

/// One server on a shared store reports a lease another server made as REMOTE: it supersedes the AVAILABLE
/// that server's own Bulk seed reported for the address in the same second (the tie-break of local over
/// REMOTE data is between two servers' reports, not within one server's).
#[test]
fn blq_7_6_1_one_servers_remote_lease_supersedes_its_own_seed_in_the_same_second() {
    let mut r = Replica::in_memory(&["a".into()]);
    let mut available = b(1, DhcpState::Available, 100, None, 0);
    (available.htype, available.hardware_address) = (0, Vec::new());
    let mut leased = b(1, DhcpState::Active, 100, Some(100), 7);
    leased.data_source = DataSource::REMOTE;
    assert_eq!(r.apply(0, &available, Some(100), Via::Bulk), Applied::New);
    assert_eq!(r.apply(0, &leased, Some(100), Via::Active), Applied::Changed);
    assert_eq!(r.get(leased.ip).unwrap().0, leased);
}

/// BLQ-7.4-2 / BLQ-7.6-2: times of two servers are compared in the requestor's clock. Server "b" runs 300 s
/// behind the requestor and server "a" (which agree).
#[test]
fn blq_7_6_2_two_servers_are_compared_in_the_requestors_clock() {
    const NOW: u32 = 1_000_000;
    let mut r = Replica::in_memory(&["a".into(), "b".into()]);
    r.observe_clock(0, NOW, NOW);
    r.observe_clock(1, NOW, NOW - 300);
    assert_eq!((r.clock_offset(0), r.clock_offset(1)), (0, 300));
    // "a" leased the address at NOW-100; "b" released it at NOW-50 (its clock: NOW-350).
    let leased = b(1, DhcpState::Active, NOW - 100, Some(NOW - 100), 1);
    let released = b(1, DhcpState::Released, NOW - 350, Some(NOW - 350), 1);
    assert_eq!(r.apply(0, &leased, Some(NOW - 100), Via::Active), Applied::New);
    assert_eq!(r.apply(1, &released, Some(NOW - 350), Via::Active), Applied::Changed, "the later release wins");
    assert_eq!(r.get(leased.ip).unwrap().0, released, "kept as its server reported it");
    // A binding "b" reported from before the lease (NOW-200, its clock NOW-500) loses, whatever the order.
    let older = b(2, DhcpState::Active, NOW - 500, Some(NOW - 500), 2);
    let newer = b(2, DhcpState::Released, NOW - 100, Some(NOW - 100), 2);
    assert_eq!(r.apply(0, &newer, Some(NOW), Via::Active), Applied::New);
    assert_eq!(r.apply(1, &older, Some(NOW - 300), Via::Bulk), Applied::Stale);
    // Without the conversion the same messages merge the other way round: the test can tell.
    let mut naive = Replica::in_memory(&["a".into(), "b".into()]);
    naive.apply(0, &leased, Some(NOW - 100), Via::Active);
    assert_eq!(naive.apply(1, &released, Some(NOW - 350), Via::Active), Applied::Stale);
}

/// The offset is kept in the file: after a restart, a server's records compare in the requestor's clock
/// before it is heard from again.
#[cfg(feature = "sqlite")]
#[test]
fn blq_7_6_2_the_clock_offset_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    {
        let mut r = Replica::open(&path, &["a".into(), "b".into()]).unwrap();
        r.observe_clock(1, 1_000_000, 1_000_000 - 300);
        r.flush().unwrap();
    }
    let r = Replica::open(&path, &[]).unwrap();
    assert_eq!((r.clock_offset(0), r.clock_offset(1)), (0, 300));
    assert_eq!(r.server(1).clock_offset, 300);
}

/// Clocks that agree to within base-time's one-second resolution compare exactly as reported.
#[test]
fn blq_7_6_2_a_second_of_delay_is_not_a_clock_offset() {
    let mut r = Replica::in_memory(&["a".into(), "b".into()]);
    r.observe_clock(0, 1001, 1000);
    r.observe_clock(1, 1001, 1000);
    assert_eq!((r.clock_offset(0), r.clock_offset(1)), (0, 0));
    let mut remote = b(1, DhcpState::Active, 100, Some(100), 1);
    remote.data_source = DataSource::REMOTE;
    let local = b(1, DhcpState::Active, 100, Some(100), 9);
    r.apply(0, &local, Some(100), Via::Active);
    assert_eq!(r.apply(1, &remote, Some(100), Via::Active), Applied::Stale, "the tie still goes to local data");
}

/// A replica file at `path` that watches one server, 127.0.0.1:67 (id 0).
#[cfg(feature = "sqlite")]
fn one_server_file(path: &std::path::Path) -> Replica {
    Replica::open(path, &["127.0.0.1:67".into()]).unwrap()
}

/// ALQ-9-5: the replica holds what the server protects, so its file is private (mode 0600).
#[cfg(feature = "sqlite")]
#[test]
fn the_file_keeps_bindings_base_times_and_gaps_across_restarts_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    {
        let mut r = one_server_file(&path);
        r.apply(0, &b(1, DhcpState::Active, 100, Some(100), 1), Some(100), Via::Bulk);
        r.apply(0, &b(2, DhcpState::Expired, 150, Some(90), 2), Some(160), Via::Active);
        r.set_seeded(0, Some(99));
        r.set_saved(0, Some(160));
        r.open_gap(0, Gap { from: 50, to: 160 });
        assert_eq!(r.flush().unwrap(), 2);
        // Unflushed changes are lost with the process, base-time included (the next catch-up re-sends them).
        r.apply(0, &b(3, DhcpState::Active, 170, Some(170), 3), Some(170), Via::Active);
        r.set_saved(0, Some(170));
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let r = Replica::open(&path, &["127.0.0.1:67".into(), "127.0.0.2:67".into()]).unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r.get(Ipv4Addr::new(10, 0, 0, 2)).unwrap().0, b(2, DhcpState::Expired, 150, Some(90), 2));
    let s = r.server(0);
    assert_eq!((s.seeded, s.saved, s.gaps.clone()), (true, Some(160), vec![Gap { from: 50, to: 160 }]));
    assert_eq!(r.servers().len(), 2);
    assert_eq!(r.server(1).saved, None);
}

/// A flush is taken under the replica's lock and written without it: merges go on meanwhile, and what they
/// change goes in the next flush, not lost between the two.
#[cfg(feature = "sqlite")]
#[test]
fn a_taken_flush_is_written_while_the_replica_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    {
        let mut r = one_server_file(&path);
        r.apply(0, &b(1, DhcpState::Active, 100, Some(100), 1), Some(100), Via::Active);
        r.set_saved(0, Some(100));
        let first = r.take_flush().expect("changes to write");
        assert!(r.take_flush().is_none(), "taken once");
        // Merged while the first flush is still unwritten.
        r.apply(0, &b(1, DhcpState::Released, 200, Some(200), 1), Some(200), Via::Active);
        r.apply(0, &b(2, DhcpState::Active, 200, Some(200), 2), Some(200), Via::Active);
        r.set_saved(0, Some(200));
        assert_eq!(first.write().unwrap(), 1);
        assert_eq!(r.take_flush().expect("the later changes").write().unwrap(), 2);
    }
    let r = Replica::open(&path, &[]).unwrap();
    assert_eq!(r.get(Ipv4Addr::new(10, 0, 0, 1)).unwrap().0, b(1, DhcpState::Released, 200, Some(200), 1));
    assert_eq!(r.len(), 2);
    assert_eq!(r.server(0).saved, Some(200));
}

/// Another writer holding the file's lock (an operator's `sqlite3` shell, a backup) makes `Flush::write` wait
/// for it, up to `PATIENT_LOCK_WAIT`, instead of failing: the write at the watcher's start and a library
/// caller's flush have nothing that would retry them. `write_waiting` chooses a shorter wait (the watcher's,
/// which retries).
#[cfg(feature = "sqlite")]
#[test]
fn a_flush_waits_out_another_writers_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replica.sqlite3");
    let mut r = one_server_file(&path);
    r.apply(0, &b(1, DhcpState::Active, 100, Some(100), 1), Some(100), Via::Active);
    let flush = r.take_flush().expect("a change to write");
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert!(flush.write_waiting(std::time::Duration::from_millis(20)).is_err(), "locked: a short wait fails");
    // Released after longer than the watcher's one-second wait, well within the patient one.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        lock.execute_batch("COMMIT").unwrap();
    });
    assert_eq!(flush.write().unwrap(), 1, "the write waited for the lock");
    release.join().unwrap();
    assert_eq!(Replica::open(&path, &[]).unwrap().len(), 1);
}

#[cfg(feature = "sqlite")]
#[test]
fn a_file_that_is_not_a_replica_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk");
    std::fs::write(&path, b"this is not sqlite at all, just text that goes on for a while........").unwrap();
    let e = Replica::open(&path, &[]).unwrap_err().to_string();
    assert!(e.contains("junk"), "{e}");
}

#[test]
fn lookups_by_hardware_address() {
    let mut r = Replica::in_memory(&["s".into()]);
    r.apply(0, &b(2, DhcpState::Active, 1, None, 7), None, Via::Bulk);
    r.apply(0, &b(1, DhcpState::Released, 1, None, 7), None, Via::Bulk);
    r.apply(0, &b(3, DhcpState::Active, 1, None, 8), None, Via::Bulk);
    let ips: Vec<_> = r.by_hardware_address(&[2, 0, 0, 0, 0, 7]).iter().map(|(b, _)| b.ip).collect();
    assert_eq!(ips, vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
}

/// BLQ-6.2.7-7, ALQ-6-2: no state is expected to follow another. Every state may follow every other (also
/// itself, with the intermediate states never seen), and the newer report is taken whichever it is.
#[test]
fn blq_6_2_7_7_and_alq_6_2_any_state_may_follow_any_other() {
    for from in DhcpState::ALL {
        for to in DhcpState::ALL {
            let mut r = Replica::in_memory(&["s".into()]);
            let first = b(1, from, 1000, Some(1000), 1);
            let mut second = b(1, to, 1500, Some(1500), 2);
            second.client_id = Some(vec![9]);
            assert_eq!(r.apply(0, &first, Some(1000), Via::Active), Applied::New);
            let applied = r.apply(0, &second, Some(1500), Via::Active);
            assert_eq!(applied, Applied::Changed, "{from:?} -> {to:?}");
            assert_eq!(r.get(first.ip).unwrap().0, second, "{from:?} -> {to:?}");
        }
    }
}

/// BLQ-7.3-10: bindings come in no particular order. Addresses arrive in descending order and base-times go
/// down; each binding is judged by its own times, not by its place in the stream or its message's base-time.
#[test]
fn blq_7_3_10_no_order_is_assumed_among_returned_bindings() {
    let mut r = Replica::in_memory(&["s".into()]);
    // Addresses 9 .. 1, base-times falling.
    for last in (1..=9u8).rev() {
        let t = 2000 - u32::from(last);
        assert_eq!(
            r.apply(0, &b(last, DhcpState::Active, t, Some(t), last), Some(3000 - u32::from(last)), Via::Bulk),
            Applied::New
        );
    }
    assert_eq!(r.len(), 9);
    // Two reports about one address: the first under a later base-time but about an older change. The
    // second, under an earlier base-time, carries the newer change and wins.
    let older_change = b(5, DhcpState::Released, 2100, Some(2100), 5);
    let newer_change = b(5, DhcpState::Expired, 2200, Some(2200), 5);
    assert_eq!(r.apply(0, &older_change, Some(4000), Via::Bulk), Applied::Changed);
    assert_eq!(r.apply(0, &newer_change, Some(2300), Via::Bulk), Applied::Changed);
    assert_eq!(r.get(newer_change.ip).unwrap().0, newer_change);
}
