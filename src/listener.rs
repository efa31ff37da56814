//! What [`serve`](crate::serve) accepts connections from: TCP, Unix domain sockets, or any
//! listener of your own.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// A source of connections, as `axum::serve` has: implemented for tokio's `TcpListener` and
/// (on Unix) `UnixListener`.
pub trait Listener: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// A peer's address (what [`Serve::connect_info`](crate::Serve::connect_info) gets).
    type Addr: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// Waits for the next connection.
    ///
    /// Must be cancel-safe, as tokio's own `accept` is: the server drops this future when it
    /// shuts down, and a `tls::TlsListener` (feature `tls-ring`) wrapping this listener drops it whenever a
    /// handshake finishes first, so a connection must not be lost in a dropped future (a
    /// PROXY-protocol header read inside `accept` would be).
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send;

    /// The address this listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// The protocol `io` agreed on before its first HTTP byte (TLS ALPN), which then picks the
    /// engine; `None` (the default, right for plain sockets) tells HTTP/2 prior knowledge from
    /// HTTP/1.1 by the connection's first bytes.
    fn protocol(io: &Self::Io) -> Option<Protocol> {
        let _ = io;
        None
    }
}

/// The HTTP version a connection was set up for before its first byte (TLS ALPN `http/1.1`
/// or `h2`); see [`Listener::protocol`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 (or 1.0): the ordered pipelining engine.
    Http1,
    /// HTTP/2: hyper's HTTP/2 server, under the same `Config` (feature `http2`).
    Http2,
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Responses are batched by the writer already; Nagle would only delay the last one.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        tokio::net::TcpListener::local_addr(self)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Self::Addr)> {
        tokio::net::UnixListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        tokio::net::UnixListener::local_addr(self)
    }
}
