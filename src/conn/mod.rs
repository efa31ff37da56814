//! The HTTP/1.1 engine: one connection, served by one state machine ([`connection::Conn`]).
//!
//! Where each rule lives, in the order a request meets them:
//! - **parsed:** [`read::Input::next_parsed`], through the parser in
//!   [`proto::request`](crate::proto::request) (httparse, then RFC 9112's rules); the body is
//!   decoded to its exact end by [`read::Pump`] before the next head is parsed;
//! - **started:** `Conn::next_request` and `Conn::start_request` (connection/start.rs), once
//!   [`dispatch::Dispatcher::poll_admit`] lets it pass (the [`spawned::Barrier`] for unsafe
//!   methods, then the service's readiness); [`dispatch::Dispatcher::start`] polls the handler
//!   once inline and moves it to a task of its own only if it must wait;
//! - **ordered:** [`order::Order`], alone: [`order::Order::place`] decides "encode now or
//!   queue", [`order::Order::poll_front`] hands out the front once its handler has finished;
//! - **closed:** [`keep_alive::KeepAlive`], alone: it owns the read side's state
//!   ([`keep_alive::Reading`]) and every reason to stop reading or to end the connection.
//!
//! ```text
//!  socket ─► read buffer ─► parse head ─► start handler ─┬─ finished, in order ─► write buffer ─► socket
//!                                 ▲                       │                          ▲
//!                          body pump (exact end)          └─ otherwise: a slot in the order (queue)
//!                                                            pending handler: its own task
//! ```
//!
//! A request with a body waits in the order until the body bytes already read are decoded, so
//! a body known to be bad by then still changes its answer (`Order::body_failed`). Handlers
//! that do not finish on their first poll run on tasks of their own; everything else (parsing,
//! the first poll, encoding) happens on the connection's task, and a pipelined batch leaves in
//! one write.

mod connection;
mod deadline;
mod dispatch;
mod keep_alive;
#[cfg(feature = "metrics")]
pub(crate) mod meter;
mod order;
mod read;
mod slot;
mod spawned;
mod write;

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tower::Service;

use crate::body::Body;
use crate::linger::linger;
use crate::shared::Shared;
use crate::BoxError;
use connection::Conn;
/// The sniff before HTTP/1.1 (`protocol.rs`) reads as this engine does, since its read is the
/// engine's first.
#[cfg(feature = "http2")]
pub(crate) use read::READ_CHUNK;

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
        shutdown,
        stats,
        connect_info,
    } = shared;
    let mut abort = shutdown.clone();
    let mut conn = Conn::new(io, buf, service, config, shutdown, stats, connect_info);
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
        () = abort.aborted() => {}
        // A reset or failed socket: nobody will read the responses; the handlers still running
        // are cancelled as the connection drops.
        result = served => if let Err(e) = result {
            tracing::debug!(error = %e, "connection failed");
        },
    }
}

#[cfg(test)]
mod tests;
