//! The accept loop and graceful shutdown, shaped like `axum::serve`. Awaiting a [`Serve`]
//! runs `run`, in named steps: `next_connection` waits for a permit and a connection (`accept`
//! rides out accept errors), `Server::spawn` serves it on a task of its own, and once the
//! signal completes `Server::drain` lets every connection finish, within
//! `Config::shutdown_timeout`.

use std::future::{Future, IntoFuture};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::drain::drain_with_deadline;
use crate::listener::Listener;
use crate::protocol::serve_io;
use crate::service::HttpService;
use crate::shared::{self, InsertInfo, Shared};
use crate::shutdown::{Phase, Shutdown};
use crate::stats::ServerStats;
use crate::Config;

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
///
/// # Return Value
///
/// Awaited as it is, the server runs until it is dropped; with
/// [`Serve::with_graceful_shutdown`] it resolves to `Ok(())` once the shutdown has finished.
/// It never resolves to an error: a failed accept is retried (at once when the peer caused
/// it, after a 1 s pause otherwise, logged), and a failed connection concerns one client and
/// is logged where it ends.
pub fn serve<L, S>(listener: L, service: S) -> Serve<L, S>
where
    L: Listener,
    S: HttpService,
{
    crate::timing::calibrate();
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
    ///
    /// # Return Value
    ///
    /// Resolves to `Ok(())` once every connection has ended: the drain finished, or
    /// `Config::shutdown_timeout` passed and the remaining connections were closed (their
    /// running handlers cancelled). Never to an error; see [`serve`].
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

impl<L, S> IntoFuture for Serve<L, S>
where
    L: Listener,
    S: HttpService,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        self.with_graceful_shutdown(std::future::pending())
            .into_future()
    }
}

impl<L, S, F> IntoFuture for WithGracefulShutdown<L, S, F>
where
    L: Listener,
    S: HttpService,
    F: Future<Output = ()> + Send + 'static,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run(self.serve, self.signal))
    }
}

/// Accepts connections and serves each on a task of its own until `signal` completes, then
/// drains them.
async fn run<L, S, F>(serve: Serve<L, S>, signal: F) -> io::Result<()>
where
    L: Listener,
    S: HttpService,
    F: Future<Output = ()> + Send + 'static,
{
    let Serve {
        mut listener,
        service,
        config,
        stats,
        connect_info,
    } = serve;
    let permits = config.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let server = Server {
        service,
        config: Arc::new(config),
        stats,
        connect_info,
        phase: watch::channel(Phase::Running).0,
        alive: watch::channel(()).0,
    };
    let mut signal = pin!(signal);
    let mut accepted: u64 = 0;
    while let Some(connection) =
        next_connection(&mut listener, permits.as_ref(), signal.as_mut()).await
    {
        accepted += 1;
        server.spawn(connection, accepted);
    }
    // Closing the listener at once makes new clients fail fast instead of waiting in a
    // backlog nobody will read.
    drop(listener);
    server.drain().await;
    Ok(())
}

/// A connection the loop accepted, with its permit when connections are limited.
struct Accepted<L: Listener> {
    io: L::Io,
    peer: L::Addr,
    /// Held by the connection's task until it ends; see `acquire`.
    permit: Option<OwnedSemaphorePermit>,
}

/// Waits for a connection permit, then for a connection; `None` once `signal` completes,
/// which must end either wait: a server whose every permit is taken still has to hear it.
async fn next_connection<L, F>(
    listener: &mut L,
    permits: Option<&Arc<Semaphore>>,
    signal: Pin<&mut F>,
) -> Option<Accepted<L>>
where
    L: Listener,
    F: Future<Output = ()>,
{
    let next = async {
        let permit = acquire(permits).await;
        let (io, peer) = accept(listener).await;
        Accepted { io, peer, permit }
    };
    tokio::select! {
        accepted = next => Some(accepted),
        () = signal => None,
    }
}

/// A permit per open connection when `Config::max_connections` is set: without one the loop
/// does not accept, so excess clients wait in the kernel's backlog instead of costing a task
/// and buffers here. `None` when connections are not limited.
async fn acquire(permits: Option<&Arc<Semaphore>>) -> Option<OwnedSemaphorePermit> {
    // The semaphore is never closed, so acquiring cannot fail.
    Arc::clone(permits?).acquire_owned().await.ok()
}

/// Accepts the next connection, riding out accept errors: none ends the loop, because the
/// listener works again once their cause has passed. A peer's error is retried at once; any
/// other (out of file descriptors) is logged and retried after [`ACCEPT_ERROR_PAUSE`].
async fn accept<L: Listener>(listener: &mut L) -> (L::Io, L::Addr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) if is_peer_error(&e) => {}
            Err(e) => {
                tracing::error!(error = %e, "accept failed; pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
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

/// What the accept loop hands every connection, and how it learns they have all ended.
struct Server<L: Listener, S> {
    service: S,
    config: Arc<Config>,
    stats: ServerStats,
    connect_info: Option<MakeInfo<L::Addr>>,
    /// The server's phase (Running → Draining → Abort), which every connection watches.
    phase: watch::Sender<Phase>,
    /// Every connection's task holds a subscription; `closed()` resolves once the last one
    /// has ended, which is what the drain waits for.
    alive: watch::Sender<()>,
}

impl<L, S> Server<L, S>
where
    L: Listener,
    S: HttpService,
{
    /// Serves one accepted connection on a task of its own, so that no client holds up the
    /// loop. The task keeps, until the connection ends, its permit (the next connection beyond
    /// the limit is accepted only then), its count in the stats, and its `alive` subscription.
    /// `id` numbers the connection in its tracing span, in which every request's span (and
    /// every handler's logs) nests.
    fn spawn(&self, accepted: Accepted<L>, id: u64) {
        let Accepted { io, peer, permit } = accepted;
        let counted = self.stats.connection(&self.config);
        let alive = self.alive.subscribe();
        let protocol = L::protocol(&io);
        let connect_info = self.connect_info.as_ref().map(|make| make(peer.clone()));
        let span = tracing::debug_span!(
            "http.connection",
            pipeline.connection_id = id,
            client.address = ?peer,
        );
        let service = self.service.clone();
        let config = Arc::clone(&self.config);
        let phase = self.phase.subscribe();
        let stats = self.stats.clone();
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

    /// Tells every connection to stop reading and answer what it has read, then waits until
    /// all have ended, closing what is left once `Config::shutdown_timeout` has passed.
    async fn drain(self) {
        self.phase.send_replace(Phase::Draining);
        let stats = &self.stats;
        let on_deadline = || {
            tracing::warn!(
                connections = stats.open_connections(),
                "shutdown deadline passed; closing the remaining connections"
            );
        };
        let deadline = self.config.shutdown_timeout;
        drain_with_deadline(&self.phase, self.alive.closed(), deadline, on_deadline).await;
    }
}
