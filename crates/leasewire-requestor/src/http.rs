//! The watcher's local HTTP endpoint (off unless asked for): `/metrics` (OpenMetrics),
//! `/bindings?ip=A` or `/bindings?mac=aa:bb:..` answering from the replica as JSON lines ("which MAC had this
//! IP", now, without asking the server), and the browser view with its API and `/history` (`web`).
//! Read-only: nothing here changes the replica.

use crate::Watching;
use crate::json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

type Shared = crate::web::Web;

/// Serve `watcher`'s replica, status, metrics and history on `listener` until the returned future is dropped
/// (it holds what it serves, not the handle: the watcher may stop first, the pages then show the last state).
pub fn serve(
    listener: tokio::net::TcpListener,
    watcher: &Watching,
) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
    let shared = Shared {
        replica: watcher.replica().clone(),
        board: watcher.board().clone(),
        metrics: watcher.metrics().clone(),
        db: watcher.history_file().map(Into::into),
    };
    let app = axum::Router::new().route("/metrics", get(metrics_page)).route("/bindings", get(bindings));
    let app = crate::web::routes(app).with_state(shared);
    async move { axum::serve(listener, app).await }
}

/// Bind `addr` (so the caller learns of a busy port before starting).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn metrics_page(State(s): State<Shared>) -> impl axum::response::IntoResponse {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}

async fn bindings(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    const JSONL: [(&str, &str); 1] = [("content-type", "application/jsonl")];
    const TEXT: [(&str, &str); 1] = [("content-type", "text/plain")];
    enum Key {
        Ip(Ipv4Addr),
        Mac(Vec<u8>),
    }
    // Parse first: nothing the client sends is looked at with the replica locked.
    let key = match (q.get("ip"), q.get("mac")) {
        (Some(ip), None) => match ip.parse::<Ipv4Addr>() {
            Ok(ip) => Key::Ip(ip),
            Err(_) => return (StatusCode::BAD_REQUEST, TEXT, format!("ip={ip}: not an IPv4 address\n")),
        },
        (None, Some(mac)) => match parse_hardware_address(mac) {
            Some(hw) => Key::Mac(hw),
            None => return (StatusCode::BAD_REQUEST, TEXT, format!("mac={mac}: not hex octets\n")),
        },
        _ => {
            let usage = "ask /bindings?ip=ADDR or /bindings?mac=aa:bb:cc:dd:ee:ff\n";
            return (StatusCode::BAD_REQUEST, TEXT, usage.into());
        }
    };
    let found: Vec<_> = {
        let replica = crate::replica::lock(&s.replica);
        match key {
            Key::Ip(ip) => replica.get(ip).map(|(b, server)| (b, server.to_string())).into_iter().collect(),
            Key::Mac(hw) => replica.by_hardware_address(&hw).into_iter().map(|(b, s)| (b, s.to_string())).collect(),
        }
    };
    let status = if found.is_empty() { StatusCode::NOT_FOUND } else { StatusCode::OK };
    let body = found
        .iter()
        .map(|(b, server)| json::binding_line(b, &json::Source { server: Some(server), ..Default::default() }))
        .collect();
    (status, JSONL, body)
}

/// A hardware address: hex octets (`aa:bb:cc`, `aa-bb-cc`, `aabbcc`), at most 16 (RFC 2131 chaddr).
fn parse_hardware_address(s: &str) -> Option<Vec<u8>> {
    leasewire_proto::hex::parse(s).filter(|b| b.len() <= leasewire_proto::MAX_HARDWARE_ADDRESS_LEN)
}

#[cfg(test)]
mod tests {
    use super::parse_hardware_address;

    #[test]
    fn a_hardware_address_is_at_most_16_octets() {
        assert_eq!(parse_hardware_address("02:00:0a"), Some(vec![2, 0, 10]));
        assert_eq!(parse_hardware_address("00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00"), None);
        assert_eq!(parse_hardware_address("a\u{e9}b"), None);
    }
}
