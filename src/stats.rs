//! Live counts of what a server holds, for tests, health checks and metrics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(feature = "metrics")]
use crate::meter::Requests;
use crate::Config;

/// Live counts for one running server, or for every connection an accept loop of one's own
/// hands to [`serve_connection`](crate::serve_connection()) with
/// [`.stats(&stats)`](crate::ServeConnection::stats); cheap to clone, readable from any task.
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
    /// The `pipelined_requests_total` handles of this server's metered connections, made by
    /// the first of them: one set per server, so a connection looks no counter up by name.
    #[cfg(feature = "metrics")]
    requests: std::sync::OnceLock<Arc<Requests>>,
}

impl ServerStats {
    /// Counts starting at zero, to share between the connections of an accept loop of one's
    /// own (the same as `ServerStats::default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections accepted and not yet closed.
    pub fn open_connections(&self) -> usize {
        self.counts.connections.load(Ordering::Acquire)
    }

    /// Handlers running on tasks of their own (those that did not finish on their first,
    /// inline poll) and not yet finished or cancelled.
    pub fn running_handlers(&self) -> usize {
        self.counts.handlers.load(Ordering::Acquire)
    }

    /// Counts a connection until the guard drops, in the `pipelined_open_connections` gauge
    /// too when `config` meters the server: one place for both, so every way of serving a
    /// connection counts alike.
    // Without the metrics feature there is no gauge, and `config` has nothing to say.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn connection(&self, config: &Config) -> ConnectionGuard {
        self.counts.connections.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard {
            stats: self.clone(),
            #[cfg(feature = "metrics")]
            gauge: config.metrics.then(|| {
                let gauge = metrics::gauge!(crate::meter::names::OPEN_CONNECTIONS);
                gauge.increment(1.0);
                gauge
            }),
        }
    }

    /// Counts a running handler until the guard drops (finished or cancelled).
    #[cfg(feature = "http2")]
    pub(crate) fn handler(&self) -> HandlerGuard {
        self.handler_started();
        HandlerGuard(self.clone())
    }

    /// This server's `pipelined_requests_total` handles (see [`Counts::requests`]).
    #[cfg(feature = "metrics")]
    pub(crate) fn requests(&self) -> Arc<Requests> {
        let requests = self
            .counts
            .requests
            .get_or_init(|| Arc::new(Requests::new()));
        Arc::clone(requests)
    }

    pub(crate) fn handler_started(&self) {
        self.counts.handlers.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn handler_finished(&self) {
        self.counts.handlers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Held by a connection's task for its whole life.
pub(crate) struct ConnectionGuard {
    stats: ServerStats,
    /// The open-connections gauge, when the server is metered.
    #[cfg(feature = "metrics")]
    gauge: Option<metrics::Gauge>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.stats.counts.connections.fetch_sub(1, Ordering::AcqRel);
        #[cfg(feature = "metrics")]
        if let Some(gauge) = &self.gauge {
            gauge.decrement(1.0);
        }
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
