//! The history's tables in the replica file, and the queries over them.
//!
//! ```text
//! event  (seq INTEGER PRIMARY KEY  -- append order: what retention prunes first
//!         ip, t, since, seen, state, server, client, relay, lease, flags)
//! client (id, htype, mac, client_id)        -- each other client once: an event carries a small integer
//! relay  (id, rai, circuit_id, remote_id, relay_id)   -- each option 82 value once
//! ```
//!
//! Times are integers: `t` (server clock, when the change happened) absolute, the others as small
//! differences from it (`since` = t − start-time-of-state, `seen` = requestor clock − t, `lease` = lease end −
//! t), which SQLite stores in one or two octets. Indexes: `(ip, t)`, `(client, t)`, `(relay, t)`; the client
//! and relay tables are indexed by MAC, client-id, remote-id and relay-id, so a question about a MAC is an
//! index lookup for its client ids, then the events of those ids.
//!
//! Most clients are Ethernet (htype 1, six-octet MAC) with no client-id or the usual client-id `01‖MAC`
//! (RFC 2132 §9.14). Their id is not interned but derived from the MAC ([`derived`], a negative number;
//! interned ids count up from 1): the writer looks nothing up and the client table holds no row for them.
//! (Files of schema 1 interned them too; those ids still resolve, so their events are found as before.)
//!
//! Each flush's events are inserted in address order (the events of one address in the order they
//! happened), so the inserts into `(ip, t)` walk its leaf pages in order instead of at random.

use super::timeline::{self, Interval, Row, Span};
use super::{Event, HistoryError, Key, Query, Window};
use leasewire_proto::{DhcpState, RelayAgentInfo};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

const REMOTE: i64 = 1;
const VIA_BULK: i64 = 2;

/// The schema, created with the replica's own tables.
pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS client (id INTEGER PRIMARY KEY, htype INTEGER NOT NULL, mac BLOB NOT NULL,
        client_id BLOB);
    CREATE UNIQUE INDEX IF NOT EXISTS client_key ON client (mac, htype, client_id);
    CREATE INDEX IF NOT EXISTS client_by_id ON client (client_id) WHERE client_id IS NOT NULL;
    CREATE TABLE IF NOT EXISTS relay (id INTEGER PRIMARY KEY, rai BLOB NOT NULL UNIQUE, circuit_id BLOB,
        remote_id BLOB, relay_id BLOB);
    CREATE INDEX IF NOT EXISTS relay_by_remote_id ON relay (remote_id) WHERE remote_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS relay_by_relay_id ON relay (relay_id) WHERE relay_id IS NOT NULL;
    CREATE TABLE IF NOT EXISTS event (seq INTEGER PRIMARY KEY, ip INTEGER NOT NULL, t INTEGER NOT NULL,
        since INTEGER NOT NULL, seen INTEGER NOT NULL, state INTEGER NOT NULL, server INTEGER NOT NULL,
        client INTEGER, relay INTEGER, lease INTEGER, flags INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS event_by_ip ON event (ip, t);
    CREATE INDEX IF NOT EXISTS event_by_client ON event (client, t) WHERE client IS NOT NULL;
    CREATE INDEX IF NOT EXISTS event_by_relay ON event (relay, t) WHERE relay IS NOT NULL;";

/// Interned ids the writer has seen, so most events need no lookup. Bounded: cleared when full, the
/// unique indexes find the rest.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    clients: HashMap<Client, i64>,
    relays: HashMap<Vec<u8>, i64>,
}

const INTERNED_MAX: usize = 100_000;

/// Derived ids with the client-id `01‖MAC` (the others have none).
const DERIVED_WITH_CLIENT_ID: i64 = 1 << 48;

/// The id of an Ethernet client with no client-id or the client-id `01‖MAC`: −1 − (MAC as a 48-bit number,
/// plus 2^48 with the client-id). `None` for any other client (it is interned).
pub(super) fn derived(htype: u8, mac: &[u8], cid: Option<&[u8]>) -> Option<i64> {
    let m: [u8; 6] = mac.try_into().ok().filter(|_| htype == 1)?;
    let kind = match cid {
        None => 0,
        Some([1, rest @ ..]) if rest == m => DERIVED_WITH_CLIENT_ID,
        Some(_) => return None,
    };
    Some(-1 - (i64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]) + kind))
}

/// The client a [`derived`] id stands for.
pub(super) fn underived(id: i64) -> Option<Client> {
    let v = (-1 - id).try_into().ok().filter(|v: &u64| *v < 2 << 48)?;
    let mac = v.to_be_bytes()[2..].to_vec();
    let cid = (v >> 48 == 1).then(|| [&[1u8][..], &mac].concat());
    Some((1, mac, cid))
}

impl Interner {
    fn client(&mut self, tx: &Transaction<'_>, htype: u8, mac: &[u8], cid: Option<&[u8]>) -> rusqlite::Result<i64> {
        if let Some(id) = derived(htype, mac, cid) {
            return Ok(id);
        }
        let key = (htype, mac.to_vec(), cid.map(<[u8]>::to_vec));
        if let Some(id) = self.clients.get(&key) {
            return Ok(*id);
        }
        let found: Option<i64> = tx
            .prepare_cached("SELECT id FROM client WHERE mac = ?1 AND htype = ?2 AND client_id IS ?3")?
            .query_row(params![mac, htype, cid], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached("INSERT INTO client (htype, mac, client_id) VALUES (?1, ?2, ?3)")?
                    .execute(params![htype, mac, cid])?;
                tx.last_insert_rowid()
            }
        };
        if self.clients.len() >= INTERNED_MAX {
            self.clients.clear();
        }
        self.clients.insert(key, id);
        Ok(id)
    }

    fn relay(&mut self, tx: &Transaction<'_>, rai: &[u8]) -> rusqlite::Result<i64> {
        if let Some(id) = self.relays.get(rai) {
            return Ok(*id);
        }
        let found: Option<i64> =
            tx.prepare_cached("SELECT id FROM relay WHERE rai = ?1")?.query_row([rai], |r| r.get(0)).optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                let parsed = RelayAgentInfo::parse(rai).ok();
                let (circuit, remote, relay) = match &parsed {
                    Some(r) => (r.circuit_id(), r.remote_id(), r.relay_id()),
                    None => (None, None, None),
                };
                tx.prepare_cached("INSERT INTO relay (rai, circuit_id, remote_id, relay_id) VALUES (?1, ?2, ?3, ?4)")?
                    .execute(params![rai, circuit, remote, relay])?;
                tx.last_insert_rowid()
            }
        };
        if self.relays.len() >= INTERNED_MAX {
            self.relays.clear();
        }
        self.relays.insert(rai.to_vec(), id);
        Ok(id)
    }

    /// Forget everything (after a failed transaction, whose ids were rolled back).
    pub(crate) fn clear(&mut self) {
        self.clients.clear();
        self.relays.clear();
    }
}

/// Rows per `INSERT` statement: one statement's plan and cursors serve them all, instead of being set up
/// and torn down for every event.
const ROWS_PER_INSERT: usize = 64;

/// An `INSERT` of `rows` events. `OR FAIL`: a statement that writes several rows and may abort half-way
/// needs a statement journal (a copy of every page it changes, written to a temporary file); failing
/// instead keeps what it wrote, which is just as good here, since any error rolls the whole flush back.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT OR FAIL INTO event (ip, t, since, seen, state, server, client, relay, lease, flags) VALUES ",
    );
    for i in 0..rows {
        sql.push_str(if i == 0 { "(?,?,?,?,?,?,?,?,?,?)" } else { ",(?,?,?,?,?,?,?,?,?,?)" });
    }
    sql
}

/// Append `events` inside the replica's flush transaction.
pub(crate) fn append(tx: &Transaction<'_>, events: &[Event], interner: &mut Interner) -> rusqlite::Result<()> {
    // In address order (stable: an address's own events keep theirs), see the module's doc.
    let mut in_order: Vec<&Event> = events.iter().collect();
    in_order.sort_by_key(|e| e.ip);
    let (full, single) = (insert_sql(ROWS_PER_INSERT), insert_sql(1));
    for chunk in in_order.chunks(ROWS_PER_INSERT) {
        let mut put = tx.prepare_cached(if chunk.len() == ROWS_PER_INSERT { &full } else { &single })?;
        for (i, e) in chunk.iter().enumerate() {
            let b = &e.binding;
            let t = e.changed_at();
            let client = if b.hardware_address.is_empty() && b.client_id.is_none() {
                None
            } else {
                Some(interner.client(tx, b.htype, &b.hardware_address, b.client_id.as_deref())?)
            };
            let relay = match &b.relay_agent_info {
                Some(rai) => Some(interner.relay(tx, rai)?),
                None => None,
            };
            let mut flags = 0;
            if b.data_source.is_remote() {
                flags |= REMOTE;
            }
            if e.via == super::Via::Bulk {
                flags |= VIA_BULK;
            }
            let row = params![
                u32::from(e.ip),
                t,
                i64::from(t) - i64::from(b.state_since),
                i64::from(e.seen) - i64::from(t),
                b.state.code(),
                e.server,
                client,
                relay,
                b.expires_at.map(|x| i64::from(x) - i64::from(t)),
                flags,
            ];
            if chunk.len() == ROWS_PER_INSERT {
                for (j, v) in row.iter().enumerate() {
                    put.raw_bind_parameter(i * row.len() + j + 1, v)?;
                }
            } else {
                put.execute(row)?;
            }
        }
        if chunk.len() == ROWS_PER_INSERT {
            put.raw_execute()?;
        }
    }
    Ok(())
}

/// Delete up to `batch` of the oldest events that arrived before `cutoff` (requestor clock); returns how
/// many. Events are deleted in append order, so each batch is one range of the table's own B-tree.
pub(crate) fn prune(conn: &Connection, cutoff: u32, batch: u32) -> rusqlite::Result<usize> {
    let bound: Option<i64> = conn
        .prepare_cached("SELECT seq FROM event ORDER BY seq LIMIT 1 OFFSET ?1")?
        .query_row([batch], |r| r.get(0))
        .optional()?;
    let bound = bound.unwrap_or(i64::MAX);
    conn.prepare_cached("DELETE FROM event WHERE seq < ?1 AND t + seen < ?2")?.execute(params![bound, cutoff])
}

/// A read-only view of a replica file's history.
#[derive(Debug)]
pub struct HistoryReader {
    conn: Connection,
    path: String,
    servers: Vec<String>,
    /// Stored client ids already looked up, and the id they stand for (see [`HistoryReader::row`]).
    canonical: std::cell::RefCell<HashMap<i64, i64>>,
}

/// A client as interned.
type Client = (u8, Vec<u8>, Option<Vec<u8>>);
/// An option 82 value as interned: the value, its circuit-id, remote-id and relay-id.
type Relay = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Walk back (or forward) at most this many events of one address to find where an interval starts (ends).
const WALK_MAX: usize = 100_000;

impl HistoryReader {
    /// Open a replica file's history, read-only (the watcher may be writing it meanwhile).
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let shown = path.display().to_string();
        let sql = |source| HistoryError::Sqlite { path: shown.clone(), source };
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        let has: bool = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'event'", [], |r| r.get(0))
            .map_err(sql)?;
        if !has {
            return Err(HistoryError::NoHistory { path: shown });
        }
        let mut r = Self { conn, path: shown, servers: Vec::new(), canonical: Default::default() };
        r.reload_servers()?;
        Ok(r)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> HistoryError + '_ {
        |source| HistoryError::Sqlite { path: self.path.clone(), source }
    }

    fn reload_servers(&mut self) -> Result<(), HistoryError> {
        let servers = {
            let mut st = self.conn.prepare("SELECT addr FROM server ORDER BY id").map_err(self.sql())?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(self.sql())?;
            rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?
        };
        self.servers = servers;
        Ok(())
    }

    /// Answer `q`: the intervals in force at its time, or overlapping its period, ordered by address then
    /// time. For an address, a time before its first event has no interval.
    pub fn query(&mut self, q: &Query) -> Result<Vec<Interval>, HistoryError> {
        let (from, to) = match q.window {
            Window::At(t) => (t, t),
            Window::Between { from, to } => (from.min(to), from.max(to)),
        };
        let keep = |s: &Span| match q.window {
            Window::At(t) => s.covers(t),
            Window::Between { .. } => s.overlaps(from, to),
        };
        let (ips, want): (Vec<Ipv4Addr>, Option<(bool, Vec<i64>)>) = match &q.key {
            Key::Ip(ip) => (vec![*ip], None),
            key => {
                let (clients, ids) = self.ids_of(key)?;
                (self.addresses_of(clients, &ids, to)?, Some((clients, ids)))
            }
        };
        let mut out = Vec::new();
        for ip in ips {
            let rows = self.rows_around(ip, from, to)?;
            for s in timeline::build(&rows, q.now).into_iter().filter(keep) {
                let matches = match &want {
                    None => true,
                    Some((true, ids)) => s.held() && s.client.is_some_and(|c| ids.contains(&c)),
                    Some((false, ids)) => s.held() && s.relay.is_some_and(|r| ids.contains(&r)),
                };
                if matches {
                    out.push(self.resolve(ip, s)?);
                }
            }
        }
        Ok(out)
    }

    /// The interned ids a key stands for: (true, client ids) or (false, relay ids).
    fn ids_of(&self, key: &Key) -> Result<(bool, Vec<i64>), HistoryError> {
        let (clients, sql, v, also) = match key {
            Key::Mac(m) => {
                let with_cid = [&[1u8][..], m].concat();
                let also = [derived(1, m, None), derived(1, m, Some(&with_cid))];
                (true, "SELECT id FROM client WHERE mac = ?1", m, also)
            }
            Key::ClientId(c) => {
                let also = [c.get(1..).and_then(|m| derived(1, m, Some(c))), None];
                (true, "SELECT id FROM client WHERE client_id = ?1", c, also)
            }
            Key::RemoteId(r) => (false, "SELECT id FROM relay WHERE remote_id = ?1", r, [None; 2]),
            Key::RelayId(r) => (false, "SELECT id FROM relay WHERE relay_id = ?1", r, [None; 2]),
            Key::Ip(_) => unreachable!("addresses are looked up directly"),
        };
        let mut st = self.conn.prepare_cached(sql).map_err(self.sql())?;
        let ids = st.query_map([v], |r| r.get(0)).map_err(self.sql())?;
        let mut ids = ids.collect::<Result<Vec<i64>, _>>().map_err(self.sql())?;
        ids.extend(also.into_iter().flatten());
        Ok((clients, ids))
    }

    /// Addresses with events of these clients (or relays) up to `to`.
    fn addresses_of(&self, clients: bool, ids: &[i64], to: u32) -> Result<Vec<Ipv4Addr>, HistoryError> {
        let sql = if clients {
            "SELECT DISTINCT ip FROM event WHERE client = ?1 AND t <= ?2"
        } else {
            "SELECT DISTINCT ip FROM event WHERE relay = ?1 AND t <= ?2"
        };
        let mut st = self.conn.prepare_cached(sql).map_err(self.sql())?;
        let mut ips = BTreeSet::new();
        for id in ids {
            let rows = st.query_map(params![id, to], |r| r.get::<_, u32>(0)).map_err(self.sql())?;
            for ip in rows {
                ips.insert(Ipv4Addr::from(ip.map_err(self.sql())?));
            }
        }
        Ok(ips.into_iter().collect())
    }

    /// The events of `ip` that decide its intervals over `from..=to`: those inside, the run before `from`
    /// back to where it began, and the events after `to` up to the first that ends the run going on at `to`.
    fn rows_around(&self, ip: Ipv4Addr, from: u32, to: u32) -> Result<Vec<Row>, HistoryError> {
        const COLS: &str = "seq, t, seen, state, server, client, relay, lease, flags";
        let ip = u32::from(ip);
        let mut before = Vec::new();
        {
            let mut st = self
                .conn
                .prepare_cached(&format!("SELECT {COLS} FROM event WHERE ip = ?1 AND t < ?2 ORDER BY t DESC, seq DESC"))
                .map_err(self.sql())?;
            let mut rows = st.query(params![ip, from]).map_err(self.sql())?;
            while let Some(r) = rows.next().map_err(self.sql())? {
                let r = self.row(r).map_err(self.sql())?;
                if before.first().is_some_and(|f: &Row| f.key() != r.key()) || before.len() >= WALK_MAX {
                    break;
                }
                before.push(r);
            }
        }
        before.reverse();
        let mut all = before;
        {
            let mut st = self
                .conn
                .prepare_cached(&format!(
                    "SELECT {COLS} FROM event WHERE ip = ?1 AND t >= ?2 AND t <= ?3 ORDER BY t, seq"
                ))
                .map_err(self.sql())?;
            let rows = st.query_map(params![ip, from, to], |r| self.row(r)).map_err(self.sql())?;
            for r in rows {
                all.push(r.map_err(self.sql())?);
            }
        }
        let Some(last) = all.last().copied() else { return Ok(all) };
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLS} FROM event WHERE ip = ?1 AND t > ?2 ORDER BY t, seq"))
            .map_err(self.sql())?;
        let mut rows = st.query(params![ip, to]).map_err(self.sql())?;
        let mut walked = 0;
        while let Some(r) = rows.next().map_err(self.sql())? {
            let r = self.row(r).map_err(self.sql())?;
            all.push(r);
            walked += 1;
            if r.key() != last.key() || walked >= WALK_MAX {
                break;
            }
        }
        Ok(all)
    }

    /// An event row with its client as one id per client. A file written before derived ids (schema 1)
    /// holds stored ids for Ethernet clients whose later events carry the derived id: both stand for the same
    /// client, so a lease held across the upgrade stays one holding. (Schema 2 stores no derivable client, so
    /// there the lookup finds none; it is done once per stored id and reader.)
    fn row(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
        let mut row = row(r)?;
        if let Some(id) = row.client.filter(|id| *id > 0) {
            let known = self.canonical.borrow().get(&id).copied();
            let canonical = match known {
                Some(c) => c,
                None => {
                    let stored: Option<Client> = self
                        .conn
                        .prepare_cached("SELECT htype, mac, client_id FROM client WHERE id = ?1")?
                        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    let c = stored.and_then(|(h, m, c)| derived(h, &m, c.as_deref())).unwrap_or(id);
                    self.canonical.borrow_mut().insert(id, c);
                    c
                }
            };
            row.client = Some(canonical);
        }
        Ok(row)
    }

    fn resolve(&self, ip: Ipv4Addr, s: Span) -> Result<Interval, HistoryError> {
        let client: Option<Client> = match s.client.filter(|_| s.held()) {
            Some(id) if id < 0 => underived(id),
            Some(id) => self
                .conn
                .prepare_cached("SELECT htype, mac, client_id FROM client WHERE id = ?1")
                .and_then(|mut st| st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional())
                .map_err(self.sql())?,
            None => None,
        };
        let relay: Option<Relay> = match s.relay.filter(|_| s.held()) {
            Some(id) => self
                .conn
                .prepare_cached("SELECT rai, circuit_id, remote_id, relay_id FROM relay WHERE id = ?1")
                .and_then(|mut st| st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).optional())
                .map_err(self.sql())?,
            None => None,
        };
        let (htype, mac, client_id) = client.unwrap_or_default();
        let (relay_agent_info, circuit_id, remote_id, relay_id) = relay.unwrap_or_default();
        Ok(Interval {
            ip,
            state: s.state,
            from: s.from,
            to: s.to,
            lease_end: s.lease_end,
            htype,
            mac,
            client_id,
            circuit_id,
            remote_id,
            relay_id,
            relay_agent_info,
            remote: s.remote,
            server: self.servers.get(usize::from(s.server)).cloned().unwrap_or_default(),
            seen: s.seen,
            events: s.events,
            inferred: s.inferred,
        })
    }

    /// How many events the file holds.
    pub fn events(&self) -> Result<u64, HistoryError> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM event", [], |r| r.get(0)).map_err(self.sql())?;
        Ok(n.unsigned_abs())
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let t: u32 = r.get(1)?;
    let at = |d: i64| u32::try_from(i64::from(t) + d).unwrap_or(0);
    Ok(Row {
        seq: r.get(0)?,
        t,
        seen: at(r.get(2)?),
        state: DhcpState::from_code(r.get(3)?).unwrap_or(DhcpState::Available),
        server: r.get(4)?,
        client: r.get(5)?,
        relay: r.get(6)?,
        expires: r.get::<_, Option<i64>>(7)?.map(at),
        remote: r.get::<_, i64>(8)? & REMOTE != 0,
    })
}
