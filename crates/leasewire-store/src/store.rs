//! The [`LeaseStore`] trait: every leasequery flavour as a view of one lease-state database.

use crate::error::StoreError;
use crate::packed::Packed;
use crate::pending::{Pending, PendingCommit};
use crate::scan::ScanFilter;
use crate::{Binding, BindingChange, DhcpState};
use std::net::Ipv4Addr;

/// How long a released, expired or otherwise non-ACTIVE record is kept before
/// [`LeaseStore::forget_expired`] may remove it: 10 minutes.
///
/// Longer than ACTIVE_LQ_RCV_TIMEOUT (120 s, RFC 7724 §5.3) so that a requestor whose connection dropped
/// and that reconnects with a query-start-time still sees the transition as a DHCPLEASEUNASSIGNED
/// (RFC 7724 §6 suggests keeping post-lease state "several minutes, well above the receive timeout").
pub const DEFAULT_RETENTION_SECS: u32 = 600;

/// What a forget removed, and the history horizon after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// The removed records as they were (their latest change).
    pub removed: Vec<BindingChange>,
    /// The history horizon once the removal is durable.
    pub horizon: u32,
}

/// The server's lease-state database.
///
/// One record per IPv4 address, the current one, tagged with the sequence number and time of its latest
/// change. That table is also the journal: "what changed since T" is the records whose latest change is at
/// or after T, in sequence order; a binding that changed several times shows up once, in its current state,
/// which is exactly what RFC 7724 §6 and §7.4.1 promise requestors (current state, not every transition).
///
/// What the journal cannot answer is a binding that was removed: the **history horizon** is the earliest
/// time T such that every binding that changed at or after T is still represented by its current record.
/// A catch-up from a time before the horizon cannot be served exactly (RFC 7724 DataMissing).
///
/// Reads are synchronous and consistent per call; writes go through one writer and resolve as a
/// [`Pending`] once durable. Paged reads take a cursor (the last address or sequence number seen), so no
/// query loads the whole table; each page is its own snapshot.
///
/// The trait is object safe: the server holds an `Arc<dyn LeaseStore>`.
pub trait LeaseStore: Send + Sync {
    /// Commit `bindings` as one atomic batch; resolves after the batch is durable (fsynced).
    ///
    /// Each binding becomes a change with the next sequence number (strictly increasing across batches,
    /// never reused, kept across restarts) and time `max(now, time of the previous commit)`, so times never
    /// go backwards in sequence order even if the clock does. Several bindings for the same address in one
    /// batch are applied in order (the last one is the record). A batch with an invalid binding is rejected
    /// whole with [`StoreError::InvalidBinding`]. `now` is the server's clock, passed in so that tests and
    /// simulations control time.
    fn commit(&self, now: u32, bindings: Vec<Binding>) -> PendingCommit;

    /// [`LeaseStore::commit`], on the condition that no address of `expected` is bound to another client
    /// than the record there names: `expected` are the records the decision rests on (a DECLINE's: the
    /// decliner's lease). A store shared by several servers refuses the batch with [`StoreError::Conflict`]
    /// when another server has meanwhile bound one of those addresses (ACTIVE, unexpired at `now`) to another
    /// client, so a server with a stale copy cannot mark that client's fresh lease ABANDONED. A store with one
    /// writer (the default here) has no one to be stale against: the caller's copy is the truth, and the
    /// batch is committed as by `commit`.
    fn commit_expecting(&self, now: u32, bindings: Vec<Binding>, expected: Vec<Binding>) -> PendingCommit {
        let _ = expected;
        self.commit(now, bindings)
    }

    /// The record of `ip` (RFC 4388 query by IP address).
    fn get(&self, ip: Ipv4Addr) -> Result<Option<BindingChange>, StoreError>;

    /// Every record with this hardware type and address, newest change first (RFC 4388 query by MAC). An
    /// empty address matches nothing.
    fn by_hardware_address(&self, htype: u8, addr: &[u8]) -> Result<Vec<BindingChange>, StoreError>;

    /// Every record with this client identifier (option 61), newest change first (RFC 4388 query by
    /// client-id).
    fn by_client_id(&self, client_id: &[u8]) -> Result<Vec<BindingChange>, StoreError>;

    /// Every record whose option 82 carries this remote-id (sub-option 2), newest change first (RFC 6148
    /// query by remote-id).
    fn by_remote_id(&self, remote_id: &[u8]) -> Result<Vec<BindingChange>, StoreError>;

    /// Every record whose option 82 carries this relay-id (sub-option 12), newest change first.
    fn by_relay_id(&self, relay_id: &[u8]) -> Result<Vec<BindingChange>, StoreError>;

    /// Up to `limit` records matching `filter` with addresses greater than `after`, ascending by address
    /// (RFC 6926 bulk queries). Page by passing the last address of the previous page: an address is never
    /// returned twice in one pass (RFC 6926 §8.2 "at most one message per address"), even while bindings
    /// change between pages.
    fn scan(
        &self,
        filter: &ScanFilter,
        after: Option<Ipv4Addr>,
        limit: usize,
    ) -> Result<Vec<BindingChange>, StoreError>;

    /// Up to `limit` records with addresses greater than `after`, ascending by address, packed: what a
    /// server's DHCP engine loads at start (page by passing the last address of the previous page). The
    /// SQLite store hands out the blocks it keeps in memory by reference, so the engine and the store hold
    /// the loaded bindings once; the default packs what [`LeaseStore::scan`] returns.
    fn scan_packed(&self, after: Option<Ipv4Addr>, limit: usize) -> Result<Vec<(Ipv4Addr, Packed)>, StoreError> {
        let page = self.scan(&ScanFilter::all(), after, limit)?;
        Ok(page.iter().map(|c| (c.binding.ip, Packed::new(&c.binding))).collect())
    }

    /// Up to `limit` records whose latest change is at or after `time` and whose sequence number is greater
    /// than `after_seq`, in sequence (= commit) order (RFC 7724 catch-up). Page by passing the last
    /// sequence number of the previous page. A binding that changes again during the pass reappears later
    /// with its new state, which RFC 7724 §7.4.1 allows.
    ///
    /// The result is exact only if [`LeaseStore::can_catch_up_from`] holds for `time` *after* the page was
    /// read (RFC 7724 §7.4.1: history can age out during a catch-up).
    fn changed_since(&self, time: u32, after_seq: Option<u64>, limit: usize) -> Result<Vec<BindingChange>, StoreError>;

    /// Up to `limit` records whose latest change has a sequence number greater than `seq`, in sequence
    /// order: for a change feed that resumes from the last sequence it published.
    fn changes_after_seq(&self, seq: u64, limit: usize) -> Result<Vec<BindingChange>, StoreError>;

    /// The earliest time T such that every binding that changed at or after T is still represented by its
    /// current record. It only moves forward: a new store starts at its creation time, and forgetting a
    /// record whose latest change was at t moves it to at least t + 1.
    fn history_horizon(&self) -> Result<u32, StoreError>;

    /// Whether a catch-up from `query_start_time` can be served exactly, i.e. whether
    /// `query_start_time >= history_horizon()`. When it is false the server answers RFC 7724 DataMissing.
    fn can_catch_up_from(&self, query_start_time: u32) -> Result<bool, StoreError> {
        Ok(query_start_time >= self.history_horizon()?)
    }

    /// Remove the records of `ips` (addresses leaving the configuration, or bindings the engine drops);
    /// unknown addresses are ignored. Moves the horizon past every removed record's change time. Resolves
    /// once durable.
    fn forget(&self, ips: &[Ipv4Addr]) -> Pending<Forgotten>;

    /// Remove up to `limit` records, oldest change first, that are not ACTIVE, whose latest change is older
    /// than `now - retention_secs`, and whose timed state (if any, e.g. ABANDONED until) has run out
    /// (`expires_at <= now`). Retention keeps a released or expired binding visible long enough for active
    /// requestors to see the transition (see [`DEFAULT_RETENTION_SECS`]). Resolves once durable.
    fn forget_expired(&self, now: u32, retention_secs: u32, limit: usize) -> Pending<Forgotten>;

    /// The highest sequence number committed so far (0 for a store that never committed).
    fn last_seq(&self) -> Result<u64, StoreError>;

    /// The number of records. May cost a pass over an index; meant for metrics and tests, not hot paths.
    fn len(&self) -> Result<u64, StoreError>;

    /// Whether the store holds no record.
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// The rule [`LeaseStore::forget_expired`] forgets a record by: not ACTIVE, its latest change (at `time`) more
/// than `retention_secs` before `now`, and no timed state still running (`expires_at <= now`). The SQLite store
/// and the server's in-memory view of a shared store apply it; the PostgreSQL store says the same in SQL, in
/// its `DELETE` (`postgres/writer.rs`).
pub fn forgettable(
    state: Option<DhcpState>,
    time: u32,
    expires_at: Option<u32>,
    now: u32,
    retention_secs: u32,
) -> bool {
    state != Some(DhcpState::Active)
        && u64::from(time) + u64::from(retention_secs) < u64::from(now)
        && expires_at.is_none_or(|e| e <= now)
}

/// What a store's writer is asked to forget: [`LeaseStore::forget`] or [`LeaseStore::forget_expired`].
pub(crate) enum Forgetting {
    Ips(Vec<Ipv4Addr>),
    Expired { now: u32, retention_secs: u32, limit: usize },
}

impl Forgetting {
    /// How many records it may remove, at least 1 (the SQLite writer bounds a group of requests by this).
    pub(crate) fn weight(&self) -> usize {
        match self {
            Self::Ips(ips) => ips.len().max(1),
            Self::Expired { limit, .. } => (*limit).max(1),
        }
    }
}

/// Iterate over every record matching `filter` in address order, fetching `page` records at a time.
///
/// A convenience over [`LeaseStore::scan`]'s keyset paging for callers that do not need to interleave
/// other work between pages.
pub fn scan_pages<'a>(
    store: &'a dyn LeaseStore,
    filter: ScanFilter,
    page: usize,
) -> impl Iterator<Item = Result<Vec<BindingChange>, StoreError>> + 'a {
    keyset_pages(page, move |after| store.scan(&filter, after, page), |c| c.binding.ip)
}

/// Iterate over every record changed at or after `time` in sequence order, `page` records at a time.
///
/// Unlike a raw [`LeaseStore::changed_since`] loop this does not check the horizon; a catch-up must call
/// [`LeaseStore::can_catch_up_from`] after each page.
pub fn changed_since_pages<'a>(
    store: &'a dyn LeaseStore,
    time: u32,
    page: usize,
) -> impl Iterator<Item = Result<Vec<BindingChange>, StoreError>> + 'a {
    keyset_pages(page, move |after| store.changed_since(time, after, page), |c| c.seq)
}

/// Keyset paging: `fetch` a page after the key of the previous page's last record (`key`), until a page
/// comes back short or an error ends it.
fn keyset_pages<'a, K: Copy + 'a>(
    page: usize,
    mut fetch: impl FnMut(Option<K>) -> Result<Vec<BindingChange>, StoreError> + 'a,
    key: impl Fn(&BindingChange) -> K + 'a,
) -> impl Iterator<Item = Result<Vec<BindingChange>, StoreError>> + 'a {
    let mut after: Option<K> = None;
    let mut done = page == 0;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match fetch(after) {
            Ok(rows) => {
                done = rows.len() < page;
                after = rows.last().map(&key);
                if rows.is_empty() { None } else { Some(Ok(rows)) }
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// What every store does before queueing a commit: a batch with a binding it could not read back unchanged is
/// refused whole, and an empty batch is done at once. `None`: queue it.
pub(crate) fn answer_before_commit(bindings: &[Binding]) -> Option<PendingCommit> {
    if let Some((ip, problem)) = bindings.iter().find_map(|b| b.validate().err().map(|p| (b.ip, p))) {
        return Some(Pending::ready(Err(StoreError::InvalidBinding { ip, problem })));
    }
    bindings.is_empty().then(|| Pending::ready(Ok(Vec::new())))
}
