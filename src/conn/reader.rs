//! The reading half of a connection: parse requests, dispatch handlers, push slots in order,
//! and frame each request body exactly before parsing the next request.

use std::future::{poll_fn, Future};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::{Method, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::error::Elapsed;
use tokio::time::{timeout, timeout_at, Instant};
use tower::Service;
use tracing::Instrument;

use super::meter::Meter;
use super::queue::{self, PushError};
use super::slot::{Finished, InFlight, Outcome, Slot, SlotKind, Timing};
use super::{InsertInfo, Phase};
use crate::body::{Body, BodyError, Chunk};
use crate::proto::decode::{Decoded, Decoder};
use crate::proto::encode::RequestInfo;
use crate::proto::error::EngineError;
use crate::proto::request::{Framing, Head, Parser};
use crate::stats::ServerStats;
use crate::{BoxError, Config};

/// Bytes reserved in the read buffer before each socket read: enough for a pipelined batch of
/// small requests in one read, small enough to keep idle connections cheap.
pub(crate) const READ_CHUNK: usize = 8 * 1024;

/// How long an idle connection keeps its read buffer before giving it back.
const IDLE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// The stack buffer an idle connection without a read buffer waits with: big enough for most
/// single requests, small enough to cost nothing while parked.
const IDLE_READ: usize = 512;

pub(crate) struct Reader<'a, R, S: Service<Request<Body>>, B> {
    io: &'a mut R,
    buf: BytesMut,
    parser: Parser,
    config: &'a Config,
    service: S,
    slots: queue::Sender<Slot<B>>,
    in_flight: Arc<InFlight>,
    phase: watch::Receiver<Phase>,
    /// When the request head being read must be complete; set at its first byte.
    header_deadline: Option<Instant>,
    /// Requests read so far: the `seq` of each request's span.
    seq: u64,
    /// A pinned box for the next handler future, kept from the last one that finished on its
    /// first poll.
    spare: Option<Pin<Box<Option<S::Future>>>>,
    connect_info: Option<InsertInfo>,
    meter: Option<Meter>,
}

impl<'a, R, S, B> Reader<'a, R, S, B>
where
    R: AsyncRead + Unpin,
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        io: &'a mut R,
        buf: BytesMut,
        config: &'a Config,
        service: S,
        slots: queue::Sender<Slot<B>>,
        phase: watch::Receiver<Phase>,
        stats: ServerStats,
        connect_info: Option<InsertInfo>,
    ) -> Self {
        Reader {
            io,
            buf,
            parser: Parser::default(),
            config,
            service,
            slots,
            in_flight: Arc::new(InFlight::new(stats)),
            phase,
            header_deadline: None,
            seq: 0,
            spare: None,
            connect_info,
            meter: config.metrics.then(Meter::new),
        }
    }

    /// Reads and dispatches requests until the connection's read side is finished.
    ///
    /// The loop is written so that a request with no body whose handler is ready at once and
    /// whose slot fits in the channel goes through without creating a single future: parsing,
    /// the handler's first poll and the slot hand-off are all synchronous. Futures (a socket
    /// read, a full channel, a barrier, a body) only come into being when something must
    /// wait, which keeps the per-request cost of a pipelined batch low.
    pub(crate) async fn run(mut self) -> io::Result<()> {
        loop {
            let c = self.config;
            let head = match self.parser.parse(
                &mut self.buf,
                c.max_header_bytes,
                c.max_headers,
                c.max_body_bytes,
            ) {
                Ok(Some(head)) => head,
                Ok(None) => match self.fill().await {
                    Ok(()) => continue,
                    Err(ReadError::Refuse(error)) => return self.refuse(error).await,
                    Err(ReadError::Stop) => return Ok(()),
                    Err(ReadError::Io(e)) => return Err(e),
                },
                Err(error) => return self.refuse(error).await,
            };
            self.header_deadline = None;
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
                return Ok(());
            }
            let (body, body_tx) = body_channel(framing);
            if expect_continue && body_tx.is_some() {
                let interim = Slot {
                    kind: SlotKind::Continue,
                    info,
                    close: false,
                    timing: None,
                    span: tracing::Span::none(),
                };
                if self.slots.send(interim).await.is_err() {
                    return Ok(());
                }
            }
            let mut request = request.map(|()| body);
            if let Some(insert) = &self.connect_info {
                insert(request.extensions_mut());
            }
            // The request's span (debug level: free unless enabled) covers its handler, inline
            // or on its own task, and is closed by the writer with the status and timings.
            self.seq += 1;
            let span = tracing::debug_span!(
                "request",
                seq = self.seq,
                method = %request.method(),
                path = %request.uri().path(),
                status = tracing::field::Empty,
                handler_ms = tracing::field::Empty,
                queue_ms = tracing::field::Empty,
            );
            let mut request = Some(request);
            let timed = self.config.server_timing || self.config.metrics;
            let started = timed.then(Instant::now);
            let kind = poll_fn(|cx| self.dispatch(cx, &mut request, info, &span)).await;
            let timing = started.map(|started| Timing {
                started,
                finished: match kind {
                    SlotKind::Pending(_) => started,
                    _ => Instant::now(),
                },
            });
            let slot = Slot {
                kind,
                info,
                close,
                timing,
                span,
            };
            // Hand the slot over at once when there is room; else wait while the pipeline is
            // full (back pressure: meanwhile nothing more is read).
            match self.slots.try_send(slot) {
                Ok(()) => {}
                Err(PushError::Full(slot)) => {
                    if self.slots.send(slot).await.is_err() {
                        return Ok(());
                    }
                }
                Err(PushError::Closed(_)) => return Ok(()),
            }
            if let Some(meter) = &self.meter {
                meter.read(self.slots.len());
            }
            if let Some(tx) = body_tx {
                // Boxed: only requests with bodies pay for the body pump's state; inline it would
                // size the future of every connection, idle ones included.
                match Box::pin(self.pump(tx, framing)).await {
                    Ok(()) => {}
                    Err(ReadError::Io(e)) => return Err(e),
                    Err(_) => return Ok(()),
                }
            }
            if barrier {
                self.in_flight.wait_idle().await;
            }
            if close {
                return Ok(());
            }
        }
    }

    /// Answers a request the engine refuses, after every earlier response; reading ends.
    async fn refuse(&mut self, error: EngineError) -> io::Result<()> {
        let slot = Slot {
            kind: SlotKind::Ready(Outcome::refused(error)),
            info: refused_info(),
            close: true,
            timing: None,
            span: tracing::Span::none(),
        };
        // Nothing more is read whether or not the writer is still there to take it.
        let _ = self.slots.send(slot).await;
        Ok(())
    }

    /// Reads more bytes for the next request head, under the idle limit (nothing buffered)
    /// or the header-read limit (a head has started), and stops on shutdown.
    async fn fill(&mut self) -> Result<(), ReadError> {
        let c = self.config;
        let idle = self.buf.is_empty();
        let deadline = if idle {
            Instant::now() + c.idle_timeout
        } else {
            *self
                .header_deadline
                .get_or_insert_with(|| Instant::now() + c.header_read_timeout)
        };
        // An idle connection first waits with its read buffer in hand (a busy client is back
        // within moments); past IDLE_GRACE it gives the buffer back and waits with a small one,
        // so parked keep-alive connections cost little memory.
        let keep_buffer = !idle || self.buf.capacity() <= IDLE_READ;
        let read = if keep_buffer {
            self.read_until(deadline).await
        } else {
            let soon = (Instant::now() + IDLE_GRACE).min(deadline);
            match self.read_until(soon).await {
                Err(_elapsed) if soon < deadline => {
                    self.buf = BytesMut::new();
                    self.slots.release_memory();
                    self.read_small(deadline).await
                }
                read => read,
            }
        };
        match read {
            Ok(Ok(0)) => Err(ReadError::Stop),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ReadError::Io(e)),
            Err(_elapsed) if idle => Err(ReadError::Stop),
            Err(_elapsed) => Err(ReadError::Refuse(EngineError::new(
                http::StatusCode::REQUEST_TIMEOUT,
                "request head not received in time",
            ))),
        }
    }

    /// One read into the buffer before `deadline`; shutdown stops it.
    async fn read_until(&mut self, deadline: Instant) -> Result<io::Result<usize>, Elapsed> {
        tokio::select! {
            read = timeout_at(deadline, read_more(self.io, &mut self.buf)) => read,
            _ = self.phase.wait_for(|p| *p != Phase::Running) => Ok(Ok(0)),
        }
    }

    /// One read through a small stack buffer before `deadline`, for a connection that has given
    /// its read buffer back; what arrives starts a new, right-sized buffer.
    async fn read_small(&mut self, deadline: Instant) -> Result<io::Result<usize>, Elapsed> {
        let mut small = [0u8; IDLE_READ];
        let read = tokio::select! {
            read = timeout_at(deadline, self.io.read(&mut small)) => read,
            _ = self.phase.wait_for(|p| *p != Phase::Running) => Ok(Ok(0)),
        };
        if let Ok(Ok(n)) = read {
            self.buf.extend_from_slice(&small[..n]);
        }
        read
    }

    /// Calls the service and polls its future once, inline; used through `poll_fn`, so it only
    /// returns `Pending` while the service is not ready.
    ///
    /// A handler that is ready on its first poll (most are: plaintext, JSON, errors) costs no
    /// task and no oneshot; its response goes straight into the slot. One that is still pending
    /// moves to its own task, so slow or blocking handlers of the same connection run
    /// concurrently and on every core.
    fn dispatch(
        &mut self,
        cx: &mut Context<'_>,
        request: &mut Option<Request<Body>>,
        info: RequestInfo,
        span: &tracing::Span,
    ) -> Poll<SlotKind<B>> {
        if let Err(e) = std::task::ready!(self.service.poll_ready(cx)) {
            let e: BoxError = e.into();
            tracing::warn!(error = %e, "service not ready; answering 500");
            return Poll::Ready(SlotKind::Ready(Outcome::internal_error()));
        }
        let Some(request) = request.take() else {
            unreachable!("dispatch is polled again only while the service is not ready");
        };
        let service = &mut self.service;
        let spare = &mut self.spare;
        let entered = span.enter();
        let first = catch_unwind(AssertUnwindSafe(|| {
            let future = service.call(request);
            // Reuse the pinned box of the last handler that finished inline: most requests
            // then cost no allocation for their future.
            let mut pinned = spare.take().unwrap_or_else(|| Box::pin(None));
            pinned.set(Some(future));
            let polled = pinned.as_mut().as_pin_mut().map(|f| f.poll(cx));
            (polled, pinned)
        }));
        drop(entered);
        let kind = match first {
            Ok((Some(Poll::Ready(result)), mut pinned)) => {
                pinned.set(None);
                self.spare = Some(pinned);
                let answer = outcome(result, info);
                if answer.ends_connection() {
                    self.in_flight.mark_closing();
                }
                SlotKind::Ready(answer)
            }
            Ok((_, pinned)) => SlotKind::Pending(self.spawn(pinned, info, span.clone())),
            Err(_) => {
                tracing::error!("handler panicked; answering 500");
                SlotKind::Ready(Outcome::internal_error())
            }
        };
        Poll::Ready(kind)
    }

    /// Moves a handler that was not ready on its first poll to a task of its own.
    fn spawn(
        &self,
        mut pinned: Pin<Box<Option<S::Future>>>,
        info: RequestInfo,
        span: tracing::Span,
    ) -> oneshot::Receiver<Finished<B>> {
        let guard = self.in_flight.enter();
        let (mut tx, rx) = oneshot::channel();
        let deadline = self.config.request_timeout.map(|t| Instant::now() + t);
        let task = async move {
            let future = poll_fn(|cx| match pinned.as_mut().as_pin_mut() {
                Some(future) => future.poll(cx),
                None => unreachable!("a spawned handler's future is always there"),
            });
            let overdue = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            // The writer drops its receiver when the connection ends; then the handler is
            // cancelled instead of running for nobody.
            let answer = tokio::select! {
                result = future => outcome(result, info),
                () = overdue => Outcome::timed_out(),
                _ = tx.closed() => return,
            };
            // Release whatever the finished future still owns (a concurrency permit, a pooled
            // connection) before the client can see the answer and send its next request.
            pinned.set(None);
            if answer.ends_connection() {
                guard.mark_closing();
            }
            drop(guard);
            let _ = tx.send((answer, Instant::now()));
        };
        tokio::spawn(task.instrument(span));
        rx
    }

    /// Decodes one request body to its exact end, streaming it to the handler's [`Body`].
    /// Once the handler drops its body, the rest is decoded and discarded.
    async fn pump(&mut self, tx: mpsc::Sender<Chunk>, framing: Framing) -> Result<(), ReadError> {
        let c = self.config;
        let Some(mut decoder) = Decoder::new(framing, c.max_body_bytes, c.max_header_bytes) else {
            return Ok(());
        };
        let chunked = framing == Framing::Chunked;
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

/// The body handed to the handler, and the sending end the reader feeds it through.
fn body_channel(framing: Framing) -> (Body, Option<mpsc::Sender<Chunk>>) {
    let length = match framing {
        Framing::Empty => return (Body::empty(), None),
        Framing::Length(n) => Some(n),
        Framing::Chunked => None,
    };
    let (tx, body) = Body::channel(length);
    (body, Some(tx))
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
    /// Reading is over: EOF, a request that ends the connection, shutdown, or the writer is
    /// gone. The writer finishes the slots already pushed.
    Stop,
    /// The client must be told why it is refused (a head that never finished), then stop.
    Refuse(EngineError),
    /// The socket failed.
    Io(io::Error),
}

/// Reads whatever the socket has into `buf`, reserving room first.
async fn read_more<R: AsyncRead + Unpin>(io: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    io.read_buf(buf).await
}

/// Turns a handler's result into its slot's outcome; a service error is logged here, once.
fn outcome<B, E>(result: Result<Response<B>, E>, info: RequestInfo) -> Outcome<B>
where
    B: http_body::Body,
    E: Into<BoxError>,
{
    match result {
        Ok(response) => Outcome::response(response, info),
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
