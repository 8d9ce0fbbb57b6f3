//! `refresh!`: a call of a `#[cached]` function that recomputes its entry
//! and stores it, even when a fresh value is stored.
//!
//! The call's future is polled for the first time with a request set in a
//! thread-local flag; the cached call takes it as it starts, before its
//! first await, in that same poll. A call that starts later on the thread
//! (a cached function the body calls) does not see it.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};

/// How many requests are set, on every thread: while none is (nearly
/// always), a call does not look at its thread's flag.
static SET: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set while a `refresh!` polls its call for the first time.
    static ASKED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the cached call starting now is a refresh (the request is taken).
#[inline]
pub(crate) fn asked() -> bool {
    // A thread sees its own increment: a stale zero is another thread's.
    SET.load(Relaxed) != 0
        && ASKED.with(|asked| {
            let refresh = asked.get();
            if refresh {
                asked.set(false);
            }
            refresh
        })
}

/// The future of `refresh!(f(args))`: the call's outcome, computed now.
#[must_use = "a refresh does nothing unless awaited"]
pub struct Refresh<F: Future> {
    call: Pin<Box<F>>,
    started: bool,
}

/// Makes `call`, a call of a `#[cached]` function, a refresh of its entry.
pub fn refresh<F: Future>(call: F) -> Refresh<F> {
    Refresh {
        call: Box::pin(call),
        started: false,
    }
}

impl<F: Future> Future for Refresh<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.started {
            return self.call.as_mut().poll(cx);
        }
        self.started = true;
        let request = Request::set();
        let poll = self.call.as_mut().poll(cx);
        if Request::unused() {
            tracing::warn!(
                "refresh! of a call that is not of a #[cached] function: it ran as a plain call"
            );
        }
        drop(request);
        poll
    }
}

/// A request set on this thread; taken back when dropped, even if the
/// call's poll panics.
struct Request;

impl Request {
    fn set() -> Self {
        SET.fetch_add(1, Relaxed);
        ASKED.with(|asked| asked.set(true));
        Self
    }

    /// Whether no cached call took the request set on this thread.
    fn unused() -> bool {
        ASKED.with(Cell::get)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        ASKED.with(|asked| asked.set(false));
        SET.fetch_sub(1, Relaxed);
    }
}
