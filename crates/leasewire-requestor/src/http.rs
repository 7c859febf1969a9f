//! The watcher's local HTTP endpoint (off unless asked for): `/metrics` (OpenMetrics) and
//! `/bindings?ip=A` or `/bindings?mac=aa:bb:..` answering from the replica as JSON lines ("which MAC had this
//! IP", now, without asking the server).

use crate::json;
use crate::metrics::WatchMetrics;
use crate::replica::Replica;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Shared {
    replica: Arc<Mutex<Replica>>,
    metrics: Arc<WatchMetrics>,
}

/// Serve on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    replica: Arc<Mutex<Replica>>,
    metrics: Arc<WatchMetrics>,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/bindings", get(bindings))
        .with_state(Shared { replica, metrics });
    axum::serve(listener, app).await
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
    let replica = s.replica.lock().expect("replica lock");
    let found = match (q.get("ip"), q.get("mac")) {
        (Some(ip), None) => match ip.parse::<Ipv4Addr>() {
            Ok(ip) => replica.get(ip).map(|(b, server)| (b, Some(server.to_string()))).into_iter().collect::<Vec<_>>(),
            Err(_) => return (StatusCode::BAD_REQUEST, TEXT, format!("ip={ip}: not an IPv4 address\n")),
        },
        (None, Some(mac)) => match parse_hex(mac) {
            Some(hw) => replica.by_hardware_address(&hw).into_iter().map(|b| (b, None)).collect(),
            None => return (StatusCode::BAD_REQUEST, TEXT, format!("mac={mac}: not hex octets\n")),
        },
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                TEXT,
                "ask /bindings?ip=ADDR or /bindings?mac=aa:bb:cc:dd:ee:ff\n".into(),
            );
        }
    };
    let status = if found.is_empty() { StatusCode::NOT_FOUND } else { StatusCode::OK };
    let body = found.iter().map(|(b, server)| json::binding_line(b, None, &[("server", server.as_deref())])).collect();
    (status, JSONL, body)
}

/// `aa:bb:cc`, `aa-bb-cc` or `aabbcc`.
pub fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let digits: String = s.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect();
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    (0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).ok()).collect()
}
