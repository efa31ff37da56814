//! HTTP/2 on the same port, through hyper's HTTP/2 server.
//!
//! HTTP/2 multiplexes requests on one connection, the protocol's own answer to head-of-line
//! blocking; there is nothing for the ordered engine to add. A connection whose TLS ALPN agreed
//! `h2`, or (nothing agreed) that opens with the HTTP/2 preface (prior knowledge, `h2c`), is
//! handed to hyper with the same service; every other connection stays on the ordered
//! HTTP/1.1 engine.
//!
//! `Config` applies to both: per-request limits in [`service`], connection limits in hyper's
//! builder and the idle deadline of [`serve`]'s loop (README, "HTTP/2").

mod body;
mod measure;
mod preface;
mod rewind;
mod service;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tower::Service;

use crate::shared::Shared;
use crate::{Body, BoxError, Config};
pub(crate) use preface::{refuse, verdict, Verdict};
use rewind::Rewind;
use service::{Guarded, Limits};
use streams::Streams;

/// How long a connection with no stream open may stay after its GOAWAY before it is closed.
///
/// hyper's graceful shutdown waits for the client to acknowledge a PING before its final
/// GOAWAY; a client that never does (an attacker, a stuck peer) would hold the socket, and a
/// server's drain, for ever. One that does answers within a round trip.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Serves one HTTP/2 connection whose first bytes (`read`: the preface and whatever came with
/// it) were already read while telling it from HTTP/1.1, under the same `Config` and with the
/// same connection info as HTTP/1.1 ([`service::Guarded`]). Every stream's handler is counted
/// in `stats` while it runs: each is a task of hyper's, like a pending HTTP/1.1 handler.
///
/// `head_due` is when the first request's header block must have arrived: the header-read
/// timeout counted from the connection's first byte, as for an HTTP/1.1 head, so a client
/// that trickles its SETTINGS or first HEADERS is told to go away then (GOAWAY), not after the
/// idle timeout (when that is sooner, it still applies, as to any connection with no stream
/// open).
pub(crate) async fn serve<I, S, B>(
    io: I,
    read: Bytes,
    head_due: Instant,
    service: S,
    shared: Shared<'_>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Shared {
        config,
        shutdown,
        stats,
        connect_info,
    } = shared;
    let (streams, mut open) = Streams::new();
    let service = Guarded {
        service,
        limits: Arc::new(Limits::new(config, connect_info)),
        stats,
        streams,
    };
    let io = TokioIo::new(Rewind { read, io });
    let conn = builder(config).serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    let (mut draining, mut abort) = (shutdown.clone(), shutdown);
    // `closing`: GOAWAY sent (shutdown, idle or no first request). `quiet`: when the
    // connection, with no stream open, is closed: `idle_timeout` after its last stream (or
    // from now, before its first), `GOAWAY_GRACE` after a GOAWAY; and the first stream must
    // have come by `head_due`.
    let (mut closing, mut watching) = (false, true);
    let mut quiet = Some(head_due.min(Instant::now() + config.idle_timeout));
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
                }
                return;
            }
            changed = open.changed(), if watching => {
                if changed.is_err() {
                    // hyper dropped the service: the connection is ending anyway.
                    watching = false;
                    continue;
                }
                let after = if closing { GOAWAY_GRACE } else { config.idle_timeout };
                quiet = (*open.borrow_and_update() == 0).then(|| Instant::now() + after);
            }
            () = until(quiet) => {
                if closing {
                    tracing::debug!("HTTP/2 client did not close after GOAWAY; closing");
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
                quiet = Some(Instant::now() + GOAWAY_GRACE);
            }
            // Shutdown: GOAWAY, finish the streams already open.
            () = draining.draining(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
                if quiet.is_some() {
                    quiet = Some(Instant::now() + GOAWAY_GRACE);
                }
            }
            () = abort.aborted() => return,
        }
    }
}

/// hyper's HTTP/2 server with `Config`'s connection limits.
fn builder(config: &Config) -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        // The HTTP/2 form of `max_header_bytes`: hyper answers a larger header block `431`
        // and refuses the stream. It counts names, values and 32 bytes per field (RFC 9113
        // §6.5.2), not the HTTP/1.1 head's bytes: close, not equal.
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        // Flood defences (rapid reset, provoked resets) and the per-stream send buffer, set
        // from `Config` rather than left to hyper's defaults, which hyper does not promise.
        .max_pending_accept_reset_streams(config.http2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(config.http2_max_local_error_reset_streams)
        .max_send_buf_size(config.http2_max_send_buf_size)
        // Pings notice a peer that vanished (no FIN, no reset) or stopped reading while its
        // streams are open, which the idle deadline does not cover; hyper needs a timer.
        .timer(TokioTimer::new())
        .keep_alive_interval(config.idle_timeout)
        .keep_alive_timeout(config.http2_keep_alive_timeout);
    builder
}

/// Resolves at `deadline`, or never without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
