//! [`Pending`]: the answer to a durable write, for async and blocking callers alike.
//!
//! A hand-rolled one-shot slot instead of `tokio::sync::oneshot`, because tokio's `blocking_recv` panics when
//! called from inside a runtime and this crate promises not to panic; this one has no runtime at all, so a
//! tokio task `.await`s it and a plain thread [`Pending::wait`]s on it.

use crate::error::StoreError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The outcome of a write that resolves once the store made it durable (after the group transaction's
/// fsync), so the DHCP engine may acknowledge the client.
///
/// It is a [`Future`] for async callers and has [`Pending::wait`] for blocking ones. Dropping it does not
/// cancel the write: it is already queued and will be committed.
#[must_use = "a commit is only durable once its Pending resolves"]
#[derive(Debug)]
pub struct Pending<T> {
    slot: Arc<Slot<T>>,
}

/// The outcome of [`crate::LeaseStore::commit`]: the committed changes with their sequence numbers and times.
pub type PendingCommit = Pending<Vec<crate::BindingChange>>;

#[derive(Debug)]
struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

#[derive(Debug)]
enum State<T> {
    Waiting(Option<Waker>),
    Done(Result<T, StoreError>),
    Taken,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing runs user code under this lock, so poisoning cannot leave the state half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Hand a store's writer the request `make` builds around the completer of the [`Pending`] returned: `push`
/// queues it. If the writer is gone the request (and its completer) is dropped: the Pending resolves Closed.
pub(crate) fn queued<T, R>(make: impl FnOnce(Completer<T>) -> R, push: impl FnOnce(R)) -> Pending<T> {
    let (pending, done) = Pending::new();
    push(make(done));
    pending
}

impl<T> Pending<T> {
    /// A pending value and the handle that completes it.
    pub(crate) fn new() -> (Self, Completer<T>) {
        let slot = Arc::new(Slot { state: Mutex::new(State::Waiting(None)), ready: Condvar::new() });
        (Self { slot: slot.clone() }, Completer { slot: Some(slot) })
    }

    /// An already resolved value (e.g. a batch rejected before it reached the writer).
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self { slot: Arc::new(Slot { state: Mutex::new(State::Done(result)), ready: Condvar::new() }) }
    }

    /// Whether the outcome is known (waiting on it would not block).
    pub fn is_ready(&self) -> bool {
        !matches!(*self.slot.lock(), State::Waiting(_))
    }

    /// Block the calling thread until the write is durable (or failed).
    ///
    /// Safe to call from anywhere, including inside an async runtime, though there it blocks a worker
    /// thread for the duration of an fsync; prefer `.await` in async code.
    pub fn wait(self) -> Result<T, StoreError> {
        let mut state = self.slot.lock();
        loop {
            match std::mem::replace(&mut *state, State::Taken) {
                State::Done(result) => return result,
                State::Taken => return Err(StoreError::Closed),
                waiting @ State::Waiting(_) => {
                    *state = waiting;
                    state = self.slot.ready.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Done(result) => Poll::Ready(result),
            // Polled again after completion: the value was handed out already.
            State::Taken => Poll::Ready(Err(StoreError::Closed)),
            State::Waiting(waker) => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *state = State::Waiting(Some(waker));
                Poll::Pending
            }
        }
    }
}

/// The writer's end of a [`Pending`]. Dropping it without completing resolves the `Pending` with
/// [`StoreError::Closed`], so no caller waits forever on a writer that went away.
#[derive(Debug)]
pub(crate) struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Completer<T> {
    /// Resolve the `Pending` and wake whoever waits on it.
    pub(crate) fn complete(mut self, result: Result<T, StoreError>) {
        self.resolve(result);
    }

    fn resolve(&mut self, result: Result<T, StoreError>) {
        let Some(slot) = self.slot.take() else { return };
        let waker = {
            let mut state = slot.lock();
            match std::mem::replace(&mut *state, State::Done(result)) {
                State::Waiting(waker) => waker,
                _ => None,
            }
        };
        slot.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.resolve(Err(StoreError::Closed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn wait_returns_the_value_completed_from_another_thread() {
        let (pending, completer) = Pending::<u32>::new();
        let t = std::thread::spawn(move || completer.complete(Ok(7)));
        assert_eq!(pending.wait().unwrap(), 7);
        t.join().unwrap();
    }

    #[test]
    fn poll_registers_the_waker_and_is_woken_on_completion() {
        let (mut pending, completer) = Pending::<u32>::new();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut pending).poll(&mut cx).is_pending());
        completer.complete(Ok(3));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(matches!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(Ok(3))));
    }

    #[test]
    fn a_dropped_completer_resolves_as_closed() {
        let (pending, completer) = Pending::<u32>::new();
        drop(completer);
        assert!(matches!(pending.wait(), Err(StoreError::Closed)));
        assert!(matches!(Pending::<u32>::ready(Ok(1)).wait(), Ok(1)));
    }
}
