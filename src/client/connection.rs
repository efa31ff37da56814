//! The connection's half: one future that writes queued requests and reads responses on the
//! same stream, so a long pipeline never deadlocks with a server that stops reading until it
//! has written (each side always makes what progress it can).
//!
//! Who decides what:
//! - `write.rs` decides **when a request may go on the wire** (RFC 9112 §9.3.2 behind a
//!   non-idempotent request, `Connection: close`), encodes it and streams its body;
//! - `read.rs` decodes responses and hands each to the **oldest written request**
//!   (`in_flight`'s front): the ordering is that one field;
//! - this file runs both in turns and decides **how the connection ends** and what each
//!   request still owed hears about it ([`Connection::fail`]).

mod read;
mod write;

use crate::client::RequestBody;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use super::encode::Written;
use super::error::{Error, ErrorKind};
use super::send::Builder;
use super::slots::Shared;

/// Turns one `poll` takes before yielding to the runtime, so a connection that always has
/// bytes to move cannot starve the other tasks of its thread.
const TURNS_PER_POLL: usize = 16;

/// Drives one client connection: spawn it beside its [`SendRequest`](super::SendRequest).
///
/// # Return Value
///
/// `Ok(())` when the connection ended cleanly (every sender dropped and every response read,
/// or the server closed it between responses), otherwise the error that ended it; every
/// request still owed has already been told, through its own future, how it failed.
#[must_use = "the connection does nothing unless polled (spawn it)"]
pub struct Connection<T, B: Body + Send + 'static> {
    io: T,
    shared: Arc<Shared<B>>,
    config: Builder,
    writer: write::Writer<B>,
    reader: read::Reader,
    /// Requests written (or being written) whose responses have not ended, oldest first:
    /// the next response belongs to the front.
    in_flight: VecDeque<(u32, Written)>,
    /// No more requests go on the wire: one asked the server to close, or the server said it
    /// will.
    closing: bool,
    done: bool,
}

impl<T, B> Connection<T, B>
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    pub(crate) fn new(io: T, shared: Arc<Shared<B>>, config: Builder) -> Self {
        Connection {
            io,
            shared,
            config,
            writer: write::Writer::new(),
            reader: read::Reader::new(),
            in_flight: VecDeque::with_capacity(config.depth),
            closing: false,
            done: false,
        }
    }

    /// One turn: write what may be written, read what has arrived. `Ok(true)` when either
    /// made progress.
    fn turn(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let wrote = self.poll_write(cx)?;
        let read = self.poll_read(cx)?;
        Ok(wrote || read)
    }

    /// Whether the connection has nothing left to do: no sender can call again and nothing is
    /// owed, or the server said it closes and its last answer is read.
    fn finished(&self) -> bool {
        self.in_flight.is_empty()
            && !self.writer.is_busy()
            && (self.closing || self.shared.idle_for_good())
    }
}

impl<T, B: Body + Send + 'static> Connection<T, B> {
    /// The connection ends with `error`. The response being read fails with it; the front
    /// request, when its response was malformed or cut off in the head, too, as does a request
    /// whose own body failed; every other written request still unanswered fails
    /// `NotAnswered`, every queued one `NotSent`.
    fn fail(&mut self, error: &Error) {
        let current = self.reader.take_current();
        let own_body = self
            .writer
            .streaming_slot()
            .filter(|_| error.kind() == ErrorKind::Body);
        let front_kind = match error.kind() {
            ErrorKind::Protocol | ErrorKind::Incomplete => error.kind(),
            _ => ErrorKind::NotAnswered,
        };
        // First, so that a caller woken below finds the connection ended.
        self.shared.end(&error.to_string());
        for (i, (index, _)) in self.in_flight.drain(..).enumerate() {
            if i == 0 && current == Some(index) {
                self.shared
                    .finish(index, Err(error.for_another(current_kind(error))));
            } else if own_body == Some(index) {
                self.shared
                    .unanswered(index, error.for_another(ErrorKind::Body));
            } else if i == 0 {
                self.shared.unanswered(index, error.for_another(front_kind));
            } else {
                self.shared
                    .unanswered(index, error.for_another(ErrorKind::NotAnswered));
            }
        }
        self.done = true;
    }

    fn end_cleanly(&mut self, why: &str) {
        self.shared.end(why);
        self.done = true;
    }
}

impl<T, B: Body + Send + 'static> Drop for Connection<T, B> {
    /// A connection dropped before it ended (its task aborted, or never spawned) fails every
    /// request still owed, as a connection lost would, rather than leaving them waiting for
    /// ever.
    fn drop(&mut self) {
        if !self.done {
            self.fail(&Error::new(
                ErrorKind::NotAnswered,
                "the connection's task was dropped before the connection ended",
            ));
        }
    }
}

/// The kind a response cut off partway gets: the cause, except that a clean close is an
/// incomplete response.
fn current_kind(error: &Error) -> ErrorKind {
    match error.kind() {
        ErrorKind::NotAnswered => ErrorKind::Incomplete,
        kind => kind,
    }
}

impl<T, B> Future for Connection<T, B>
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(Ok(()));
        }
        this.shared.register(cx.waker());
        for _ in 0..TURNS_PER_POLL {
            match this.turn(cx) {
                Err(error) => {
                    this.fail(&error);
                    return Poll::Ready(Err(error));
                }
                Ok(_) if this.reader.closed_cleanly() => {
                    this.end_cleanly("the server closed the connection");
                    return Poll::Ready(Ok(()));
                }
                Ok(_) if this.finished() => {
                    let why = if this.closing {
                        "the connection closed after a `Connection: close` exchange"
                    } else {
                        "the connection was shut down"
                    };
                    this.end_cleanly(why);
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    return Poll::Ready(Ok(()));
                }
                Ok(true) => {}
                Ok(false) => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T, B: Body + Send + 'static> fmt::Debug for Connection<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("in_flight", &self.in_flight.len())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}
