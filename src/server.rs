//! The accept loop and graceful shutdown, shaped like `axum::serve`.

use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::Service;

use crate::body::Body;
use crate::conn::{self, InsertInfo, Phase};
use crate::stats::ServerStats;
use crate::{BoxError, Config};

/// Pause after an accept error that is not the peer's fault (out of file descriptors): retrying
/// at once would spin a core while nothing can be accepted anyway.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `service` on every connection `listener` accepts, with ordered concurrent pipelining.
///
/// The returned [`Serve`] is a future (via [`IntoFuture`]): `.await` it to run the server.
/// The service is cloned once per connection; it is driven by [`tower::ServiceExt::ready`]
/// before each call.
///
/// ```no_run
/// use pipelined::{get, Router};
///
/// # async fn run() -> std::io::Result<()> {
/// let app = Router::new().route("/", get(|_req| async { "hello\n" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// pipelined::serve(listener, app)
///     .with_graceful_shutdown(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
pub fn serve<S, B>(listener: TcpListener, service: S) -> Serve<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Serve {
        listener,
        service,
        config: Config::default(),
        stats: ServerStats::default(),
        connect_info: None,
    }
}

/// A server ready to run; see [`serve`].
#[must_use = "a server does nothing until it is awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    service: S,
    config: Config,
    stats: ServerStats,
    connect_info: Option<MakeInfo>,
}

/// Makes a connection's [`InsertInfo`] from its peer address.
type MakeInfo = Arc<dyn Fn(SocketAddr) -> InsertInfo + Send + Sync>;

impl<S> Serve<S> {
    /// Replaces the default limits.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Live counts for this server (open connections, running handlers).
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    /// Puts `make(peer address)` into every request's extensions, once per connection.
    ///
    /// Off by default because it costs a map insertion per request. With axum, pass its
    /// `ConnectInfo` constructor and its `ConnectInfo<SocketAddr>` extractor works unchanged:
    ///
    /// ```ignore
    /// pipelined::serve(listener, app).connect_info(axum::extract::ConnectInfo)
    /// ```
    pub fn connect_info<T, F>(mut self, make: F) -> Self
    where
        F: Fn(SocketAddr) -> T + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        self.connect_info = Some(Arc::new(move |peer| {
            let info = make(peer);
            Box::new(move |extensions: &mut http::Extensions| {
                extensions.insert(info.clone());
            })
        }));
        self
    }

    /// Stops accepting when `signal` completes, lets every connection answer the requests it
    /// has already read (the last response says `Connection: close`), and then returns.
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<S, F>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        WithGracefulShutdown {
            serve: self,
            signal,
        }
    }
}

/// A server that shuts down gracefully; see [`Serve::with_graceful_shutdown`].
#[must_use = "a server does nothing until it is awaited"]
pub struct WithGracefulShutdown<S, F> {
    serve: Serve<S>,
    signal: F,
}

impl<S, F> WithGracefulShutdown<S, F> {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.serve.local_addr()
    }

    /// Live counts for this server (open connections, running handlers).
    pub fn stats(&self) -> ServerStats {
        self.serve.stats()
    }
}

impl<S, B> IntoFuture for Serve<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        self.with_graceful_shutdown(std::future::pending())
            .into_future()
    }
}

impl<S, B, F> IntoFuture for WithGracefulShutdown<S, F>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.serve, self.signal))
    }
}

async fn run<S, B, F>(serve: Serve<S>, signal: F) -> io::Result<()>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    let Serve {
        listener,
        service,
        config,
        stats,
        connect_info,
    } = serve;
    let config = Arc::new(config);
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    // Every connection holds a clone of `alive_rx`; `alive_tx.closed()` resolves once the last
    // connection has finished.
    let (alive_tx, alive_rx) = watch::channel(());
    // A permit per open connection when `max_connections` is set: without one we do not
    // accept, so excess clients wait in the kernel's backlog instead of costing us a task.
    let permits = config.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let mut signal = std::pin::pin!(signal);
    loop {
        let permit = match &permits {
            Some(permits) => tokio::select! {
                permit = Arc::clone(permits).acquire_owned() => permit.ok(),
                () = &mut signal => break,
            },
            None => None,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_peer_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        // Responses are batched by the writer already; Nagle would only delay the last one.
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let config = Arc::clone(&config);
        let phase = phase_rx.clone();
        let alive = alive_rx.clone();
        let counted = stats.connection();
        let stats = stats.clone();
        let connect_info = connect_info.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let (read, write) = stream.split();
            tracing::trace!(%peer, "connection opened");
            let shared = conn::Shared {
                config: &config,
                phase,
                stats,
                connect_info: connect_info.map(|make| make(peer)),
            };
            conn::serve(read, write, service, shared).await;
            tracing::trace!(%peer, "connection closed");
            drop((alive, counted, permit));
        });
    }
    drop(listener);
    phase_tx.send_replace(Phase::Draining);
    drop(alive_rx);
    let drained = match config.shutdown_timeout {
        Some(deadline) => tokio::time::timeout(deadline, alive_tx.closed())
            .await
            .is_ok(),
        None => {
            alive_tx.closed().await;
            true
        }
    };
    if !drained {
        tracing::warn!(
            connections = stats.open_connections(),
            "shutdown deadline passed; closing the remaining connections"
        );
        phase_tx.send_replace(Phase::Abort);
        alive_tx.closed().await;
    }
    Ok(())
}

/// Serves HTTP/1.1 with ordered concurrent pipelining on one connection that is already
/// open: a Unix socket, a TLS stream, an in-memory duplex in a test. Returns when the
/// connection is finished.
///
/// ```
/// use pipelined::{get, Config, Router};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (mut client, server) = tokio::io::duplex(4096);
/// let app = Router::new().route("/", get(|_req| async { "hi\n" }));
/// tokio::spawn(pipelined::serve_connection(server, app, Config::default()));
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
/// let mut out = String::new();
/// client.read_to_string(&mut out).await.unwrap();
/// assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("hi\n"));
/// # }
/// ```
pub async fn serve_connection<I, S, B>(io: I, service: S, config: Config)
where
    I: AsyncRead + AsyncWrite + Send,
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (read, write) = tokio::io::split(io);
    // Nothing shuts a lone connection down early; the sender lives as long as it does.
    let (_phase_tx, phase) = watch::channel(Phase::Running);
    let shared = conn::Shared {
        config: &config,
        phase,
        stats: ServerStats::default(),
        connect_info: None,
    };
    conn::serve(read, write, service, shared).await;
}

/// Accept errors caused by one peer (it went away before we accepted): not worth a pause.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
