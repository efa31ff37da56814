//! Live counts of what a server holds, for tests, health checks and metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Live counts for one running server; cheap to clone, readable from any task.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = pipelined::serve(listener, pipelined::Router::new());
/// let stats = server.stats();
/// tokio::spawn(server.into_future());
/// println!("{} connections open", stats.open_connections());
/// # Ok(()) }
/// # use std::future::IntoFuture;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicUsize,
    handlers: AtomicUsize,
}

impl ServerStats {
    /// Connections accepted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.counts.connections.load(Ordering::Acquire)
    }

    /// Handlers running on tasks of their own (those that did not finish on their first,
    /// inline poll) and not yet finished or cancelled.
    pub fn running_handlers(&self) -> usize {
        self.counts.handlers.load(Ordering::Acquire)
    }

    /// Counts a connection until the guard drops.
    pub(crate) fn connection(&self) -> ConnectionGuard {
        self.counts.connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    /// Counts a running handler until the guard drops (finished or cancelled).
    #[cfg(feature = "http2")]
    pub(crate) fn handler(&self) -> HandlerGuard {
        self.handler_started();
        HandlerGuard(self.clone())
    }

    pub(crate) fn handler_started(&self) {
        self.counts.handlers.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn handler_finished(&self) {
        self.counts.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held by a connection's task for its whole life.
pub(crate) struct ConnectionGuard(ServerStats);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.counts.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held by a running handler's future (an HTTP/2 stream's), so a cancelled stream is
/// uncounted as surely as a finished one.
#[cfg(feature = "http2")]
pub(crate) struct HandlerGuard(ServerStats);

#[cfg(feature = "http2")]
impl Drop for HandlerGuard {
    fn drop(&mut self) {
        self.0.handler_finished();
    }
}
