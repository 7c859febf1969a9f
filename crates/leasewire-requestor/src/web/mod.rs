//! The browser view of `watch --http`: one page (`/`, HTML, CSS and script compiled into the binary: no CDN,
//! works with no Internet) and the read-only JSON it reads.
//!
//! * `/api/bindings?q=&page=&size=`: a page of the replica, searched on the server (so a million bindings
//!   cost the browser fifty rows);
//! * `/events`: Server-Sent Events, one `change` per binding the replica applies (`reload` when the browser
//!   fell behind), so the table updates in place;
//! * `/api/counts`: bindings by state per relay; `/api/connections`: each server's link (TLS, base-time, lag,
//!   clock offset, catch-ups, gaps);
//! * `/history?ip=|mac=|client_id=|remote_id=|relay_id=` with `at=` or `from=`/`to=`: the history's intervals
//!   as JSON lines (docs/history.md), read on a blocking thread from the replica file's own read-only
//!   connection, never holding the replica.

use crate::json;
use crate::metrics::WatchMetrics;
use crate::replica::{Filter, Replica};
use crate::status::Board;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Web {
    pub replica: Arc<Mutex<Replica>>,
    pub board: Arc<Board>,
    pub metrics: Arc<WatchMetrics>,
    /// The replica file, when there is one (history is read from it).
    pub db: Option<PathBuf>,
}

#[cfg(feature = "sqlite")]
mod history;

const PAGE: &str = include_str!("page.html");
const MAX_PAGE: usize = 500;

/// The routes of the browser view, added to the HTTP endpoint's router.
pub(crate) fn routes(router: axum::Router<Web>) -> axum::Router<Web> {
    use axum::routing::get;
    router
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/bindings", get(bindings))
        .route("/api/counts", get(counts))
        .route("/api/connections", get(connections))
        .route("/events", get(events))
        .route("/history", get(history_route))
}

pub(crate) fn json_response(body: String) -> Response {
    ([("content-type", "application/json"), ("cache-control", "no-store")], body).into_response()
}

#[cfg(feature = "sqlite")]
pub(crate) fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, [("content-type", "text/plain")], msg + "\n").into_response()
}

/// `{"total":N,"page":P,"size":S,"bindings":[...]}`, each binding in the one schema (docs/json.md).
async fn bindings(State(w): State<Web>, Params(q): Params<HashMap<String, String>>) -> Response {
    let filter = Filter::parse(q.get("q").map_or("", String::as_str));
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let size: usize = q.get("size").and_then(|p| p.parse().ok()).unwrap_or(50).clamp(1, MAX_PAGE);
    let found = crate::replica::lock(&w.replica).page(&filter, page.saturating_mul(size), size);
    let mut s = String::with_capacity(256 + found.bindings.len() * 520);
    let _ = write!(s, "{{\"total\":{},\"page\":{page},\"size\":{size},\"bindings\":[", found.total);
    for (i, (b, server)) in found.bindings.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let line = json::binding_line(b, &json::Source { server: Some(server), ..Default::default() });
        s.push_str(line.trim_end());
    }
    s.push_str("]}");
    json_response(s)
}

/// `{"relays":[{"relay":"remote-id 01:02","by_state":{"ACTIVE":3,...},"total":N}]}`.
async fn counts(State(w): State<Web>) -> Response {
    let counts = crate::replica::lock(&w.replica).counts_by_relay(50);
    let mut s = String::from("{\"relays\":[");
    for (i, c) in counts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"relay\":");
        push_str(&mut s, &c.relay);
        s.push_str(",\"by_state\":{");
        let mut first = true;
        for st in leasewire_proto::DhcpState::ALL {
            let n = c.by_state[usize::from(st.code())];
            if n > 0 {
                let _ = write!(s, "{}\"{}\":{n}", if first { "" } else { "," }, st.name());
                first = false;
            }
        }
        let _ = write!(s, "}},\"total\":{}}}", c.by_state.iter().sum::<u64>());
    }
    s.push_str("]}");
    json_response(s)
}

/// One object per watched server.
async fn connections(State(w): State<Web>) -> Response {
    let (servers, total) = {
        let r = crate::replica::lock(&w.replica);
        (w.board.snapshot(&r), r.len())
    };
    let mut s = format!("{{\"bindings\":{total},\"history\":{},\"servers\":[", w.db.is_some());
    for (i, l) in servers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"server\":");
        push_str(&mut s, &l.server);
        let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
        let _ = write!(
            s,
            ",\"tls\":{},\"streaming\":{},\"seeded\":{},\"lag\":{},\"clock_offset\":{},\"catch_ups\":{},\
             \"data_missing\":{},\"gaps_filled\":{},\"open_gaps\":{},\"disconnects\":{}",
            opt(l.tls.map(|t| t.to_string())),
            l.streaming,
            l.seeded,
            opt(l.lag.map(|t| t.to_string())),
            l.clock_offset,
            l.catch_ups,
            l.data_missing,
            l.gaps_filled,
            l.open_gaps,
            l.disconnects,
        );
        json::time_field(&mut s, "last_base_time", l.last_base_time);
        json::time_field(&mut s, "saved_base_time", l.saved_base_time);
        json::field(&mut s, "last_error", l.last_error.as_deref());
        s.push('}');
    }
    s.push_str("]}");
    json_response(s)
}

fn push_str(s: &mut String, v: &str) {
    let mut tmp = String::new();
    json::field(&mut tmp, "x", Some(v));
    s.push_str(&tmp[",\"x\":".len()..]);
}

/// Every change as it is applied; `reload` when this viewer fell behind.
async fn events(State(w): State<Web>) -> impl IntoResponse {
    use futures_util::stream;
    use tokio::sync::broadcast::error::RecvError;
    let rx = crate::replica::lock(&w.replica).subscribe();
    let hello = stream::iter([Ok::<_, std::convert::Infallible>(Event::default().event("hello").data("{}"))]);
    let changes = stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(c) => {
                let src = json::Source { server: Some(&c.server), ..Default::default() };
                Event::default().event("change").data(json::binding_line(&c.binding, &src).trim_end())
            }
            Err(RecvError::Lagged(_)) => Event::default().event("reload").data("{}"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    Sse::new(futures_util::StreamExt::chain(hello, changes)).keep_alive(KeepAlive::default())
}

#[cfg(feature = "sqlite")]
use history::lines as history_route;

/// Without SQLite there is no replica file, so no history.
#[cfg(not(feature = "sqlite"))]
async fn history_route() -> Response {
    (StatusCode::NOT_FOUND, "no history: this watcher keeps no replica file\n").into_response()
}
