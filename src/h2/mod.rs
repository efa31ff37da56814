//! HTTP/2 on the same port, through hyper's HTTP/2 server.
//!
//! HTTP/2 multiplexes requests on one connection, the protocol's own answer to head-of-line
//! blocking; there is nothing for the ordered engine to add. A new connection that opens with
//! the HTTP/2 cleartext preface (prior knowledge, `h2c`) is handed to hyper with the same
//! service; every other connection stays on the ordered HTTP/1.1 engine.

mod rewind;
mod service;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::Service;

use crate::conn::{Phase, Shared};
use crate::{Body, BoxError};
use rewind::Rewind;
use service::{Guarded, Limits};

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one HTTP/2 connection whose first bytes (`read`: the preface and whatever came with
/// it) were already read while telling it from HTTP/1.1, under the same `Config` and with the
/// same connection info as HTTP/1.1 ([`service::Guarded`]). Every stream's handler is counted
/// in `stats` while it runs: each is a task of hyper's, like a pending HTTP/1.1 handler.
pub(crate) async fn serve<I, S, B>(io: I, read: Bytes, service: S, shared: Shared<'_>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let Shared {
        config,
        phase,
        stats,
        connect_info,
    } = shared;
    let service = Guarded {
        service,
        limits: Arc::new(Limits::new(config, connect_info)),
        stats,
    };
    let io = TokioIo::new(Rewind { read, io });
    let conn = http2::Builder::new(TokioExecutor::new())
        .serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    let (mut draining, mut abort) = (phase.clone(), phase);
    let mut drained = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "HTTP/2 connection ended with an error");
                }
                return;
            }
            // Shutdown: GOAWAY, finish the streams already open.
            _ = draining.wait_for(|p| *p != Phase::Running), if !drained => {
                drained = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = abort.wait_for(|p| *p == Phase::Abort) => return,
        }
    }
}
