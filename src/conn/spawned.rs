//! Handlers of one connection that run on tasks of their own ([`Spawned`]), and the barrier an
//! unsafe request waits at until they have all finished ([`Barrier`]).
//!
//! Not the `pipelined_in_flight_requests` gauge, which counts every request read and not yet
//! answered: this counts only the handlers that did not finish on their first poll.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Context;

use tokio::sync::Notify;

use crate::stats::ServerStats;

/// Handlers of one connection that run on their own tasks and have not finished yet.
#[derive(Debug)]
pub(crate) struct Spawned {
    count: AtomicUsize,
    idle: Notify,
    /// A finished handler's answer ends the connection. Set by the handler's task, which is
    /// the first to know: the answer may wait behind earlier ones before the connection sees
    /// it, and nothing after it may be started meanwhile (RFC 9112 §9.6). The connection hands
    /// it to `KeepAlive::answer_ends_connection`, which alone decides.
    answered_closing: AtomicBool,
    /// The server-wide count, kept in step with this one.
    stats: ServerStats,
}

/// Held by a spawned handler; dropping it (on finish or panic) marks the handler finished.
pub(crate) struct SpawnedGuard(Arc<Spawned>);

impl Spawned {
    pub(crate) fn new(stats: ServerStats) -> Self {
        Spawned {
            count: AtomicUsize::new(0),
            idle: Notify::new(),
            answered_closing: AtomicBool::new(false),
            stats,
        }
    }

    pub(crate) fn enter(self: &Arc<Self>) -> SpawnedGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.stats.handler_started();
        SpawnedGuard(Arc::clone(self))
    }

    /// A spawned handler's answer ends the connection (see `answered_closing`).
    pub(crate) fn answered_closing(&self) -> bool {
        self.answered_closing.load(Ordering::Acquire)
    }

    /// No spawned handler of this connection is running.
    fn is_idle(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Resolves once no spawned handler of this connection is running.
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }
}

impl SpawnedGuard {
    /// Records that this handler's answer ends the connection; called before the guard drops,
    /// so a connection waiting at a barrier sees it when the barrier opens.
    pub(crate) fn answer_closes(&self) {
        self.0.answered_closing.store(true, Ordering::Release);
    }
}

impl Drop for SpawnedGuard {
    fn drop(&mut self) {
        self.0.stats.handler_finished();
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Unsafe methods are barriers (RFC 9112 §9.3.2): one starts only once every spawned handler
/// of its connection has finished, and nothing after it starts before it has finished too.
#[derive(Default)]
pub(crate) struct Barrier {
    /// The last request started was unsafe.
    after_unsafe: bool,
    /// Waits for the spawned handlers to finish; boxed, since only a request held at a barrier
    /// makes one.
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Barrier {
    /// Whether a request whose method is `unsafe_method` may start now; if not, the task is
    /// woken once it may.
    #[inline]
    pub(crate) fn poll_pass(
        &mut self,
        unsafe_method: bool,
        spawned: &Arc<Spawned>,
        cx: &mut Context<'_>,
    ) -> bool {
        // The hot path (a safe request behind a safe one) is one test, inlined.
        !(unsafe_method || self.after_unsafe) || self.poll_idle(spawned, cx)
    }

    /// Whether every spawned handler has finished; if not, the task is woken once they have.
    fn poll_idle(&mut self, spawned: &Arc<Spawned>, cx: &mut Context<'_>) -> bool {
        if spawned.is_idle() {
            self.wait = None;
            return true;
        }
        let spawned = Arc::clone(spawned);
        let wait = self
            .wait
            .get_or_insert_with(|| Box::pin(async move { spawned.wait_idle().await }));
        if wait.as_mut().poll(cx).is_ready() {
            self.wait = None;
            return true;
        }
        false
    }

    /// A request passed and was started: if it is unsafe, the next one waits for it.
    pub(crate) fn started(&mut self, unsafe_method: bool) {
        self.after_unsafe = unsafe_method;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    use super::{Barrier, Spawned};
    use crate::stats::ServerStats;

    fn spawned() -> Arc<Spawned> {
        Arc::new(Spawned::new(ServerStats::default()))
    }

    #[test]
    fn safe_requests_pass_while_handlers_run() {
        let spawned = spawned();
        let _running = spawned.enter();
        let mut barrier = Barrier::default();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(barrier.poll_pass(false, &spawned, &mut cx));
    }

    #[test]
    fn an_unsafe_request_waits_for_every_spawned_handler() {
        let spawned = spawned();
        let running = spawned.enter();
        let mut barrier = Barrier::default();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(!barrier.poll_pass(true, &spawned, &mut cx));
        drop(running);
        assert!(barrier.poll_pass(true, &spawned, &mut cx));
    }

    #[test]
    fn nothing_passes_behind_an_unsafe_request_until_it_finished() {
        let spawned = spawned();
        let mut barrier = Barrier::default();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(barrier.poll_pass(true, &spawned, &mut cx));
        barrier.started(true);
        let running = spawned.enter();
        assert!(
            !barrier.poll_pass(false, &spawned, &mut cx),
            "a safe request waits behind the unsafe one"
        );
        drop(running);
        assert!(barrier.poll_pass(false, &spawned, &mut cx));
        barrier.started(false);
        let _running = spawned.enter();
        assert!(barrier.poll_pass(false, &spawned, &mut cx));
    }

    #[test]
    fn a_closing_answer_is_seen_by_the_connection() {
        let spawned = spawned();
        let guard = spawned.enter();
        assert!(!spawned.answered_closing());
        guard.answer_closes();
        drop(guard);
        assert!(spawned.answered_closing());
    }

    /// Wakes the task it was polled with, counting how often.
    #[derive(Default)]
    struct Woken(AtomicUsize);

    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_last_handler_to_finish_wakes_the_request_at_the_barrier() {
        let spawned = spawned();
        let first = spawned.enter();
        let second = spawned.enter();
        let mut barrier = Barrier::default();
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(Arc::clone(&woken));
        assert!(!barrier.poll_pass(true, &spawned, &mut Context::from_waker(&waker)));
        drop(first);
        assert_eq!(
            woken.0.load(Ordering::SeqCst),
            0,
            "one handler still runs: not yet"
        );
        drop(second);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "the last one wakes it");
        assert!(barrier.poll_pass(true, &spawned, &mut Context::from_waker(&waker)));
    }
}
