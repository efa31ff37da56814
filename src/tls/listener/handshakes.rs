//! The handshakes a [`TlsListener`](super::TlsListener) has in flight, and which one gives way
//! when a new connection arrives and every slot is taken.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::task::{AbortHandle, Id, JoinSet};

/// Handshakes running on tasks of their own, in the order their connections were accepted.
///
/// When every slot is taken, a new connection does not wait: the handshake that has made the
/// least progress is dropped to make room ([`Handshakes::evict`]). A client that connects and
/// says nothing (or sends part of a ClientHello and stops) thus holds its slot only until
/// newer connections need it, never an honest client's handshake; waiting instead (in the
/// listen backlog) would let a flood of silent sockets delay every honest client by up to the
/// handshake timeout.
pub(super) struct Handshakes<T> {
    /// The tasks: they progress while the server is not in `accept` (busy spawning a
    /// connection, or waiting for a `max_connections` permit), and a `JoinSet` aborts them
    /// when the listener is dropped, so none outlives the server.
    tasks: JoinSet<T>,
    /// The handshakes not evicted and not yet taken, oldest first. An evicted task leaves
    /// this list at once and `tasks` once it is joined, so this, not `tasks`, counts slots.
    live: VecDeque<Live>,
}

/// One handshake in a slot.
struct Live {
    id: Id,
    abort: AbortHandle,
    /// Set once the client's whole ClientHello arrived ([`Progress::hello_read`]).
    hello: Arc<AtomicBool>,
}

/// What a handshake task reports back while it runs: whether its client has proved to be
/// talking TLS yet.
pub(super) struct Progress(Arc<AtomicBool>);

impl Progress {
    /// The client's ClientHello arrived whole: it is no silent or half-open socket, and is
    /// evicted only when every slot holds such a client.
    pub(super) fn hello_read(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl<T: Send + 'static> Handshakes<T> {
    pub(super) fn new() -> Self {
        Handshakes {
            tasks: JoinSet::new(),
            live: VecDeque::new(),
        }
    }

    /// Handshakes holding a slot (finished ones not yet taken included).
    pub(super) fn len(&self) -> usize {
        self.live.len()
    }

    /// Starts a handshake task, which reports its progress through the [`Progress`] it gets.
    pub(super) fn spawn<F>(&mut self, handshake: impl FnOnce(Progress) -> F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let hello = Arc::new(AtomicBool::new(false));
        let abort = self.tasks.spawn(handshake(Progress(Arc::clone(&hello))));
        self.live.push_back(Live {
            id: abort.id(),
            abort,
            hello,
        });
    }

    /// Aborts one unfinished handshake to free its slot: the oldest whose ClientHello has not
    /// arrived (a silent or half-open client), else the oldest of all (every slot holds a
    /// client that sent a ClientHello and has not finished within the time newer connections
    /// took to fill every other slot). Does nothing when every handshake has finished and
    /// waits to be taken.
    pub(super) fn evict(&mut self) {
        let unfinished = |live: &Live| !live.abort.is_finished();
        let victim = self
            .live
            .iter()
            .position(|live| unfinished(live) && !live.hello.load(Ordering::Relaxed))
            .or_else(|| self.live.iter().position(unfinished));
        if let Some(victim) = victim.and_then(|at| self.live.remove(at)) {
            victim.abort.abort();
            tracing::debug!("TLS handshake slots full: dropped the least advanced handshake");
        }
    }

    /// Whether a task is left to join (evicted ones included, so that they are reaped).
    pub(super) fn has_tasks(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// The next handshake task's result. An evicted task, or one that panicked (the panic hook
    /// reported it), is reaped and skipped. Cancel-safe: a result is taken from the set and
    /// returned with no await in between.
    pub(super) async fn join_next(&mut self) -> Option<T> {
        loop {
            let (id, result) = match self.tasks.join_next_with_id().await? {
                Ok((id, result)) => (id, Some(result)),
                Err(error) => (error.id(), None),
            };
            if let Some(at) = self.live.iter().position(|live| live.id == id) {
                self.live.remove(at);
            }
            if result.is_some() {
                return result;
            }
        }
    }
}
