//! `/history`: the history's intervals as JSON lines (docs/history.md), read on a blocking thread from the
//! replica file's own read-only connection, never holding the replica.

use super::{Web, bad_request};
use crate::history::{self, HistoryReader, Key, Query, Window};
use crate::json;
use axum::extract::{Query as Params, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// The history's intervals as JSON lines (an empty body when none; `404` when the watcher keeps no history).
pub(crate) async fn lines(State(w): State<Web>, Params(q): Params<HashMap<String, String>>) -> Response {
    let Some(db) = w.db.clone() else {
        return (StatusCode::NOT_FOUND, "no history: this watcher keeps none (no replica file, or no retention)\n")
            .into_response();
    };
    let query = match history_query(&q) {
        Ok(query) => query,
        Err(e) => return bad_request(e),
    };
    let answered = tokio::task::spawn_blocking(move || HistoryReader::open(&db)?.query(&query)).await;
    match answered {
        Ok(Ok(intervals)) => {
            let body: String = intervals.iter().map(json::interval_line).collect();
            ([("content-type", "application/jsonl"), ("cache-control", "no-store")], body).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
    }
}

/// Read `/history`'s parameters: one key, and `at` or `from`/`to` (default: everything up to now).
fn history_query(q: &HashMap<String, String>) -> Result<Query, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
    let hex = |name: &str, v: &str| leasewire_proto::hex::parse(v).ok_or_else(|| format!("{name}={v}: not hex octets"));
    let keys: Vec<_> = ["ip", "mac", "client_id", "remote_id", "relay_id"]
        .into_iter()
        .filter_map(|k| q.get(k).map(|v| (k, v.as_str())))
        .collect();
    let key = match keys.as_slice() {
        [("ip", v)] => Key::Ip(v.parse().map_err(|_| format!("ip={v}: not an IPv4 address"))?),
        [("mac", v)] => Key::Mac(hex("mac", v)?),
        [("client_id", v)] => Key::ClientId(hex("client_id", v)?),
        [("remote_id", v)] => Key::RemoteId(hex("remote_id", v)?),
        [("relay_id", v)] => Key::RelayId(hex("relay_id", v)?),
        _ => {
            return Err("ask /history with one of ip=, mac=, client_id=, remote_id=, relay_id= (hex), \
                         and at=TIME or from=TIME&to=TIME"
                .into());
        }
    };
    let time =
        |name: &str| q.get(name).map(|v| history::time::parse(v, now).map_err(|e| format!("{name}: {e}"))).transpose();
    let window = match (time("at")?, time("from")?, time("to")?) {
        (Some(at), None, None) => Window::At(at),
        (None, from, to) => Window::Between { from: from.unwrap_or(0), to: to.unwrap_or(now) },
        _ => return Err("at= or from=/to=, not both".into()),
    };
    Ok(Query { key, window, now })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn history_parameters_take_one_key_and_a_time() {
        let a = history_query(&q(&[("ip", "10.0.0.1"), ("at", "1800000000")])).unwrap();
        assert_eq!((a.key, a.window), (Key::Ip("10.0.0.1".parse().unwrap()), Window::At(1_800_000_000)));
        let b = history_query(&q(&[("mac", "02:00:00:00:00:01"), ("from", "2h ago")])).unwrap();
        assert!(matches!(b.window, Window::Between { to, from } if to == b.now && from == b.now - 7200));
        for bad in [
            q(&[("ip", "nope")]),
            q(&[]),
            q(&[("ip", "10.0.0.1"), ("mac", "02")]),
            q(&[("mac", "zz")]),
            q(&[("ip", "10.0.0.1"), ("at", "soon")]),
            q(&[("ip", "10.0.0.1"), ("at", "now"), ("from", "now")]),
        ] {
            assert!(history_query(&bad).is_err(), "{bad:?}");
        }
    }
}
