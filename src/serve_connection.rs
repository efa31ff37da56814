//! One connection the caller accepted itself (its own TLS, a PROXY-protocol header, an
//! in-memory duplex in a test), served exactly as [`serve`](crate::serve) serves the
//! connections it accepts: HTTP/2 detected or agreed, `connect_info`, stats, graceful drain.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::drain::drain_with_deadline;
use crate::protocol::serve_io;
use crate::shared::{self, InsertInfo, Shared};
use crate::shutdown::{Phase, Shutdown};
use crate::stats::{ConnectionGuard, ServerStats};
use crate::{Config, HttpService, Protocol};

/// Serves one connection that is already open, with ordered concurrent pipelining on
/// HTTP/1.1 and hyper's HTTP/2 server for HTTP/2, under one [`Config`].
///
/// The returned [`ServeConnection`] is a builder and, through [`IntoFuture`], the connection:
/// `.await` it (or spawn [`IntoFuture::into_future`]) to serve until the connection is
/// finished. Without [`ServeConnection::protocol`] the connection's first bytes tell the
/// HTTP/2 preface (prior knowledge, when `Config::http2` allows it) from HTTP/1.1, as
/// [`serve`](crate::serve) does.
///
/// `io` must be `Unpin + Send + 'static` because hyper's HTTP/2 connection needs it; a
/// `!Unpin` stream can be passed as `Box::pin(io)`. `service` is cloned for HTTP/2 streams
/// (each stream's handler is a task of hyper's); on HTTP/1.1 it is driven by
/// [`tower::ServiceExt::ready`] before each call. What `serve` does around its accept loop —
/// `Config::max_connections`, the `http.connection` tracing span — is the caller's loop's to
/// do: `.instrument(span)` the future to nest its requests' spans.
///
/// ```
/// use pipelined::{get, Router};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (mut client, server) = tokio::io::duplex(4096);
/// let app = Router::new().route("/", get(|_req| async { "hi\n" }));
/// let connection = pipelined::serve_connection(server, app);
/// let shutdown = connection.shutdown_handle();
/// let served = tokio::spawn(std::future::IntoFuture::into_future(connection));
///
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
/// let mut answer = [0u8; 1024];
/// let n = client.read(&mut answer).await.unwrap();
/// assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
///
/// // Stop reading requests; an idle connection then ends at once.
/// shutdown.graceful_shutdown();
/// served.await.unwrap();
/// # }
/// ```
pub fn serve_connection<I, S>(io: I, service: S) -> ServeConnection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    crate::timing::calibrate();
    ServeConnection {
        io,
        service,
        config: Config::default(),
        protocol: None,
        connect_info: None,
        stats: ServerStats::default(),
        phase: Arc::new(watch::channel(Phase::Running).0),
    }
}

/// One connection ready to be served; see [`serve_connection`].
#[must_use = "a connection is not served until it is awaited"]
pub struct ServeConnection<I, S> {
    io: I,
    service: S,
    config: Config,
    protocol: Option<Protocol>,
    connect_info: Option<InsertInfo>,
    stats: ServerStats,
    /// The connection's phase (Running → Draining → Abort), which its engine watches. Shared
    /// with every [`ConnectionHandle`], and kept by the future for its whole life: a closed
    /// channel would read as a shutdown.
    phase: Arc<watch::Sender<Phase>>,
}

impl<I, S> ServeConnection<I, S> {
    /// Replaces the default limits. `Config::shutdown_timeout` bounds the drain after
    /// [`ConnectionHandle::graceful_shutdown`]; `Config::max_connections` is an accept loop's
    /// and does not apply here.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The protocol the connection agreed on before its first byte, usually by the caller's
    /// own TLS ALPN (`h2` → [`Protocol::Http2`], `http/1.1` → [`Protocol::Http1`]). It picks
    /// the engine without looking at the bytes; without it the first bytes decide.
    ///
    /// `Protocol::Http2` needs the `http2` feature and `Config::http2` on; otherwise the
    /// connection is closed unserved (logged at debug), as [`serve`](crate::serve) does.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Puts a clone of `info` into every request's extensions, on HTTP/1.1 and HTTP/2 alike:
    /// the peer address from the caller's accept loop, the one a PROXY-protocol header gave,
    /// a TLS client identity.
    ///
    /// Off by default because it costs a map insertion per request. With axum, wrap the
    /// address in its `ConnectInfo` and its `ConnectInfo<SocketAddr>` extractor works:
    ///
    /// ```ignore
    /// pipelined::serve_connection(stream, app).connect_info(axum::extract::ConnectInfo(peer))
    /// ```
    pub fn connect_info<T>(mut self, info: T) -> Self
    where
        T: Clone + Send + Sync + 'static,
    {
        self.connect_info = Some(shared::insert_info(info));
        self
    }

    /// Counts this connection in `stats` while it is open, and its running handlers while
    /// they run, so an accept loop of one's own keeps every connection's counts in one
    /// [`ServerStats`], as [`Serve::stats`](crate::Serve::stats) does. By default the counts
    /// go to a `ServerStats` of the connection's own.
    pub fn stats(mut self, stats: &ServerStats) -> Self {
        self.stats = stats.clone();
        self
    }

    /// A handle that can shut the connection down gracefully from anywhere, while the
    /// future runs elsewhere (a spawned task, typically).
    pub fn shutdown_handle(&self) -> ConnectionHandle {
        ConnectionHandle {
            phase: Arc::clone(&self.phase),
        }
    }
}

/// Shuts one connection down gracefully, from any task; see
/// [`ServeConnection::shutdown_handle`].
///
/// A cloneable handle rather than hyper's `graceful_shutdown(self: Pin<&mut Self>)`, because
/// an accept loop spawns each connection's future and keeps nothing else of it: with a
/// handle, the loop (or whatever watches its shutdown signal) can still drain every
/// connection. Whoever polls the future itself can call [`ConnectionFuture::graceful_shutdown`]
/// instead, as with hyper.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    phase: Arc<watch::Sender<Phase>>,
}

impl ConnectionHandle {
    /// Stops reading new requests and answers those already read, then the connection's
    /// future completes: on HTTP/1.1 the last response says `Connection: close`; on HTTP/2
    /// a GOAWAY lets the open streams finish. An idle HTTP/1.1 connection ends at once, an
    /// idle HTTP/2 one when the client acknowledges the GOAWAY (or 1 s later). When
    /// `Config::shutdown_timeout` passes first, the connection is closed regardless and its
    /// running handlers are cancelled.
    ///
    /// Called before the future is first polled, the connection drains as soon as it starts;
    /// called again, or after the future finished, it does nothing.
    pub fn graceful_shutdown(&self) {
        self.phase.send_if_modified(|phase| {
            let running = *phase == Phase::Running;
            if running {
                *phase = Phase::Draining;
            }
            running
        });
    }
}

impl<I, S> IntoFuture for ServeConnection<I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    type Output = ();
    type IntoFuture = ConnectionFuture;

    /// Starts counting the connection in its stats (from now, as `serve` counts from accept).
    fn into_future(self) -> ConnectionFuture {
        let handle = self.shutdown_handle();
        let counted = self.stats.connection(&self.config);
        ConnectionFuture {
            serving: Box::pin(serve_until_drained(self, counted)),
            handle,
        }
    }
}

/// One connection being served; see [`serve_connection`].
///
/// # Return Value
///
/// Resolves to `()` once the connection is finished: the client closed it, a response or
/// limit closed it, or a graceful shutdown drained it (or its deadline passed). A failed
/// socket or a protocol error also just ends it: such errors concern one client, so they are
/// logged once, at debug, where the connection ends, and not returned.
#[must_use = "a connection is not served until it is awaited"]
pub struct ConnectionFuture {
    /// Boxed: the engine's future cannot be named, and one allocation per connection is
    /// nothing beside its buffers.
    serving: Pin<Box<dyn Future<Output = ()> + Send>>,
    handle: ConnectionHandle,
}

impl ConnectionFuture {
    /// Shuts the connection down gracefully; keep polling the future until it completes. See
    /// [`ConnectionHandle::graceful_shutdown`].
    pub fn graceful_shutdown(&self) {
        self.handle.graceful_shutdown();
    }
}

impl Future for ConnectionFuture {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.serving.as_mut().poll(cx)
    }
}

/// Serves the connection until it is finished, turning a graceful shutdown that outlasts
/// `Config::shutdown_timeout` into an abort. `counted` keeps the connection in its stats
/// until then.
async fn serve_until_drained<I, S>(connection: ServeConnection<I, S>, counted: ConnectionGuard)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: HttpService,
{
    let ServeConnection {
        io,
        service,
        config,
        protocol,
        connect_info,
        stats,
        phase,
    } = connection;
    let shared = Shared {
        config: &config,
        shutdown: Shutdown::new(phase.subscribe()),
        stats,
        connect_info,
    };
    let served = serve_io(io, service, shared, protocol);
    tokio::pin!(served);
    let mut shutdown = Shutdown::new(phase.subscribe());
    tokio::select! {
        () = &mut served => {}
        () = shutdown.draining() => {
            let on_deadline = || tracing::warn!("shutdown deadline passed; closing the connection");
            drain_with_deadline(&phase, served, config.shutdown_timeout, on_deadline).await;
        }
    }
    drop(counted);
}
