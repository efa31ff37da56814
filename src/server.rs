//! The accept loop and graceful shutdown, shaped like `axum::serve`.

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::{watch, Semaphore};
use tower::Service;
use tracing::Instrument;

use crate::body::Body;
use crate::listener::Listener;
use crate::protocol::serve_io;
use crate::shared::{self, InsertInfo, Shared};
use crate::shutdown::{Phase, Shutdown};
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
/// ```
/// use pipelined::{get, Router};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let app = Router::new().route("/", get(|_req| async { "hello\n" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let server = pipelined::serve(listener, app).with_graceful_shutdown(async {
///     stopped.await.ok();
/// });
/// let addr = server.local_addr()?;
/// let running = tokio::spawn(std::future::IntoFuture::into_future(server));
///
/// // Two pipelined requests in one write; the answers come back in order.
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
/// let mut answers = String::new();
/// client.read_to_string(&mut answers).await?;
/// assert_eq!(answers.matches("hello\n").count(), 2);
///
/// drop(client);
/// stop.send(()).ok();
/// running.await.unwrap()
/// # }
/// ```
pub fn serve<L, S, B>(listener: L, service: S) -> Serve<L, S>
where
    L: Listener,
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
pub struct Serve<L: Listener, S> {
    listener: L,
    service: S,
    config: Config,
    stats: ServerStats,
    connect_info: Option<MakeInfo<L::Addr>>,
}

/// Makes a connection's [`InsertInfo`] from its peer address.
type MakeInfo<A> = Arc<dyn Fn(A) -> InsertInfo + Send + Sync>;

impl<L: Listener, S> Serve<L, S> {
    /// Replaces the default limits.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The address the listener is bound to (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<L::Addr> {
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
        F: Fn(L::Addr) -> T + Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        self.connect_info = Some(Arc::new(move |peer| shared::insert_info(make(peer))));
        self
    }

    /// Stops accepting when `signal` completes, lets every connection answer the requests it
    /// has already read (the last response says `Connection: close`), and then returns.
    pub fn with_graceful_shutdown<F>(self, signal: F) -> WithGracefulShutdown<L, S, F>
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
pub struct WithGracefulShutdown<L: Listener, S, F> {
    serve: Serve<L, S>,
    signal: F,
}

impl<L: Listener, S, F> WithGracefulShutdown<L, S, F> {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<L::Addr> {
        self.serve.local_addr()
    }

    /// Live counts for this server (open connections, running handlers).
    pub fn stats(&self) -> ServerStats {
        self.serve.stats()
    }
}

impl<L, S, B> IntoFuture for Serve<L, S>
where
    L: Listener,
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

impl<L, S, B, F> IntoFuture for WithGracefulShutdown<L, S, F>
where
    L: Listener,
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

async fn run<L, S, B, F>(serve: Serve<L, S>, signal: F) -> io::Result<()>
where
    L: Listener,
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send + 'static,
{
    let Serve {
        mut listener,
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
    let mut accepted: u64 = 0;
    loop {
        let permit = match &permits {
            Some(permits) => tokio::select! {
                permit = Arc::clone(permits).acquire_owned() => permit.ok(),
                () = &mut signal => break,
            },
            None => None,
        };
        let (io, peer) = tokio::select! {
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
        let service = service.clone();
        let config = Arc::clone(&config);
        let phase = phase_rx.clone();
        let alive = alive_rx.clone();
        let counted = stats.connection(&config);
        let stats = stats.clone();
        let connect_info = connect_info.as_ref().map(|make| make(peer.clone()));
        let protocol = L::protocol(&io);
        accepted += 1;
        // Every request's span (and every handler's logs) nests in its connection's.
        let span = tracing::debug_span!(
            "http.connection",
            pipeline.connection_id = accepted,
            client.address = ?peer,
        );
        let connection = async move {
            tracing::trace!("connection opened");
            let shared = Shared {
                config: &config,
                shutdown: Shutdown::new(phase),
                stats,
                connect_info,
            };
            serve_io(io, service, shared, protocol).await;
            tracing::trace!("connection closed");
            drop((alive, counted, permit));
        };
        tokio::spawn(connection.instrument(span));
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

/// Accept errors caused by one peer (it went away before we accepted): not worth a pause.
fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
