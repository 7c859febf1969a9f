//! The shared store: one PostgreSQL database behind several leasewire servers (feature `postgres`).
//!
//! * Same model as the SQLite store: one row per address (the current record) tagged with the sequence
//!   number and time of its latest change, so the behaviour suite runs unchanged against both.
//! * Writes: one writer task per server does group commit (as the SQLite writer): each group is one
//!   transaction that first locks the journal counters (`lw_meta`), so writers of all servers are
//!   serialised and sequence numbers become visible in order (see `schema`). With
//!   [`PgOptions::guard_claims`] the writer also arbitrates between servers (see `writer::refuses`): a
//!   batch that would take an address another client holds is refused with [`StoreError::Conflict`].
//! * Reads are queries on a connection pool. The trait is synchronous: each call runs on the store's own
//!   small tokio runtime and the caller waits for the answer (the same [`Pending`] the writer completes), so
//!   it works from plain threads and from inside another runtime alike.
//! * [`PgStore::follow`] is the shared change feed: a LISTEN connection woken by one NOTIFY per writing
//!   transaction (carrying only the highest sequence number), that reads `seq > last_seen` itself and so
//!   resumes exactly where it was after a disconnection.

mod listen;
mod rows;
mod schema;
mod writer;

pub use schema::{CHANNEL, PG_SCHEMA_VERSION};

use crate::error::StoreError;
use crate::pending::{Pending, PendingCommit};
use crate::scan::{ScanFilter, ScanKey};
use crate::store::{Forgetting, Forgotten, LeaseStore};
use crate::{Binding, BindingChange};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;
use writer::Request;

/// A shared store's change feed ([`PgStore::follow`]): every server's committed changes, in sequence order, in
/// batches. Changes with data-source REMOTE were made by another server. The server takes its Active
/// Leasequery feed from here in shared mode, so every server's requestors see one order.
pub type SharedChanges = mpsc::Receiver<Vec<BindingChange>>;

/// The longest a connection may sit idle inside a transaction before PostgreSQL ends its session (see
/// [`PgStore::open`]): far above a group transaction's few round trips, short enough that one partitioned
/// server cannot stall the others' writers for long.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

/// How to open a [`PgStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The server's current time (Unix seconds): the creation time and history horizon of a database this
    /// open initialises.
    pub now: u32,
    /// This server's name in the database (`origin` of the rows it writes). Rows written under another
    /// origin read with data-source REMOTE. Every server sharing a database needs its own.
    pub origin: String,
    /// Refuse batches that would take an address bound to another client (see [`StoreError::Conflict`]).
    /// On for servers sharing a database; off gives the plain [`LeaseStore`] contract (every batch is
    /// applied), which is what the behaviour suite checks.
    pub guard_claims: bool,
    /// Connections in the read pool.
    pub pool_size: usize,
    /// The most bindings one group transaction takes from the queue.
    pub max_group_bindings: usize,
    /// How long to wait for a connection (at open, and for each read or write).
    pub connect_timeout: Duration,
    /// TLS to the database: every connection (the pool's and the change feed's) then requires TLS with this
    /// client configuration, whatever `sslmode` the URL says, so a server that cannot do TLS is refused rather
    /// than spoken to in the clear. `None`: no TLS (a Unix socket, or a trusted network).
    pub tls: Option<PgTls>,
}

/// A rustls client configuration for the database connections (the CA that signs the database server's
/// certificate, and a client certificate when the database authenticates by certificate).
#[derive(Debug, Clone)]
pub struct PgTls(pub Arc<rustls::ClientConfig>);

impl PartialEq for PgTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PgTls {}

impl PgOptions {
    /// Defaults: no arbitration, 8 pooled connections, groups of up to 4096 bindings, 10 s to connect, no TLS.
    pub fn new(now: u32, origin: impl Into<String>) -> Self {
        Self {
            now,
            origin: origin.into(),
            guard_claims: false,
            pool_size: 8,
            max_group_bindings: 4096,
            connect_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// What every task of the store shares.
pub(crate) struct Inner {
    pub pool: Pool,
    pub config: tokio_postgres::Config,
    /// The TLS connector of every connection, if TLS is on.
    pub tls: Option<MakeRustlsConnect>,
    /// The database as it appears in errors: hosts, port and name, never the password.
    pub database: String,
    pub origin: String,
}

impl Inner {
    pub(crate) fn pg(&self, e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres { database: self.database.clone(), source: Arc::new(e) }
    }

    pub(crate) fn unreadable(&self, detail: String) -> StoreError {
        StoreError::PostgresData { database: self.database.clone(), detail }
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => self.pg(e),
            other => StoreError::PostgresUnavailable { database: self.database.clone(), detail: other.to_string() },
        })
    }

    /// Run a query and decode its rows.
    pub(crate) async fn select(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<BindingChange>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await.map_err(|e| self.pg(e))?;
        let rows = client.query(&stmt, params).await.map_err(|e| self.pg(e))?;
        rows.iter().map(|r| rows::decode(r, &self.origin).map_err(|d| self.unreadable(d))).collect()
    }

    async fn meta(&self, column: &str) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client.query_one(&format!("SELECT {column} FROM lw_meta WHERE id = 1"), &[]).await;
        row.map_err(|e| self.pg(e))?.try_get(0).map_err(|e| self.pg(e))
    }
}

/// The PostgreSQL lease store. See the module documentation and [`LeaseStore`] for the contract.
///
/// Dropping it finishes every queued write, then stops its runtime (and with it any [`PgStore::follow`]
/// feed).
pub struct PgStore {
    inner: Arc<Inner>,
    requests: Option<mpsc::UnboundedSender<Request>>,
    writer_done: Option<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("database", &self.inner.database)
            .field("origin", &self.inner.origin)
            .finish_non_exhaustive()
    }
}

/// Hosts, port and database name of a connection configuration, for messages (no password).
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgresql://{}:{port}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
}

/// A server cut off from the database in the middle of a group transaction would hold the journal lock
/// (every server's writers take turns on it) until its connection died, which a silent partition can make
/// take many minutes. PostgreSQL ends a session idle inside a transaction after
/// `idle_in_transaction_session_timeout`, releasing the lock; the cut-off server's commit fails (no ACK) and
/// the others go on. An operator's own value in the URL's `options` wins.
fn with_idle_in_transaction_timeout(config: &mut tokio_postgres::Config) {
    let idle = format!("-c idle_in_transaction_session_timeout={}", IDLE_IN_TRANSACTION.as_millis());
    match config.get_options() {
        Some(o) if o.contains("idle_in_transaction_session_timeout") => {}
        Some(o) => {
            let startup = format!("{o} {idle}");
            config.options(startup);
        }
        None => {
            config.options(idle);
        }
    }
}

impl PgStore {
    /// Connect to the database at `url` (a `postgresql://` URL or a `key=value` connection string),
    /// create or migrate the schema, and start the writer.
    ///
    /// Errors name the database: [`StoreError::PostgresConfig`] for a URL that does not parse,
    /// [`StoreError::Postgres`] / [`StoreError::PostgresUnavailable`] when it cannot be reached,
    /// [`StoreError::NewerPostgresSchema`] for a schema a newer leasewire wrote.
    pub fn open(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| StoreError::PostgresConfig { detail: e.to_string() })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        with_idle_in_transaction_timeout(&mut config);
        if config.get_application_name().is_none() {
            config.application_name(format!("leasewire {}", options.origin));
        }
        let tls = options.tls.as_ref().map(|t| MakeRustlsConnect::new((*t.0).clone()));
        if tls.is_some() {
            // Never fall back to the clear (`prefer`, the default, would).
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        }
        let database = describe(&config);
        let io =
            |e: std::io::Error| StoreError::PostgresUnavailable { database: database.clone(), detail: e.to_string() };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leasewire-pg")
            .enable_all()
            .build()
            .map_err(io)?;
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), recycling),
            None => Manager::from_config(config.clone(), NoTls, recycling),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build();
        let pool = match pool {
            Ok(p) => p,
            Err(e) => {
                // Not a plain drop: dropping a runtime panics when `open` runs inside another runtime.
                runtime.shutdown_background();
                return Err(StoreError::PostgresUnavailable { database, detail: e.to_string() });
            }
        };
        let inner = Arc::new(Inner { pool, config, tls, database, origin: options.origin.clone() });
        let handle = runtime.handle().clone();
        let migrated = {
            let inner = inner.clone();
            let now = options.now;
            wait_on(&handle, async move { writer::migrate(&inner, now).await })
        };
        if let Err(e) = migrated {
            runtime.shutdown_background();
            return Err(e);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let w = writer::Writer::new(inner.clone(), options.guard_claims, options.max_group_bindings);
        handle.spawn(async move {
            w.run(rx).await;
            let _ = done_tx.send(());
        });
        Ok(Self {
            inner,
            requests: Some(tx),
            writer_done: Some(std::sync::Mutex::new(done_rx)),
            runtime: Some(runtime),
            handle,
        })
    }

    /// The database as errors name it (no password).
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    /// Where the shared journal ends now: its last sequence number and that change's commit time, read
    /// together. Commit times never decrease in sequence order (each is `max(now, previous)`, under the lock
    /// every writer of every server takes), so every change after that number — committed later by any
    /// server, or in flight right now — is stamped at or after that time. Start [`PgStore::follow`] from the
    /// number; the time is the floor of what the feed has not delivered yet until its first change.
    pub fn journal_end(&self) -> Result<(u64, u32), StoreError> {
        let (seq, time) = self.call(|inner| {
            Box::pin(async move {
                let client = inner.client().await?;
                let row = client
                    .query_one("SELECT last_seq, last_time FROM lw_meta WHERE id = 1", &[])
                    .await
                    .map_err(|e| inner.pg(e))?;
                let seq: i64 = row.try_get(0).map_err(|e| inner.pg(e))?;
                let time: i64 = row.try_get(1).map_err(|e| inner.pg(e))?;
                Ok((seq, time))
            })
        })?;
        let seq = u64::try_from(seq).map_err(|_| self.inner.unreadable(format!("last_seq {seq} out of range")))?;
        let time = u32::try_from(time).map_err(|_| self.inner.unreadable(format!("last_time {time} out of range")))?;
        Ok((seq, time))
    }

    /// The shared change feed: every change committed after `after_seq` by any server on this database (this
    /// one included), in sequence order, as batches; changes made by other servers carry data-source REMOTE.
    ///
    /// One LISTEN connection is woken by the one NOTIFY each writing transaction sends (carrying its highest
    /// sequence number) and reads `seq > last_seen` itself; it also polls every `poll` in case a
    /// notification was missed. When the connection drops it reconnects and resumes from the last sequence
    /// number it delivered, so nothing is lost; a binding that changed several times meanwhile arrives once,
    /// in its current state (as catch-up does, RFC 7724 §6). Ends when the receiver is dropped or the store
    /// is.
    pub fn follow(&self, after_seq: u64, poll: Duration) -> SharedChanges {
        let (tx, rx) = mpsc::channel(64);
        self.handle.spawn(listen::run(self.inner.clone(), after_seq, poll, tx));
        rx
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Inner>) -> std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>,
    ) -> Result<T, StoreError> {
        wait_on(&self.handle, f(self.inner.clone()))
    }

    fn send<T>(&self, make: impl FnOnce(crate::pending::Completer<T>) -> Request) -> Pending<T> {
        crate::pending::queued(make, |request| {
            if let Some(requests) = &self.requests {
                let _ = requests.send(request);
            }
        })
    }

    fn lookup(&self, sql: &'static str, key: Vec<u8>, htype: Option<i16>) -> Result<Vec<BindingChange>, StoreError> {
        self.call(move |inner| {
            Box::pin(async move {
                match htype {
                    Some(h) => inner.select(sql, &[&key, &h]).await,
                    None => inner.select(sql, &[&key]).await,
                }
            })
        })
    }
}

/// Run `f` on the store's runtime and block until it finishes. Works from any thread, including a worker of
/// another runtime (where `block_on` would panic): the caller only waits on a [`Pending`].
fn wait_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    f: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (pending, done) = Pending::new();
    handle.spawn(async move { done.complete(f.await) });
    pending.wait()
}

impl Drop for PgStore {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(done) = self.writer_done.take() {
            // The writer finishes what is queued; bounded so a dead database cannot hang a shutdown.
            let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
            let _ = done.recv_timeout(Duration::from_secs(30));
        }
        if let Some(rt) = self.runtime.take() {
            // Not `drop`: that panics when the last handle goes away inside another runtime.
            rt.shutdown_background();
        }
    }
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `SELECT <the columns rows::decode reads> FROM lw_binding` followed by the rest of a query.
macro_rules! select {
    ($rest:literal) => {
        concat!(
            "SELECT ip, seq, time, origin, state, state_since, expires_at, cltt, htype, data_source, hwaddr, \
             client_id, relay_agent_info, options, reserved_for FROM lw_binding",
            $rest
        )
    };
}
pub(crate) use select;

impl LeaseStore for PgStore {
    fn commit(&self, now: u32, bindings: Vec<Binding>) -> PendingCommit {
        if let Some(answer) = crate::store::answer_before_commit(&bindings) {
            return answer;
        }
        self.send(|done| Request::Commit { now, bindings, expected: Vec::new(), done })
    }

    fn commit_expecting(&self, now: u32, bindings: Vec<Binding>, expected: Vec<Binding>) -> PendingCommit {
        if let Some(answer) = crate::store::answer_before_commit(&bindings) {
            return answer;
        }
        self.send(|done| Request::Commit { now, bindings, expected, done })
    }

    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError> {
        let ip = i64::from(u32::from(ip));
        let rows =
            self.call(move |inner| Box::pin(async move { inner.select(select!(" WHERE ip = $1"), &[&ip]).await }))?;
        Ok(rows.into_iter().next())
    }

    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        if addr.is_empty() {
            return Ok(Vec::new());
        }
        const SQL: &str = select!(" WHERE hwaddr = $1 AND htype = $2 ORDER BY seq DESC");
        self.lookup(SQL, addr.to_vec(), Some(i16::from(htype)))
    }

    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        const SQL: &str = select!(" WHERE client_id = $1 ORDER BY seq DESC");
        self.lookup(SQL, client_id.to_vec(), None)
    }

    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        const SQL: &str = select!(" WHERE remote_id = $1 ORDER BY seq DESC");
        self.lookup(SQL, remote_id.to_vec(), None)
    }

    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<BindingChange>, StoreError> {
        const SQL: &str = select!(" WHERE relay_id = $1 ORDER BY seq DESC");
        self.lookup(SQL, relay_id.to_vec(), None)
    }

    fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<Ipv4Addr>,
        limit: usize,
    ) -> Result<Vec<BindingChange>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let after = after.map_or(-1, |a| i64::from(u32::from(a)));
        let lo = filter.changed_on_or_after.map_or(i64::MIN, i64::from);
        let hi = filter.changed_on_or_before.map_or(i64::MAX, i64::from);
        let limit = limit_of(limit);
        // Keyset paging on the primary key (address order); the key's index narrows it first. The window is
        // `ScanFilter::in_window`: commit time, start-time-of-state or CLTT inside it (BLQ-8.2-11).
        const RANGE: &str = " WHERE ip > $1 AND ((time >= $2 AND time <= $3) OR (state_since >= $2 AND state_since \
                             <= $3) OR (cltt >= $2 AND cltt <= $3))";
        let (sql, key, htype): (String, Vec<u8>, Option<i16>) = match &filter.key {
            ScanKey::All => (format!("{}{RANGE} ORDER BY ip LIMIT $4", select!("")), Vec::new(), None),
            ScanKey::RelayId(id) => {
                (format!("{}{RANGE} AND relay_id = $5 ORDER BY ip LIMIT $4", select!("")), id.clone(), None)
            }
            ScanKey::RemoteId(id) => {
                (format!("{}{RANGE} AND remote_id = $5 ORDER BY ip LIMIT $4", select!("")), id.clone(), None)
            }
            ScanKey::ClientId(id) => {
                (format!("{}{RANGE} AND client_id = $5 ORDER BY ip LIMIT $4", select!("")), id.clone(), None)
            }
            ScanKey::HardwareAddress { addr, .. } if addr.is_empty() => return Ok(Vec::new()),
            ScanKey::HardwareAddress { htype, addr } => (
                format!("{}{RANGE} AND hwaddr = $5 AND htype = $6 ORDER BY ip LIMIT $4", select!("")),
                addr.clone(),
                Some(i16::from(*htype)),
            ),
        };
        let keyed = !matches!(filter.key, ScanKey::All);
        self.call(move |inner| {
            Box::pin(async move {
                match htype {
                    Some(h) => inner.select(&sql, &[&after, &lo, &hi, &limit, &key, &h]).await,
                    None if keyed => inner.select(&sql, &[&after, &lo, &hi, &limit, &key]).await,
                    None => inner.select(&sql, &[&after, &lo, &hi, &limit]).await,
                }
            })
        })
    }

    fn changed_since(&self, time: u32, after_seq: Option<u64>, limit: usize) -> Result<Vec<BindingChange>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let time = i64::from(time);
        let Ok(after) = i64::try_from(after_seq.unwrap_or(0)) else { return Ok(Vec::new()) };
        let limit = limit_of(limit);
        self.call(move |inner| {
            Box::pin(async move {
                inner
                    .select(select!(" WHERE time >= $1 AND seq > $2 ORDER BY seq LIMIT $3"), &[&time, &after, &limit])
                    .await
            })
        })
    }

    fn changes_after_seq(&self, seq: u64, limit: usize) -> Result<Vec<BindingChange>, StoreError> {
        let Ok(seq) = i64::try_from(seq) else { return Ok(Vec::new()) };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = limit_of(limit);
        self.call(move |inner| {
            Box::pin(
                async move { inner.select(select!(" WHERE seq > $1 ORDER BY seq LIMIT $2"), &[&seq, &limit]).await },
            )
        })
    }

    fn history_horizon(&self) -> Result<u32, StoreError> {
        let v = self.call(|inner| Box::pin(async move { inner.meta("horizon").await }))?;
        u32::try_from(v).map_err(|_| self.inner.unreadable(format!("horizon {v} out of range")))
    }

    fn forget(&self, ips: &[Ipv4Addr]) -> Pending<Forgotten> {
        self.send(|done| Request::Forget(Forgetting::Ips(ips.to_vec()), done))
    }

    fn forget_expired(&self, now: u32, retention_secs: u32, limit: usize) -> Pending<Forgotten> {
        self.send(|done| Request::Forget(Forgetting::Expired { now, retention_secs, limit }, done))
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let v = self.call(|inner| Box::pin(async move { inner.meta("last_seq").await }))?;
        u64::try_from(v).map_err(|_| self.inner.unreadable(format!("last_seq {v} out of range")))
    }

    fn len(&self) -> Result<u64, StoreError> {
        let v = self.call(|inner| {
            Box::pin(async move {
                let client = inner.client().await?;
                let row = client.query_one("SELECT count(*) FROM lw_binding", &[]).await.map_err(|e| inner.pg(e))?;
                row.try_get::<_, i64>(0).map_err(|e| inner.pg(e))
            })
        })?;
        Ok(v as u64)
    }
}

#[cfg(test)]
mod session_options_tests {
    use super::*;

    #[test]
    fn the_idle_in_transaction_timeout_is_added_unless_the_operator_set_one() {
        let mut c: tokio_postgres::Config = "host=/tmp dbname=x".parse().unwrap();
        with_idle_in_transaction_timeout(&mut c);
        assert_eq!(
            c.get_options(),
            Some(format!("-c idle_in_transaction_session_timeout={}", IDLE_IN_TRANSACTION.as_millis()).as_str())
        );
        let mut c: tokio_postgres::Config = "host=/tmp options='-c work_mem=8MB'".parse().unwrap();
        with_idle_in_transaction_timeout(&mut c);
        assert!(c.get_options().unwrap().starts_with("-c work_mem=8MB -c idle_in_transaction_session_timeout="));
        let mut c: tokio_postgres::Config =
            "host=/tmp options='-c idle_in_transaction_session_timeout=60000'".parse().unwrap();
        with_idle_in_transaction_timeout(&mut c);
        assert_eq!(c.get_options(), Some("-c idle_in_transaction_session_timeout=60000"));
    }
}
