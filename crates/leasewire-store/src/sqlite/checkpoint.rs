//! The checkpointer thread: copies the write-ahead log into the database file off the commit path.
//!
//! SQLite's automatic checkpoint runs inside whichever COMMIT crosses the threshold, so that commit (and
//! every committer grouped with it) waits for random writes into the database file plus its fsync. Here the
//! writer never checkpoints (`wal_autocheckpoint = 0`); this thread runs PASSIVE checkpoints on its own
//! connection, which in WAL mode proceed concurrently with the writer and readers. The WAL restarts from
//! its beginning at the first commit after a complete checkpoint, so it stays bounded while the thread
//! keeps up.

use rusqlite::Connection;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often to checkpoint when nothing asks sooner.
const PERIOD: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Signal {
    state: Mutex<(bool, bool)>, // (work requested, stop)
    cond: Condvar,
}

/// Handle to the checkpointer thread; stopping it (or dropping the handle) joins it.
pub(crate) struct Checkpointer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn spawn(conn: Connection) -> std::io::Result<Self> {
        let signal = Arc::new(Signal::default());
        let s = signal.clone();
        let thread = std::thread::Builder::new().name("leasewire-store-checkpoint".into()).spawn(move || {
            loop {
                {
                    let mut state = s.state.lock().unwrap_or_else(|p| p.into_inner());
                    if !state.0 && !state.1 {
                        state = s.cond.wait_timeout(state, PERIOD).unwrap_or_else(|p| p.into_inner()).0;
                    }
                    if state.1 {
                        break;
                    }
                    state.0 = false;
                }
                // Errors (e.g. SQLITE_BUSY while a reader pins old frames) only delay the copy; the WAL keeps
                // every committed frame until a later checkpoint succeeds.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            let _ = conn.close();
        })?;
        Ok(Self { signal, thread: Some(thread) })
    }

    /// Ask for a checkpoint soon (the writer calls this when the WAL has grown).
    pub(crate) fn nudge(&self) {
        let mut state = self.signal.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.0 {
            state.0 = true;
            self.signal.cond.notify_one();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.signal.state.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
        self.signal.cond.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
