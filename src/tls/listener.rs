//! [`TlsListener`]: accepts connections from another listener and hands them on once their TLS
//! handshake is done, without letting a slow or silent client hold up anyone else.

mod handshakes;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use crate::listener::{Listener, Protocol};
use handshakes::{Handshakes, Progress};

/// Handshakes in flight at once by default (finished ones not yet taken by the server
/// included); see [`TlsListener::max_handshakes`].
///
/// Each holds a socket, a task and rustls' connection state for up to the handshake timeout, so
/// without a bound a flood of clients that connect and say nothing would take every descriptor.
/// Past it a new connection is not kept waiting: the least advanced handshake is dropped to
/// make room for it (`Handshakes::evict`), so a flood of silent sockets costs honest clients
/// nothing but the accept. 1024 is far above what honest clients keep in flight at once (a
/// handshake is one or two round trips). These sockets are not yet connections of the server's,
/// so they come on top of `Config::max_connections`.
const MAX_HANDSHAKES: usize = 1024;

/// How long a client has to finish its handshake, by default.
///
/// A TLS 1.3 handshake is one round trip and 1.2 two, so 10 s leaves room for a slow mobile
/// link, while a client that connects and stays silent gives its slot (one of
/// [`MAX_HANDSHAKES`]) back soon even when no newer connection needs it. The HTTP limits of
/// `Config` start once the handshake is done.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Listener`] that serves HTTPS: it accepts from `L` (TCP by default), does the TLS
/// handshake, and lets ALPN pick the engine ([`Listener::protocol`]): `h2` goes to hyper's
/// HTTP/2, `http/1.1` to the ordered pipelining engine, and no ALPN is sniffed as on plain
/// TCP.
///
/// Handshakes run on tasks of their own, concurrently, each bounded by
/// [`handshake_timeout`](TlsListener::handshake_timeout), so a slow or silent client never
/// holds up the accept loop; a failed or timed-out handshake is logged at `debug` and its
/// connection closed. When [`max_handshakes`](TlsListener::max_handshakes) are in flight, a
/// new connection takes the slot of the oldest handshake still waiting for its ClientHello,
/// so silent and half-open sockets cannot keep honest clients waiting. Dropping the listener
/// (the server stops accepting at shutdown) aborts the handshakes still running.
pub struct TlsListener<L: Listener = tokio::net::TcpListener> {
    listener: L,
    config: Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    max_handshakes: usize,
    handshakes: Handshakes<Handshaken<L::Io, L::Addr>>,
}

/// What a handshake task ends with: the connection and its peer, or `None` when the handshake
/// failed or timed out (logged by the task).
type Handshaken<I, A> = Option<(TlsStream<I>, A)>;

impl<L: Listener> TlsListener<L> {
    /// Serves TLS with `config` on the connections `listener` accepts.
    ///
    /// A config that names no ALPN protocols gets `h2` and `http/1.1`, in that order of
    /// preference (only `http/1.1` without the `http2` feature). A server that turns HTTP/2
    /// off with `Config::http2(false)` should set `alpn_protocols` to `http/1.1` alone, or a
    /// client that agreed on `h2` is closed unanswered.
    pub fn new(listener: L, mut config: Arc<rustls::ServerConfig>) -> Self {
        if config.alpn_protocols.is_empty() {
            Arc::make_mut(&mut config).alpn_protocols = super::default_alpn();
        }
        TlsListener {
            listener,
            config,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_handshakes: MAX_HANDSHAKES,
            handshakes: Handshakes::new(),
        }
    }

    /// How long a client may take to complete its handshake before it is closed (default
    /// 10 s: room for a slow link's round trips, not for a client that says nothing).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Most handshakes in flight at once (default 1024; at least 1). Each holds a descriptor
    /// for up to the handshake timeout, on top of `Config::max_connections`: a server under a
    /// descriptor limit should keep `max_connections` + `max_handshakes` below it.
    ///
    /// A connection accepted while every slot is taken is not kept waiting: the oldest
    /// handshake whose client has not sent a whole ClientHello yet (a silent or half-open
    /// socket) is closed to make room, or, when every client in a slot has sent one, the oldest
    /// unfinished handshake.
    pub fn max_handshakes(mut self, max: usize) -> Self {
        self.max_handshakes = max.max(1);
        self
    }

    /// Starts `io`'s handshake on a task of its own, bounded by the handshake timeout, making
    /// room for it first when every slot is taken.
    fn start_handshake(&mut self, io: L::Io, peer: L::Addr) {
        if self.handshakes.len() >= self.max_handshakes {
            self.handshakes.evict();
        }
        let config = Arc::clone(&self.config);
        let timeout = self.handshake_timeout;
        self.handshakes
            .spawn(|progress| finish_handshake(io, config, progress, timeout, peer));
    }
}

/// Runs one handshake: reads the ClientHello (reporting it to `progress`), then answers it.
/// A failed or overdue handshake is logged here, once, and its connection dropped.
async fn finish_handshake<I, A>(
    io: I,
    config: Arc<rustls::ServerConfig>,
    progress: Progress,
    timeout: Duration,
    peer: A,
) -> Handshaken<I, A>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    A: std::fmt::Debug,
{
    let handshake = async {
        let hello = LazyConfigAcceptor::new(Acceptor::default(), io).await?;
        progress.hello_read();
        hello.into_stream(config).await
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(stream)) => Some((stream, peer)),
        Ok(Err(error)) => {
            tracing::debug!(client.address = ?peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(client.address = ?peer, ?timeout, "TLS handshake timed out");
            None
        }
    }
}

impl<L: Listener> Listener for TlsListener<L> {
    type Io = TlsStream<L::Io>;
    type Addr = L::Addr;

    /// The next connection whose handshake is done. Meanwhile it keeps accepting from the
    /// inner listener and starting handshakes (`max_handshakes` in flight at most: a new one
    /// takes the slot of the least advanced).
    /// Cancel-safe: accepted connections and running handshakes live in the listener, not in
    /// this future. An error is the inner listener's own.
    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        loop {
            tokio::select! {
                // Finished handshakes first: those clients are waiting for an answer.
                biased;
                Some(done) = self.handshakes.join_next(), if self.handshakes.has_tasks() => {
                    // `None`: the task logged why.
                    if let Some(connection) = done {
                        return Ok(connection);
                    }
                }
                accepted = self.listener.accept() => {
                    let (io, peer) = accepted?;
                    self.start_handshake(io, peer);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }

    /// ALPN's answer: `h2` is HTTP/2, `http/1.1` (or `http/1.0`) the ordered engine, and no
    /// ALPN (or a protocol of the embedder's own) leaves it to the connection's first bytes.
    fn protocol(io: &Self::Io) -> Option<Protocol> {
        match io.get_ref().1.alpn_protocol()? {
            b"h2" => Some(Protocol::Http2),
            b"http/1.1" | b"http/1.0" => Some(Protocol::Http1),
            _ => None,
        }
    }
}
