//! One HTTP/1.1 connection, served by one state machine ([`connection::Conn`]).
//!
//! ```text
//!  socket ─► read buffer ─► parse head ─► start handler ─┬─ finished, in order ─► write buffer ─► socket
//!                                 ▲                       │                          ▲
//!                          body pump (exact end)          └─ otherwise: a slot in the order (queue)
//!                                                            pending handler: its own task
//! ```
//!
//! **Where order is enforced:** [`order::Order`]. A response is encoded only when every earlier
//! one has been: straight into the write buffer when it is finished and next in line, otherwise
//! from the front of the order once its handler finished. A request with a body waits in the
//! order until the body bytes already read are decoded, so a body known to be bad by then
//! still changes its answer (`Order::body_failed`). Handlers that do not finish on their
//! first poll run on tasks of their own; everything else (parsing, the first poll, encoding)
//! happens on the connection's task, and a pipelined batch leaves in one write.
//! **Who decides to close:** [`keep_alive::KeepAlive`], alone.

mod connection;
mod deadline;
mod dispatch;
mod keep_alive;
#[cfg(feature = "metrics")]
pub(crate) mod meter;
mod order;
mod read;
mod slot;
mod write;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::watch;
#[cfg(feature = "http2")]
use tokio::time::Instant;
use tower::Service;

use crate::body::Body;
#[cfg(feature = "http2")]
use crate::h2;
use crate::stats::ServerStats;
use crate::{BoxError, Config, Protocol};
use connection::Conn;

/// How long a closing connection keeps reading (and discarding) what the client still sends.
///
/// Closing a socket that has unread input makes the kernel answer with a reset, and a reset can
/// destroy responses the client has not read yet — exactly the responses that precede a
/// `Connection: close` or a refused request in a pipeline. So after such a last response and
/// our FIN, we drain until the client closes too, for at most this long, and never past the
/// drain deadline of a shutdown. A connection that ends idle does not linger
/// ([`keep_alive::KeepAlive::lingers`]).
const LINGER: Duration = Duration::from_secs(2);

/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// Where the server is in its life; every connection watches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Stop reading new requests; answer those already read.
    Draining,
    /// The drain deadline passed: drop everything now.
    Abort,
}

/// What a connection shares with its server.
pub(crate) struct Shared<'a> {
    pub(crate) config: &'a Config,
    pub(crate) phase: watch::Receiver<Phase>,
    pub(crate) stats: ServerStats,
    /// Adds this connection's info (the peer address, as the service wants it) to each
    /// request's extensions; see `Serve::connect_info`.
    pub(crate) connect_info: Option<InsertInfo>,
}

/// Inserts one connection's info into a request's extensions.
pub(crate) type InsertInfo = Box<dyn Fn(&mut http::Extensions) + Send + Sync>;

/// Puts a clone of `info` into every request's extensions.
pub(crate) fn insert_info<T: Clone + Send + Sync + 'static>(info: T) -> InsertInfo {
    Box::new(move |extensions: &mut http::Extensions| {
        extensions.insert(info.clone());
    })
}

/// What a connection serves, as one bound list instead of one per `impl` block: a service from
/// `Request<Body>` whose future is `Send` (a pending handler moves to a task of its own) and
/// whose error the engine can log.
pub(crate) trait ConnService<B>:
    Service<Request<Body>, Response = Response<B>, Error: Into<BoxError>, Future: Send + 'static>
    + Send
    + 'static
{
}

impl<S, B> ConnService<B> for S
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
}

/// A response body a connection can write: bytes, sent between tasks, errors the engine logs.
pub(crate) trait ConnBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> ConnBody for B
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
}

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
        Some(Protocol::Http1) | None => serve(io, service, shared, BytesMut::new(), None).await,
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
        h2::Verdict::Http1 => serve(io, service, shared, buf, Some(head_due)).await,
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
    let mut phase = shared.phase.clone();
    let mut due = Instant::now() + shared.config.idle_timeout;
    let mut head_due = None;
    loop {
        buf.reserve(read::READ_CHUNK);
        let read = tokio::select! {
            read = tokio::time::timeout_at(due, io.read_buf(buf)) => read,
            _ = phase.wait_for(|p| *p != Phase::Running) => return None,
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

/// Serves HTTP/1.1 on one connection until it is finished; `buf` holds bytes already read,
/// and `head_due` the deadline of the head they began, when reading them already started it.
/// Errors end the connection here, logged once.
pub(crate) async fn serve<I, S, B>(
    io: I,
    service: S,
    shared: Shared<'_>,
    buf: BytesMut,
    head_due: Option<Instant>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
    S: ConnService<B>,
    B: ConnBody,
{
    let Shared {
        config,
        phase,
        stats,
        connect_info,
    } = shared;
    let mut abort = phase.clone();
    let mut conn = Conn::new(io, buf, service, config, phase, stats, connect_info);
    if let Some(due) = head_due {
        conn.head_began(due);
    }
    let served = async {
        conn.run().await?;
        if conn.lingers() {
            linger(conn.io()).await;
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        // Past the drain deadline: drop the connection (lingering or not) and, through their
        // dropped channels, every handler still running.
        _ = abort.wait_for(|p| *p == Phase::Abort) => {}
        // A reset or failed socket: nobody will read the responses; the handlers still running
        // are cancelled as the connection drops.
        result = served => if let Err(e) = result {
            tracing::debug!(error = %e, "connection failed");
        },
    }
}

/// Reads and discards until EOF, [`LINGER`] or [`LINGER_BYTES`]; see [`LINGER`].
async fn linger<R: AsyncRead + Unpin>(read: &mut R) {
    let drain = async {
        // On the heap: as an array it would size every connection's future, lingering or not.
        let mut scratch = vec![0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match read.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

#[cfg(test)]
mod tests;
