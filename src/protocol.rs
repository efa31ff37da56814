//! The protocol switch, above both engines: which one serves a connection, HTTP/1.1
//! (`conn/`, the ordered pipelining engine) or HTTP/2 (`h2/`, hyper's), from what
//! its listener agreed (TLS ALPN) or else from its first bytes. Neither engine knows of the
//! other; both are reached from here only.

use bytes::BytesMut;
#[cfg(feature = "http2")]
use tokio::io::AsyncReadExt;
use tokio::io::{AsyncRead, AsyncWrite};
#[cfg(feature = "http2")]
use tokio::time::Instant;

use crate::conn::{self, ConnBody, ConnService};
#[cfg(feature = "http2")]
use crate::h2;
#[cfg(feature = "http2")]
use crate::linger::linger;
use crate::shared::Shared;
use crate::Protocol;

/// Serves one accepted connection until it is finished: HTTP/2 when its listener agreed on it
/// (`protocol`, TLS ALPN) or, when nothing was agreed, when it opens with the HTTP/2 preface
/// (and `Config::http2` allows it); the ordered HTTP/1.1 engine otherwise.
pub(crate) async fn serve_io<I, S, B>(
    io: I,
    service: S,
    shared: Shared<'_>,
    protocol: Option<Protocol>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService<B> + Clone,
    B: ConnBody,
{
    match protocol {
        #[cfg(feature = "http2")]
        Some(Protocol::Http2) | None if shared.config.http2 => {
            serve_by_preface(io, service, shared, protocol.is_none()).await;
        }
        Some(Protocol::Http2) => {
            tracing::debug!("HTTP/2 agreed but not served here (Config::http2, feature http2)");
        }
        // Without HTTP/2 there is no sniffing read: `io` goes to the engine untouched.
        Some(Protocol::Http1) | None => {
            conn::serve(io, service, shared, BytesMut::new(), None).await;
        }
    }
}

/// Serves a connection by what its first bytes say ([`sniff`]): HTTP/2 after the whole
/// preface, HTTP/1.1 when they are no preface and `http1` (nothing agreed) allows it. A client
/// that breaks the preface after its first line (or, with `h2` agreed, anywhere) has said it
/// speaks HTTP/2 and is answered in HTTP/2: GOAWAY with PROTOCOL_ERROR (RFC 9113 §3.4).
#[cfg(feature = "http2")]
async fn serve_by_preface<I, S, B>(mut io: I, service: S, shared: Shared<'_>, http1: bool)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService<B> + Clone,
    B: ConnBody,
{
    let mut buf = BytesMut::new();
    let Some((verdict, head_due)) = sniff(&mut io, &mut buf, &shared, http1).await else {
        // Closed, overdue, or the server is shutting down, before a request.
        return;
    };
    match verdict {
        h2::Verdict::Http1 => conn::serve(io, service, shared, buf, Some(head_due)).await,
        h2::Verdict::Http2 => {
            // Boxed: hyper's HTTP/2 connection state is only paid for by HTTP/2 connections,
            // not reserved in every connection's future.
            Box::pin(h2::serve(io, buf.freeze(), head_due, service, shared)).await;
        }
        h2::Verdict::Broken => {
            tracing::debug!("broken HTTP/2 preface: GOAWAY (PROTOCOL_ERROR)");
            // Lingers as a closing HTTP/1.1 connection does, so that the client's unread
            // bytes do not make the kernel reset the GOAWAY away.
            if h2::refuse(&mut io).await.is_ok() {
                linger(&mut io).await;
            }
        }
    }
}

/// Reads a connection's first bytes until they tell HTTP/1.1 from HTTP/2 ([`h2::verdict`]).
/// An HTTP/1.1 request differs within its first bytes (only `PRI` starts like the preface), so
/// for HTTP/1.1 this is the connection's first read, which the reader then starts from: no
/// extra system call.
///
/// The first byte may take `Config::idle_timeout`, as a new HTTP/1.1 connection's first
/// request may; from it, the header-read timeout runs, for the preface as for an HTTP/1.1 head,
/// and goes on running (the returned deadline) until HTTP/2's first request has arrived, so
/// trickling the preface gains nothing. `None`: closed, overdue, or the server is shutting
/// down, before a verdict.
#[cfg(feature = "http2")]
async fn sniff<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    shared: &Shared<'_>,
    http1: bool,
) -> Option<(h2::Verdict, Instant)> {
    let mut shutdown = shared.shutdown.clone();
    let mut due = Instant::now() + shared.config.idle_timeout;
    let mut head_due = None;
    loop {
        buf.reserve(conn::READ_CHUNK);
        let read = tokio::select! {
            read = tokio::time::timeout_at(due, io.read_buf(buf)) => read,
            () = shutdown.draining() => return None,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
        due = *head_due.get_or_insert_with(|| Instant::now() + shared.config.header_read_timeout);
        if let Some(verdict) = h2::verdict(buf, http1) {
            return Some((verdict, due));
        }
    }
}
