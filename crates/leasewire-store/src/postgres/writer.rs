//! The writer task: group commit into one transaction per group, arbitration between servers, forgets, and
//! the schema migrations at open.
//!
//! Each group transaction starts with `SELECT ... FROM lw_meta FOR UPDATE`. That one row lock is the
//! price of a gap-free shared journal: writers of every server take turns, so a change with a lower
//! sequence number is always visible before one with a higher number. Group commit keeps the price down
//! (one lock, one upsert statement, one fsync, one NOTIFY per group, whatever its size).

use super::rows::Columns;
use super::schema::{CHANNEL, MIGRATION_LOCK, MIGRATIONS, PG_SCHEMA_VERSION};
use super::{Inner, select};
use crate::error::StoreError;
use crate::pending::Completer;
use crate::store::{Forgetting, Forgotten};
use crate::{Binding, BindingChange};
use leasewire_proto::DhcpState;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Work for the writer.
pub(crate) enum Request {
    /// `expected`: see `LeaseStore::commit_expecting`.
    Commit {
        now: u32,
        bindings: Vec<Binding>,
        expected: Vec<Binding>,
        done: Completer<Vec<BindingChange>>,
    },
    Forget(Forgetting, Completer<Forgotten>),
}

/// Create or migrate the schema (under an advisory lock, so concurrent first starts do it once).
pub(crate) async fn migrate(inner: &Inner, now: u32) -> Result<(), StoreError> {
    let mut client = inner.client().await?;
    let tx = client.transaction().await.map_err(|e| inner.pg(e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(|e| inner.pg(e))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS lw_schema (version integer NOT NULL)")
        .await
        .map_err(|e| inner.pg(e))?;
    let row = tx.query_opt("SELECT version FROM lw_schema", &[]).await.map_err(|e| inner.pg(e))?;
    let found = match &row {
        Some(r) => r.try_get::<_, i32>(0).map_err(|e| inner.pg(e))?,
        None => 0,
    };
    let found = u32::try_from(found).map_err(|_| inner.unreadable(format!("schema version {found}")))?;
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::NewerPostgresSchema {
            database: inner.database.clone(),
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    for m in &MIGRATIONS[found as usize..] {
        tx.batch_execute(m).await.map_err(|e| inner.pg(e))?;
    }
    let version = PG_SCHEMA_VERSION as i32;
    if row.is_none() {
        let now = i64::from(now);
        tx.execute("INSERT INTO lw_schema (version) VALUES ($1)", &[&version]).await.map_err(|e| inner.pg(e))?;
        tx.execute(
            "INSERT INTO lw_meta (id, created_at, horizon, last_seq, last_time) VALUES (1, $1, $1, 0, $1)",
            &[&now],
        )
        .await
        .map_err(|e| inner.pg(e))?;
    } else {
        tx.execute("UPDATE lw_schema SET version = $1", &[&version]).await.map_err(|e| inner.pg(e))?;
    }
    tx.commit().await.map_err(|e| inner.pg(e))
}

/// Who a binding belongs to, as the DHCP engine tells clients apart: the client identifier when the client
/// sent one (even empty), else the hardware type and address.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Client {
    Id(Vec<u8>),
    Hardware(u8, Vec<u8>),
    Nobody,
}

impl Client {
    fn of(client_id: Option<&[u8]>, htype: u8, hw: &[u8]) -> Self {
        match (client_id, hw.is_empty()) {
            (Some(id), _) => Self::Id(id.to_vec()),
            (None, false) => Self::Hardware(htype, hw.to_vec()),
            (None, true) => Self::Nobody,
        }
    }
}

/// What arbitration needs to know about the current record of an address.
#[derive(Debug, Clone)]
struct Held {
    state: DhcpState,
    expires_at: Option<u32>,
    client: Client,
}

impl Held {
    fn of(b: &Binding) -> Self {
        Self {
            state: b.state,
            expires_at: b.expires_at,
            client: Client::of(b.client_id.as_deref(), b.htype, &b.hardware_address),
        }
    }
}

/// Whether a server may not write `new` over `current` at `now`: the address is ACTIVE and unexpired, and
/// either `new` gives it to another client (two servers chose the same free address for different clients:
/// the first commit wins and the other is refused, so its client gets a NAK, never an ACK), or `new` is a
/// timer's verdict (EXPIRED, AVAILABLE) from a server whose copy missed a renewal made through another
/// server.
fn refuses(current: Option<&Held>, new: &Binding, now: u32) -> bool {
    let Some(cur) = current else { return false };
    let held = cur.state == DhcpState::Active && cur.expires_at.is_none_or(|e| e > now);
    if !held {
        return false;
    }
    match new.state {
        DhcpState::Active | DhcpState::Transitioning | DhcpState::Released => {
            Client::of(new.client_id.as_deref(), new.htype, &new.hardware_address) != cur.client
        }
        DhcpState::Expired | DhcpState::Available => true,
        // DECLINE (the address is in use by someone unknown) and administrative states carry no client: a
        // DECLINE is checked against the decliner's lease instead (`contradicts`, from the commit's
        // `expected`).
        _ => false,
    }
}

/// Whether `expected` (the record a decision rests on, e.g. the decliner's lease) no longer holds at `now`:
/// the address is ACTIVE and unexpired for another client. A DECLINE through a server whose copy is stale
/// (another server re-allocated the address since) is refused this way, rather than abandoning the new
/// holder's lease.
fn contradicts(current: Option<&Held>, expected: &Binding, now: u32) -> bool {
    let Some(cur) = current else { return false };
    let held = cur.state == DhcpState::Active && cur.expires_at.is_none_or(|e| e > now);
    held && Client::of(expected.client_id.as_deref(), expected.htype, &expected.hardware_address) != cur.client
}

/// The multi-row upsert of one group: the column arrays of `rows::Columns`, one row per address.
const UPSERT: &str = "INSERT INTO lw_binding (ip, seq, time, origin, state, state_since, expires_at, cltt, htype, \
    data_source, hwaddr, client_id, relay_agent_info, remote_id, relay_id, options, reserved_for) \
    SELECT u.ip, u.seq, u.time, $17, u.state, u.state_since, u.expires_at, u.cltt, u.htype, u.data_source, u.hwaddr, \
    u.client_id, u.relay_agent_info, u.remote_id, u.relay_id, u.options, u.reserved_for \
    FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int2[], $5::int8[], $6::int8[], $7::int8[], $8::int2[], \
    $9::int2[], $10::bytea[], $11::bytea[], $12::bytea[], $13::bytea[], $14::bytea[], $15::bytea[], $16::text[]) \
    AS u(ip, seq, time, state, state_since, expires_at, cltt, htype, data_source, hwaddr, client_id, \
    relay_agent_info, remote_id, relay_id, options, reserved_for) \
    ON CONFLICT (ip) DO UPDATE SET seq = excluded.seq, time = excluded.time, origin = excluded.origin, \
    state = excluded.state, state_since = excluded.state_since, expires_at = excluded.expires_at, \
    cltt = excluded.cltt, htype = excluded.htype, data_source = excluded.data_source, hwaddr = excluded.hwaddr, \
    client_id = excluded.client_id, relay_agent_info = excluded.relay_agent_info, remote_id = excluded.remote_id, \
    relay_id = excluded.relay_id, options = excluded.options, reserved_for = excluded.reserved_for";

/// The writer: owns the order of writes of this server.
pub(crate) struct Writer {
    inner: Arc<Inner>,
    guard: bool,
    max_group: usize,
}

struct Commit {
    now: u32,
    bindings: Vec<Binding>,
    expected: Vec<Binding>,
    done: Completer<Vec<BindingChange>>,
}

impl Writer {
    pub(crate) fn new(inner: Arc<Inner>, guard: bool, max_group: usize) -> Self {
        Self { inner, guard, max_group: max_group.max(1) }
    }

    pub(crate) async fn run(self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let mut next = None;
        loop {
            let first = match next.take() {
                Some(r) => r,
                None => match rx.recv().await {
                    Some(r) => r,
                    None => return,
                },
            };
            match first {
                Request::Commit { now, bindings, expected, done } => {
                    let mut group = vec![Commit { now, bindings, expected, done }];
                    let mut size = group[0].bindings.len();
                    while size < self.max_group {
                        match rx.try_recv() {
                            Ok(Request::Commit { now, bindings, expected, done }) => {
                                size += bindings.len();
                                group.push(Commit { now, bindings, expected, done });
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group).await;
                }
                Request::Forget(what, done) => done.complete(self.forget(what).await),
            }
        }
    }

    async fn commit_group(&self, group: Vec<Commit>) {
        let (work, dones): (Vec<Work>, Vec<_>) = group
            .into_iter()
            .map(|c| (Work { now: c.now, bindings: c.bindings, expected: c.expected }, c.done))
            .unzip();
        match self.transaction(work).await {
            Ok(results) => {
                for (done, r) in dones.into_iter().zip(results) {
                    done.complete(r);
                }
            }
            Err(e) => {
                for done in dones {
                    done.complete(Err(e.clone()));
                }
            }
        }
    }

    /// One group: every committer's result, or the error that failed the whole transaction.
    async fn transaction(&self, work: Vec<Work>) -> Result<Vec<Result<Vec<BindingChange>, StoreError>>, StoreError> {
        let inner = &self.inner;
        let pg = |e| inner.pg(e);
        let mut client = inner.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let meta =
            tx.query_one("SELECT last_seq, last_time FROM lw_meta WHERE id = 1 FOR UPDATE", &[]).await.map_err(pg)?;
        let last_seq: i64 = meta.try_get(0).map_err(pg)?;
        let last_time: i64 = meta.try_get(1).map_err(pg)?;
        let (mut seq, mut time) = (last_seq as u64, u32::try_from(last_time).unwrap_or(u32::MAX));

        // The current holder of every address the group touches (only needed to arbitrate). The rows cannot
        // change under us: every writer holds the lw_meta lock first.
        let mut held: HashMap<Ipv4Addr, Option<Held>> = HashMap::new();
        if self.guard {
            let ips: Vec<i64> = work
                .iter()
                .flat_map(|w| w.bindings.iter().chain(&w.expected).map(|b| i64::from(u32::from(b.ip))))
                .collect();
            let rows = tx.query(select!(" WHERE ip = ANY($1)"), &[&ips]).await.map_err(pg)?;
            for r in &rows {
                let c = super::rows::decode(r, &inner.origin).map_err(|d| inner.unreadable(d))?;
                held.insert(c.binding.ip, Some(Held::of(&c.binding)));
            }
        }

        let mut results = Vec::with_capacity(work.len());
        let mut changes: Vec<BindingChange> = Vec::new();
        for Work { now, bindings, expected } in work {
            if self.guard {
                let mut view = held.clone();
                let refused = expected
                    .iter()
                    .find(|e| contradicts(view.get(&e.ip).and_then(Option::as_ref), e, now))
                    .or_else(|| {
                        bindings.iter().find(|b| {
                            let no = refuses(view.get(&b.ip).and_then(Option::as_ref), b, now);
                            view.insert(b.ip, Some(Held::of(b)));
                            no
                        })
                    });
                if let Some(b) = refused {
                    results.push(Err(StoreError::Conflict { ip: b.ip }));
                    continue;
                }
                held = view;
            }
            time = time.max(now);
            let mine: Vec<BindingChange> = bindings
                .into_iter()
                .map(|binding| {
                    seq += 1;
                    BindingChange { seq, time, binding }
                })
                .collect();
            changes.extend(mine.iter().cloned());
            results.push(Ok(mine));
        }

        if !changes.is_empty() {
            // One row per address: the last change of the group to it (ON CONFLICT may not touch a row twice).
            let mut cols = Columns::default();
            let mut seen = std::collections::HashSet::new();
            for c in changes.iter().rev() {
                if seen.insert(c.binding.ip) {
                    cols.push(c);
                }
            }
            debug_assert!(!cols.is_empty());
            tx.execute(
                UPSERT,
                &[
                    &cols.ip,
                    &cols.seq,
                    &cols.time,
                    &cols.state,
                    &cols.state_since,
                    &cols.expires_at,
                    &cols.cltt,
                    &cols.htype,
                    &cols.data_source,
                    &cols.hwaddr,
                    &cols.client_id,
                    &cols.relay_agent_info,
                    &cols.remote_id,
                    &cols.relay_id,
                    &cols.options,
                    &cols.reserved_for,
                    &inner.origin,
                ],
            )
            .await
            .map_err(pg)?;
            let (seq, time) = (seq as i64, i64::from(time));
            tx.execute("UPDATE lw_meta SET last_seq = $1, last_time = $2 WHERE id = 1", &[&seq, &time])
                .await
                .map_err(pg)?;
            // One NOTIFY per transaction with only the highest number: listeners read the rest themselves.
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &seq.to_string()]).await.map_err(pg)?;
        }
        // Resolves after PostgreSQL flushed the commit record (synchronous_commit = on, its default).
        tx.commit().await.map_err(pg)?;
        Ok(results)
    }

    async fn forget(&self, what: Forgetting) -> Result<Forgotten, StoreError> {
        let inner = &self.inner;
        let pg = |e| inner.pg(e);
        let mut client = inner.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let meta = tx.query_one("SELECT horizon FROM lw_meta WHERE id = 1 FOR UPDATE", &[]).await.map_err(pg)?;
        let horizon: i64 = meta.try_get(0).map_err(pg)?;
        let rows = match &what {
            Forgetting::Ips(ips) => {
                let ips: Vec<i64> = ips.iter().map(|ip| i64::from(u32::from(*ip))).collect();
                tx.query(
                    "DELETE FROM lw_binding WHERE ip = ANY($1) RETURNING ip, seq, time, origin, state, state_since, \
                     expires_at, cltt, htype, data_source, hwaddr, client_id, relay_agent_info, options, reserved_for",
                    &[&ips],
                )
                .await
                .map_err(pg)?
            }
            Forgetting::Expired { now, retention_secs, limit } => {
                let (now, retention, active) =
                    (i64::from(*now), i64::from(*retention_secs), i16::from(DhcpState::Active.code()));
                let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
                tx.query(
                    "DELETE FROM lw_binding WHERE ip IN (SELECT ip FROM lw_binding WHERE state <> $1 \
                     AND time + $2 < $3 AND (expires_at IS NULL OR expires_at <= $3) ORDER BY seq LIMIT $4) \
                     RETURNING ip, seq, time, origin, state, state_since, expires_at, cltt, htype, data_source, \
                     hwaddr, client_id, relay_agent_info, options, reserved_for",
                    &[&active, &retention, &now, &limit],
                )
                .await
                .map_err(pg)?
            }
        };
        let mut removed = rows
            .iter()
            .map(|r| super::rows::decode(r, &inner.origin).map_err(|d| inner.unreadable(d)))
            .collect::<Result<Vec<_>, _>>()?;
        removed.sort_by_key(|c| c.seq);
        let newest = removed.iter().map(|c| i64::from(c.time) + 1).max().unwrap_or(horizon);
        let horizon = horizon.max(newest);
        if !removed.is_empty() {
            tx.execute("UPDATE lw_meta SET horizon = $1 WHERE id = 1", &[&horizon]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        let horizon = u32::try_from(horizon).map_err(|_| inner.unreadable(format!("horizon {horizon}")))?;
        Ok(Forgotten { removed, horizon })
    }
}

/// One committer's share of a group transaction.
struct Work {
    now: u32,
    bindings: Vec<Binding>,
    expected: Vec<Binding>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ip: u8, hw: u8, expires: u32) -> Binding {
        let mut b = Binding::new(Ipv4Addr::new(10, 0, 0, ip), DhcpState::Active, 100);
        b.htype = 1;
        b.hardware_address = vec![2, 0, 0, 0, 0, hw];
        b.expires_at = Some(expires);
        b
    }

    #[test]
    fn arbitration_refuses_only_what_would_bind_an_address_twice() {
        let held = Held::of(&lease(1, 1, 200));
        // Another client while the lease runs: refused; the same client (a renewal): allowed.
        assert!(refuses(Some(&held), &lease(1, 2, 300), 150));
        assert!(!refuses(Some(&held), &lease(1, 1, 300), 150));
        // Once the lease ran out, anyone may take it.
        assert!(!refuses(Some(&held), &lease(1, 2, 300), 200));
        // A stale expiry from a server that missed a renewal is refused while the lease runs.
        let mut expired = lease(1, 1, 200);
        expired.state = DhcpState::Expired;
        assert!(refuses(Some(&held), &expired, 150));
        // A DECLINE on its own goes through (its check is `contradicts`); nothing is refused over no record or
        // a released one.
        let mut declined = Binding::new(Ipv4Addr::new(10, 0, 0, 1), DhcpState::Abandoned, 150);
        declined.expires_at = Some(1000);
        assert!(!refuses(Some(&held), &declined, 150));
        assert!(!refuses(None, &lease(1, 2, 300), 150));
        let mut released = lease(1, 1, 200);
        released.state = DhcpState::Released;
        assert!(!refuses(Some(&Held::of(&released)), &lease(1, 2, 300), 150));
        // The client identifier wins over the hardware address, as in the engine.
        let mut with_id = lease(1, 1, 200);
        with_id.client_id = Some(b"c1".to_vec());
        let mut same_id_other_mac = lease(1, 9, 300);
        same_id_other_mac.client_id = Some(b"c1".to_vec());
        assert!(!refuses(Some(&Held::of(&with_id)), &same_id_other_mac, 150));
        assert!(refuses(Some(&Held::of(&with_id)), &lease(1, 1, 300), 150));
    }

    #[test]
    fn a_decline_is_refused_only_over_another_clients_live_lease() {
        let decliners_lease = lease(1, 1, 200);
        // The decliner still holds it (or nobody does, or the lease ran out): the DECLINE goes through.
        assert!(!contradicts(Some(&Held::of(&lease(1, 1, 300))), &decliners_lease, 150));
        assert!(!contradicts(None, &decliners_lease, 150));
        assert!(!contradicts(Some(&Held::of(&lease(1, 2, 200))), &decliners_lease, 200));
        // Another server gave it to another client meanwhile: refused.
        assert!(contradicts(Some(&Held::of(&lease(1, 2, 300))), &decliners_lease, 150));
    }
}
