//! The caller's half of a connection: [`SendRequest`], a `tower::Service` that queues each
//! request in a slot of its own and resolves to its response, and the [`Builder`] that makes
//! the pair.

use crate::client::RequestBody;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{Handle, Incoming};
use super::connection::Connection;
use super::encode;
use super::error::{Error, ErrorKind};
use super::slots::{Delivery, Exchange, Head, Shared};

/// Settings of one client connection; [`handshake`] uses the defaults.
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    pub(crate) depth: usize,
    pub(crate) pipeline_unsafe: bool,
    pub(crate) max_head_bytes: usize,
    pub(crate) max_body_buffer: usize,
    pub(crate) max_discard: u64,
    pub(crate) max_write_buffer: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: depth 16, the RFC's pipelining rules, 64 KiB heads, 64 KiB of body
    /// buffered per response, 256 KiB discarded for a dropped response, 64 KiB written at a
    /// time.
    pub fn new() -> Self {
        Builder {
            depth: 16,
            pipeline_unsafe: false,
            max_head_bytes: 64 * 1024,
            max_body_buffer: 64 * 1024,
            max_discard: 256 * 1024,
            max_write_buffer: 64 * 1024,
        }
    }

    /// Requests outstanding at once on the connection (at least 1): a call takes a place
    /// until its response has been read to the end and handed over, and `poll_ready` waits for
    /// one. 16 is what `wrk`'s pipelining script and `h2load -m 16` use; servers bound their
    /// own pipelines too (this project's `Config::max_pipeline_depth`: 128).
    pub fn pipeline_depth(mut self, depth: usize) -> Self {
        self.depth = depth.clamp(1, u32::MAX as usize);
        self
    }

    /// `true`: write every request as soon as it is called, non-idempotent ones included.
    /// By default (RFC 9112 §9.3.2) a request whose method is not idempotent (POST, PATCH,
    /// …) is written only when no response is owed, and nothing is written behind it until
    /// its final status arrived, so that a connection lost mid-pipeline never leaves a
    /// non-idempotent request in doubt behind others. Turn it on for a server you know
    /// answers every request it reads.
    pub fn pipeline_unsafe(mut self, on: bool) -> Self {
        self.pipeline_unsafe = on;
        self
    }

    /// Longest response head accepted (status line, fields, 1xx heads each; and a chunked
    /// body's trailer section); a longer one fails the connection as a protocol error.
    pub fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.max_head_bytes = bytes;
        self
    }

    /// Body bytes held for a response whose caller has not read them yet; past this the
    /// connection stops reading (the responses behind it arrive later, not lost).
    pub fn max_body_buffer(mut self, bytes: usize) -> Self {
        self.max_body_buffer = bytes.max(1);
        self
    }

    /// Body bytes read and thrown away after a caller drops a response unread; a longer rest
    /// closes the connection instead (the requests behind it then fail as not answered, and
    /// [`Client`](super::Client) sends the idempotent ones again).
    pub fn max_discard(mut self, bytes: u64) -> Self {
        self.max_discard = bytes;
        self
    }

    /// Bytes of requests encoded ahead of the socket before the connection stops taking more
    /// from the queue (a request is never split to fit): enough for a whole pipeline of small
    /// requests in one write, little enough that a big body is not held twice. Raise it to
    /// send a larger batch in one write (`pipelined send` does).
    pub fn max_write_buffer(mut self, bytes: usize) -> Self {
        self.max_write_buffer = bytes.max(1);
        self
    }

    /// Starts a client connection over `io` (an established TCP or TLS stream).
    ///
    /// # Return Value
    ///
    /// The [`SendRequest`] to call, and the [`Connection`] future that does all the reading
    /// and writing: spawn it (or poll it beside the calls); it resolves when the connection
    /// ends, with the error that ended it if one did.
    pub fn handshake<T, B>(&self, io: T) -> (SendRequest<B>, Connection<T, B>)
    where
        T: AsyncRead + AsyncWrite + Unpin,
        B: RequestBody,
    {
        let shared = Arc::new(Shared::new(self.depth));
        let send = SendRequest {
            shared: shared.clone(),
            reserved: None,
        };
        (send, Connection::new(io, shared, *self))
    }
}

/// [`Builder::handshake`] with the default settings.
pub fn handshake<T, B>(io: T) -> (SendRequest<B>, Connection<T, B>)
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    Builder::new().handshake(io)
}

/// Sends requests on one connection: each call writes its request as soon as the connection
/// task can, and its future resolves to that request's response, in order. A
/// `tower::Service`: `poll_ready` waits for a place in the pipeline (at most
/// [`Builder::pipeline_depth`] outstanding). Cloning gives another sender on the same
/// connection; the connection ends when every sender is gone and every response is read.
pub struct SendRequest<B: Body + Send + 'static> {
    shared: Arc<Shared<B>>,
    /// The slot `poll_ready` took for the next call.
    reserved: Option<u32>,
}

impl<B: RequestBody> SendRequest<B> {
    /// Waits until the connection has room for another request.
    ///
    /// # Return Value
    ///
    /// `Err` ([`ErrorKind::NotSent`]) when the connection has ended.
    pub async fn ready(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| tower::Service::<Request<B>>::poll_ready(self, cx)).await
    }

    /// Waits for room, then sends `request`.
    pub async fn send_request(&mut self, request: Request<B>) -> Result<Response<Incoming>, Error> {
        if let Err(e) = self.ready().await {
            return Err(e.with_request(request));
        }
        tower::Service::call(self, request).await
    }

    /// Whether the connection has ended: every later call fails with
    /// [`ErrorKind::NotSent`].
    pub fn is_closed(&self) -> bool {
        self.shared.is_ended()
    }

    /// Requests taken by calls (or reserved by `poll_ready`) whose responses are not yet read
    /// to the end.
    pub fn outstanding(&self) -> usize {
        self.shared.outstanding()
    }
}

impl<B: RequestBody> tower::Service<Request<B>> for SendRequest<B> {
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.reserved.is_some() {
            return Poll::Ready(Ok(()));
        }
        let index = std::task::ready!(self.shared.poll_reserve(cx))?;
        self.reserved = Some(index);
        Poll::Ready(Ok(()))
    }

    /// Queues `request` for writing. Requests the client cannot send (CONNECT, upgrades, no
    /// `Host`) fail at once, unsent.
    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let Some(index) = self.reserved.take() else {
            let error = Error::new(ErrorKind::NotReady, "called without poll_ready");
            return ResponseFuture::failed(error.with_request(request));
        };
        if let Err(error) = encode::check(&request) {
            self.shared.unreserve(index);
            return ResponseFuture::failed(error.with_request(request));
        }
        match self.shared.submit(index, request) {
            Ok(id) => {
                let exchange: Arc<dyn Exchange> = self.shared.clone();
                ResponseFuture {
                    state: Some(Ok(Handle::new(exchange, id))),
                }
            }
            Err(error) => ResponseFuture::failed(error),
        }
    }
}

impl<B: Body + Send + 'static> Clone for SendRequest<B> {
    fn clone(&self) -> Self {
        self.shared.add_sender();
        SendRequest {
            shared: self.shared.clone(),
            reserved: None,
        }
    }
}

impl<B: Body + Send + 'static> Drop for SendRequest<B> {
    fn drop(&mut self) {
        if let Some(index) = self.reserved.take() {
            self.shared.unreserve(index);
        }
        self.shared.remove_sender();
    }
}

impl<B: Body + Send + 'static> fmt::Debug for SendRequest<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendRequest")
            .field("reserved", &self.reserved.is_some())
            .finish()
    }
}

/// The response to one call of [`SendRequest`].
///
/// # Return Value
///
/// The response, its body streaming from the connection; or the [`Error`] that kept it from
/// arriving, which says whether the request may have been processed and, when it can be sent
/// again unchanged, holds it ([`Error::into_request`]). Dropping the future before it resolves
/// is safe: the response is still read off the connection and thrown away.
#[must_use = "a response future does nothing unless polled; dropping it discards the response"]
pub struct ResponseFuture {
    state: Option<Result<Handle, Error>>,
}

impl ResponseFuture {
    fn failed(error: Error) -> Self {
        ResponseFuture {
            state: Some(Err(error)),
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Incoming>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = match &self.state {
            Some(Ok(handle)) => std::task::ready!(handle.poll_answer(cx)),
            Some(Err(_)) => match self.state.take() {
                Some(Err(error)) => return Poll::Ready(Err(error)),
                _ => unreachable!("matched Err above"),
            },
            None => panic!("ResponseFuture polled after it resolved"),
        };
        let Some(Ok(handle)) = self.state.take() else {
            unreachable!("matched Ok above")
        };
        Poll::Ready(answer.map(|Head { parts, body }| {
            let body = match body {
                Delivery::Empty => Incoming::empty(),
                Delivery::Full(bytes) => Incoming::full(bytes),
                Delivery::Streaming(len) => {
                    return Response::from_parts(parts, Incoming::streaming(handle, len))
                }
            };
            Response::from_parts(parts, body)
        }))
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
