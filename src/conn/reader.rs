//! The reading half of a connection: parse requests, dispatch handlers, push slots in order,
//! and frame each request body exactly before parsing the next request.

use std::future::{poll_fn, Future};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use http::{Method, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, timeout_at, Instant};
use tower::{Service, ServiceExt};

use super::slot::{InFlight, Outcome, Slot, SlotKind};
use super::Phase;
use crate::body::{Body, BodyError, Chunk};
use crate::proto::decode::{Decoded, Decoder};
use crate::proto::encode::{self, RequestInfo};
use crate::proto::error::EngineError;
use crate::proto::request::{Framing, Head, Parser};
use crate::stats::ServerStats;
use crate::{BoxError, Config};

/// Bytes reserved in the read buffer before each socket read: enough for a pipelined batch of
/// small requests in one read, small enough to keep idle connections cheap.
const READ_CHUNK: usize = 8 * 1024;

pub(crate) struct Reader<'a, R, S, B> {
    io: &'a mut R,
    buf: BytesMut,
    parser: Parser,
    config: &'a Config,
    service: S,
    slots: mpsc::Sender<Slot<B>>,
    in_flight: Arc<InFlight>,
    phase: watch::Receiver<Phase>,
}

impl<'a, R, S, B> Reader<'a, R, S, B>
where
    R: AsyncRead + Unpin,
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    pub(crate) fn new(
        io: &'a mut R,
        config: &'a Config,
        service: S,
        slots: mpsc::Sender<Slot<B>>,
        phase: watch::Receiver<Phase>,
        stats: ServerStats,
    ) -> Self {
        Reader {
            io,
            buf: BytesMut::new(),
            parser: Parser::default(),
            config,
            service,
            slots,
            in_flight: Arc::new(InFlight::new(stats)),
            phase,
        }
    }

    /// Reads and dispatches requests until the connection's read side is finished.
    pub(crate) async fn run(mut self) -> io::Result<()> {
        loop {
            match self.step().await {
                Ok(()) => {}
                Err(ReadError::Stop) => return Ok(()),
                Err(ReadError::Io(e)) => return Err(e),
            }
        }
    }

    /// Reads one request and dispatches it.
    async fn step(&mut self) -> Result<(), ReadError> {
        let head = match self.next_head().await? {
            Ok(head) => head,
            Err(error) => {
                self.push(
                    SlotKind::Ready(Outcome::refused(error)),
                    refused_info(),
                    true,
                )
                .await?;
                return Err(ReadError::Stop);
            }
        };
        let Head {
            request,
            framing,
            close,
            expect_continue,
        } = head;
        let info = RequestInfo {
            version: request.version(),
            head: request.method() == Method::HEAD,
        };
        let barrier = !is_safe(request.method());
        if barrier {
            self.in_flight.wait_idle().await;
        }
        if self.in_flight.is_closing() {
            return Err(ReadError::Stop);
        }
        let max_trailers = self.config.max_header_bytes;
        let decoder = Decoder::new(framing, self.config.max_body_bytes, max_trailers);
        let (body, body_tx) = match framing {
            Framing::Empty => (Body::empty(), None),
            Framing::Length(n) => {
                let (tx, body) = Body::channel(Some(n));
                (body, Some(tx))
            }
            Framing::Chunked => {
                let (tx, body) = Body::channel(None);
                (body, Some(tx))
            }
        };
        if expect_continue && body_tx.is_some() {
            self.push(SlotKind::Continue, info, false).await?;
        }
        let kind = self.dispatch(request.map(|()| body), info).await;
        self.push(kind, info, close).await?;
        if let (Some(tx), Some(decoder)) = (body_tx, decoder) {
            self.pump(tx, decoder, framing == Framing::Chunked).await?;
        }
        if barrier {
            self.in_flight.wait_idle().await;
        }
        if close {
            return Err(ReadError::Stop);
        }
        Ok(())
    }

    /// Sends a slot to the writer; waits while the pipeline is full (back pressure).
    async fn push(
        &mut self,
        kind: SlotKind<B>,
        info: RequestInfo,
        close: bool,
    ) -> Result<(), ReadError> {
        self.slots
            .send(Slot { kind, info, close })
            .await
            .map_err(|_| ReadError::Stop)
    }

    /// Reads until a whole request head is buffered. The outer error ends reading silently;
    /// the inner one is a request to refuse with a status.
    async fn next_head(&mut self) -> Result<Result<Head, EngineError>, ReadError> {
        let mut header_deadline = None;
        loop {
            let c = self.config;
            match self.parser.parse(
                &mut self.buf,
                c.max_header_bytes,
                c.max_headers,
                c.max_body_bytes,
            ) {
                Ok(Some(head)) => return Ok(Ok(head)),
                Ok(None) => {}
                Err(error) => return Ok(Err(error)),
            }
            let deadline = if self.buf.is_empty() {
                Instant::now() + c.idle_timeout
            } else {
                *header_deadline.get_or_insert_with(|| Instant::now() + c.header_read_timeout)
            };
            let idle = self.buf.is_empty();
            let read = tokio::select! {
                read = timeout_at(deadline, read_more(self.io, &mut self.buf)) => read,
                _ = self.phase.wait_for(|p| *p != Phase::Running) => return Err(ReadError::Stop),
            };
            match read {
                Ok(Ok(0)) => return Err(ReadError::Stop),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(ReadError::Io(e)),
                Err(_elapsed) if idle => return Err(ReadError::Stop),
                Err(_elapsed) => {
                    return Ok(Err(EngineError::new(
                        http::StatusCode::REQUEST_TIMEOUT,
                        "request head not received in time",
                    )))
                }
            }
        }
    }

    /// Calls the service and polls its future once, inline.
    ///
    /// A handler that is ready on its first poll (most are: plaintext, JSON, errors) costs no
    /// task and no oneshot; its response goes straight into the slot. One that is still pending
    /// moves to its own task, so slow or blocking handlers of the same connection run
    /// concurrently and on every core.
    async fn dispatch(&mut self, request: Request<Body>, info: RequestInfo) -> SlotKind<B> {
        if let Err(e) = self.service.ready().await {
            let e: BoxError = e.into();
            tracing::warn!(error = %e, "service not ready; answering 500");
            return SlotKind::Ready(Outcome::internal_error());
        }
        let service = &mut self.service;
        let mut future = match catch_unwind(AssertUnwindSafe(|| Box::pin(service.call(request)))) {
            Ok(future) => future,
            Err(_) => {
                tracing::error!("handler panicked; answering 500");
                return SlotKind::Ready(Outcome::internal_error());
            }
        };
        let first =
            poll_fn(|cx| Poll::Ready(catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)))))
                .await;
        match first {
            Ok(Poll::Ready(result)) => {
                let answer = outcome(result);
                if ends_connection(&answer, info) {
                    self.in_flight.mark_closing();
                }
                SlotKind::Ready(answer)
            }
            Ok(Poll::Pending) => {
                let guard = self.in_flight.enter();
                let (mut tx, rx) = oneshot::channel();
                let deadline = self.config.request_timeout.map(|t| Instant::now() + t);
                tokio::spawn(async move {
                    let overdue = async {
                        match deadline {
                            Some(deadline) => tokio::time::sleep_until(deadline).await,
                            None => std::future::pending().await,
                        }
                    };
                    // The writer drops its receiver when the connection ends; then the
                    // handler is cancelled instead of running for nobody.
                    let answer = tokio::select! {
                        result = future => outcome(result),
                        () = overdue => Outcome::timed_out(),
                        _ = tx.closed() => return,
                    };
                    if ends_connection(&answer, info) {
                        guard.mark_closing();
                    }
                    drop(guard);
                    let _ = tx.send(answer);
                });
                SlotKind::Pending(rx)
            }
            Err(_) => {
                tracing::error!("handler panicked; answering 500");
                SlotKind::Ready(Outcome::internal_error())
            }
        }
    }

    /// Decodes one request body to its exact end, streaming it to the handler's [`Body`].
    /// Once the handler drops its body, the rest is decoded and discarded.
    async fn pump(
        &mut self,
        tx: mpsc::Sender<Chunk>,
        mut decoder: Decoder,
        chunked: bool,
    ) -> Result<(), ReadError> {
        let mut tx = Some(tx);
        loop {
            let chunk = match decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => Chunk::Data(data),
                Ok(Decoded::Trailers(map)) => Chunk::Trailers(map),
                Ok(Decoded::Done) if chunked => Chunk::End,
                Ok(Decoded::Done) => return Ok(()),
                Ok(Decoded::NeedMore) => {
                    let limit = self.config.body_read_timeout;
                    let error = match timeout(limit, read_more(self.io, &mut self.buf)).await {
                        Ok(Ok(0)) => BodyError::Incomplete,
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => return Err(ReadError::Io(e)),
                        Err(_elapsed) => BodyError::TimedOut,
                    };
                    send(&mut tx, Chunk::Error(error)).await;
                    return Err(ReadError::Stop);
                }
                Err(error) => {
                    send(&mut tx, Chunk::Error(error)).await;
                    return Err(ReadError::Stop);
                }
            };
            let last = matches!(chunk, Chunk::Trailers(_) | Chunk::End);
            send(&mut tx, chunk).await;
            if last {
                return Ok(());
            }
        }
    }
}

/// Sends a chunk to the handler's body unless the handler already dropped it.
async fn send(tx: &mut Option<mpsc::Sender<Chunk>>, chunk: Chunk) {
    if let Some(sender) = tx {
        if sender.send(chunk).await.is_err() {
            *tx = None;
        }
    }
}

/// Why the reader stopped.
enum ReadError {
    /// Reading is over: EOF, a request that ends the connection, a refused request, shutdown,
    /// or the writer is gone. The writer finishes the slots already pushed.
    Stop,
    /// The socket failed.
    Io(io::Error),
}

/// Reads whatever the socket has into `buf`, reserving room first.
async fn read_more<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    io.read_buf(buf).await
}

/// Turns a handler's result into its slot's outcome; a service error is logged here, once.
fn outcome<B, E: Into<BoxError>>(result: Result<Response<B>, E>) -> Outcome<B> {
    match result {
        Ok(response) => Outcome::Response(response),
        Err(e) => {
            let e = e.into();
            match e.downcast_ref::<BodyError>() {
                Some(body) => Outcome::Engine {
                    error: EngineError::new(body.status(), "request body could not be read"),
                    close: false,
                },
                None => {
                    tracing::warn!(error = %e, "handler failed; answering 500");
                    Outcome::internal_error()
                }
            }
        }
    }
}

/// Whether the connection ends after this answer; see [`encode::plan`].
fn ends_connection<B: http_body::Body>(answer: &Outcome<B>, info: RequestInfo) -> bool {
    match answer {
        Outcome::Response(res) => {
            let len = res.body().size_hint().exact();
            encode::plan(res.status(), res.headers(), len, info, false).close
        }
        Outcome::Engine { close, .. } => *close,
    }
}

/// GET, HEAD, OPTIONS and TRACE are safe (RFC 9110 §9.2.1) and may run concurrently; any other
/// method is a barrier.
fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Encoding info for a refused request: its version is not trusted, so answer as HTTP/1.1
/// with a Content-Length (valid for HTTP/1.0 clients too).
fn refused_info() -> RequestInfo {
    RequestInfo {
        version: http::Version::HTTP_11,
        head: false,
    }
}
