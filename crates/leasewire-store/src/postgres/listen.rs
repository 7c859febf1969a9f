//! The shared change feed: LISTEN for the one NOTIFY per writing transaction, then read `seq > last_seen`.
//!
//! The notification only says "something up to seq N committed"; the rows are read here, in sequence
//! order, so the feed is exact however many notifications were coalesced or lost. A dropped connection is
//! reconnected with a growing pause, and reading resumes from the last sequence number delivered.

use super::{Inner, select};
use crate::BindingChange;
use crate::error::StoreError;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

/// Rows read per query while catching up.
const PAGE: i64 = 2048;

pub(crate) async fn run(inner: Arc<Inner>, mut last: u64, poll: Duration, out: mpsc::Sender<Vec<BindingChange>>) {
    let mut pause = Duration::from_millis(100);
    loop {
        match session(&inner, &mut last, poll, &out).await {
            Ok(()) => return,
            Err(e) => {
                if out.is_closed() {
                    return;
                }
                tracing::warn!(database = %inner.database, after_seq = last, error = %e, "change feed interrupted; reconnecting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// One connection's life: Ok when the receiver went away, Err when the connection failed.
async fn session(
    inner: &Inner,
    last: &mut u64,
    poll: Duration,
    out: &mpsc::Sender<Vec<BindingChange>>,
) -> Result<(), StoreError> {
    let (notify_tx, mut notify_rx) = mpsc::unbounded_channel();
    let (client, driver) = match &inner.tls {
        Some(tls) => {
            let (client, connection) = inner.config.connect(tls.clone()).await.map_err(|e| inner.pg(e))?;
            (client, tokio::spawn(drive(connection, notify_tx)))
        }
        None => {
            let (client, connection) = inner.config.connect(NoTls).await.map_err(|e| inner.pg(e))?;
            (client, tokio::spawn(drive(connection, notify_tx)))
        }
    };
    let result = async {
        client.batch_execute(&format!("LISTEN {}", super::CHANNEL)).await.map_err(|e| inner.pg(e))?;
        let stmt = client.prepare(select!(" WHERE seq > $1 ORDER BY seq LIMIT $2")).await.map_err(|e| inner.pg(e))?;
        loop {
            // Everything after `last`, page by page (after a reconnection this is the catch-up).
            loop {
                let after = i64::try_from(*last).unwrap_or(i64::MAX);
                let rows = client.query(&stmt, &[&after, &PAGE]).await.map_err(|e| inner.pg(e))?;
                let batch = rows
                    .iter()
                    .map(|r| super::rows::decode(r, &inner.origin).map_err(|d| inner.unreadable(d)))
                    .collect::<Result<Vec<_>, _>>()?;
                let Some(end) = batch.last().map(|c| c.seq) else { break };
                let full = batch.len() as i64 == PAGE;
                if out.send(batch).await.is_err() {
                    return Ok(());
                }
                *last = end;
                if !full {
                    break;
                }
            }
            // Wait for a notification past what we have, or the poll interval (a safety net), or the end.
            tokio::select! {
                n = notify_rx.recv() => match n {
                    None => return Err(StoreError::PostgresUnavailable {
                        database: inner.database.clone(),
                        detail: "the change feed's connection closed".into(),
                    }),
                    Some(_) => while notify_rx.try_recv().is_ok() {},
                },
                () = tokio::time::sleep(poll) => {}
                () = out.closed() => return Ok(()),
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// Run the listening connection, passing each notification's payload (the highest sequence number committed)
/// to `notify`; dropping `notify` at the end tells the session the connection is gone.
async fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>, notify: mpsc::UnboundedSender<u64>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(m) = messages.next().await {
        match m {
            Ok(AsyncMessage::Notification(n)) => {
                let _ = notify.send(n.payload().parse::<u64>().unwrap_or(u64::MAX));
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
}
