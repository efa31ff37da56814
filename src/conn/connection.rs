//! One HTTP/1.1 connection as a single state machine: read, dispatch, encode, write.
//!
//! Each turn of [`Conn::run`] polls the read side ([`Conn::poll_input`]: parse heads, start
//! handlers, pump bodies, read the socket) and the write side ([`Conn::poll_output`]: encode the
//! front of the [`Order`] as it finishes) until neither can progress, then writes what was
//! encoded in one system call. A pipelined batch of quick requests is therefore one read, a
//! loop of synchronous steps, and one write: no future is created per request, and a finished
//! response in order never enters the queue.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::Service;

use super::deadline::{Deadline, Waiting};
use super::dispatch::{is_safe, Dispatcher, Started};
use super::keep_alive::{KeepAlive, Stop};
use super::meter::Meter;
use super::order::Order;
use super::read::{Input, Pump, Pumped};
use super::slot::{InFlight, Outcome, Slot, SlotKind, Timing};
use super::write::{Encoded, Output, Streamed, Streaming};
use super::{InsertInfo, Phase};
use crate::body::{Body, BodyError};
use crate::proto::encode::RequestInfo;
use crate::proto::error::EngineError;
use crate::proto::request::{Framing, Head};
use crate::stats::ServerStats;
use crate::{BoxError, Config};

/// What a turn of the state machine asks of [`Conn::run`].
enum Step {
    /// Write the encoded responses.
    Flush,
    /// Nothing more will be written: shut the write side down.
    Done,
}

/// A request parsed but not started yet: at a barrier, or while the service is not ready.
/// Boxed: rare, and a parsed head is large; inline it would size every connection.
struct Held(Box<Head>);

pub(crate) struct Conn<'a, I, S: Service<Request<Body>>, B> {
    io: I,
    config: &'a Config,
    input: Input,
    /// The last started request's body, still being decoded; the next head waits for it.
    pump: Option<Pump>,
    /// Its request asked to close: stop reading once its body is read.
    close_after_body: bool,
    output: Output,
    /// The response being written has a body still streaming.
    streaming: Option<Streaming<B>>,
    order: Order<B>,
    keep_alive: KeepAlive,
    dispatcher: Dispatcher<S>,
    held: Option<Held>,
    /// The last request started was unsafe: nothing after it starts before it finished.
    after_barrier: bool,
    /// Waits for this connection's spawned handlers to finish, at a barrier.
    barrier: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Resolves when the server stops taking requests; gone once it has.
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    deadline: Deadline,
    /// Requests read so far: the `seq` of each request's span.
    seq: u64,
    /// Measure handler time and head-of-line wait (for `Server-Timing` or metrics).
    timed: bool,
    /// The latest clock reading of this turn: one read per request, not three.
    clock: Option<Instant>,
    /// Boxed: a connection's counts take a few hundred bytes, and only metered servers pay.
    meter: Option<Box<Meter>>,
}

impl<'a, I, S, B> Conn<'a, I, S, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(
        io: I,
        buf: bytes::BytesMut,
        service: S,
        config: &'a Config,
        phase: watch::Receiver<Phase>,
        stats: ServerStats,
        connect_info: Option<InsertInfo>,
    ) -> Self {
        let in_flight = Arc::new(InFlight::new(stats));
        let mut phase = phase;
        let shutdown = Box::pin(async move {
            let _ = phase.wait_for(|p| *p != Phase::Running).await;
        });
        Conn {
            io,
            config,
            input: Input::new(buf),
            pump: None,
            close_after_body: false,
            output: Output::new(config.server_timing),
            streaming: None,
            order: Order::new(config.max_pipeline_depth),
            keep_alive: KeepAlive::default(),
            dispatcher: Dispatcher::new(service, in_flight, config, connect_info),
            held: None,
            after_barrier: false,
            barrier: None,
            shutdown: Some(shutdown),
            deadline: Deadline::default(),
            seq: 0,
            timed: config.server_timing || config.metrics,
            clock: None,
            meter: config.metrics.then(|| Box::new(Meter::new())),
        }
    }

    /// The socket, for lingering after the connection is finished.
    pub(crate) fn io(&mut self) -> &mut I {
        &mut self.io
    }

    /// Serves requests until the connection is finished, then shuts the write side down.
    pub(crate) async fn run(&mut self) -> io::Result<()> {
        while let Step::Flush = poll_fn(|cx| self.poll_step(cx)).await? {
            self.output.flush(&mut self.io).await?;
            if let Some(meter) = &mut self.meter {
                meter.batch();
            }
        }
        self.io.shutdown().await
    }

    /// Advances both sides until the encoded bytes should be written, the connection is
    /// finished, or nothing can happen before the task is woken.
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Step>> {
        self.clock = None;
        loop {
            let read = self.poll_input(cx)?;
            let wrote = self.poll_output(cx);
            if self.output.is_full() {
                return Poll::Ready(Ok(Step::Flush));
            }
            if read || wrote {
                continue;
            }
            if self.output.has_bytes() {
                return Poll::Ready(Ok(Step::Flush));
            }
            let idle = self.order.is_empty() && self.streaming.is_none();
            if self.keep_alive.is_finished(idle) {
                return Poll::Ready(Ok(Step::Done));
            }
            return Poll::Pending;
        }
    }

    /// The read side: starts every request it can, reading the socket when it needs bytes.
    /// Returns whether anything happened.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut progress = false;
        while self.keep_alive.reading() {
            let waiting = match self.pump.as_mut() {
                Some(pump) => match pump.poll(&mut self.input.buf, cx) {
                    Pumped::Done => {
                        self.pump = None;
                        if self.close_after_body {
                            self.keep_alive.stop_reading(Stop::RequestClose);
                        }
                        progress = true;
                        continue;
                    }
                    Pumped::Failed => {
                        self.pump = None;
                        self.keep_alive.stop_reading(Stop::Refused);
                        return Ok(true);
                    }
                    Pumped::Blocked => return Ok(progress),
                    Pumped::NeedBytes => Waiting::Body,
                },
                None => match self.next_request(cx) {
                    Next::Started => {
                        progress = true;
                        continue;
                    }
                    Next::Wait => return Ok(progress),
                    Next::NeedBytes if self.input.buf.is_empty() => Waiting::Idle,
                    Next::NeedBytes => Waiting::Head,
                },
            };
            match self.poll_socket(waiting, cx)? {
                Poll::Ready(()) => progress = true,
                Poll::Pending => return Ok(progress),
            }
        }
        Ok(progress)
    }

    /// Parses (or takes back) the next request and starts it if nothing holds it back.
    fn next_request(&mut self, cx: &mut Context<'_>) -> Next {
        if self.order.is_full() {
            // Back pressure: the front slot's completion wakes the task.
            return Next::Wait;
        }
        if self.dispatcher.in_flight.is_closing() {
            // A spawned handler's answer ends the connection: nothing after it is processed.
            self.keep_alive.stop_reading(Stop::ResponseClose);
            return Next::Started;
        }
        let head = match self.held.take() {
            Some(Held(head)) => *head,
            None => match self.input.next_head(self.config) {
                Ok(Some(head)) => {
                    self.deadline.head_parsed();
                    if let Some(meter) = &mut self.meter {
                        meter.read();
                    }
                    head
                }
                Ok(None) => return Next::NeedBytes,
                Err(error) => {
                    self.refuse(error);
                    return Next::Started;
                }
            },
        };
        let unsafe_method = !is_safe(head.request.method());
        if (unsafe_method || self.after_barrier) && !self.poll_barrier(cx) {
            self.held = Some(Held(Box::new(head)));
            return Next::Wait;
        }
        let ready = match self.dispatcher.poll_ready(cx) {
            Poll::Pending => {
                self.held = Some(Held(Box::new(head)));
                return Next::Wait;
            }
            Poll::Ready(ready) => ready,
        };
        self.after_barrier = unsafe_method;
        self.dispatch(head, ready, cx);
        Next::Started
    }

    /// Whether every spawned handler of this connection has finished (a barrier may pass).
    fn poll_barrier(&mut self, cx: &mut Context<'_>) -> bool {
        if self.dispatcher.in_flight.is_idle() {
            self.barrier = None;
            return true;
        }
        let in_flight = Arc::clone(&self.dispatcher.in_flight);
        let barrier = self
            .barrier
            .get_or_insert_with(|| Box::pin(async move { in_flight.wait_idle().await }));
        if barrier.as_mut().poll(cx).is_ready() {
            self.barrier = None;
            return true;
        }
        false
    }

    /// Hands a request to the service and gives its response a place in the order.
    fn dispatch(&mut self, head: Head, ready: Result<(), BoxError>, cx: &mut Context<'_>) {
        let Head {
            mut request,
            framing,
            close,
            expect_continue,
        } = head;
        let info = RequestInfo {
            version: request.version(),
            head: request.method() == Method::HEAD,
        };
        let tx = body_channel(framing, request.body_mut());
        if expect_continue && tx.is_some() {
            self.interim_continue();
        }
        self.dispatcher.prepare(&mut request);
        self.seq += 1;
        // The request's span (debug level: free unless enabled) covers its handler, inline or
        // on its own task, and is closed with the status and timings when it is answered.
        let span = tracing::debug_span!(
            "request",
            seq = self.seq,
            method = %request.method(),
            path = %request.uri().path(),
            status = tracing::field::Empty,
            handler_ms = tracing::field::Empty,
            queue_ms = tracing::field::Empty,
        );
        let started = self.timed.then(|| self.now());
        let outcome = match ready {
            Ok(()) => self.dispatcher.start(cx, request, info, &span),
            Err(e) => {
                tracing::warn!(error = %e, "service not ready; answering 500");
                Started::Ready(Outcome::internal_error())
            }
        };
        match outcome {
            Started::Ready(outcome) => {
                let timing = started.map(|started| {
                    let finished = Instant::now();
                    self.clock = Some(finished);
                    Timing { started, finished }
                });
                if outcome.ends_connection() {
                    self.keep_alive.stop_reading(Stop::ResponseClose);
                }
                self.answer_or_queue(outcome, info, close, timing, span);
            }
            Started::Spawned(rx) => {
                let timing = started.map(|started| Timing {
                    started,
                    finished: started,
                });
                self.order.push(Slot {
                    kind: SlotKind::Pending(rx),
                    info,
                    close,
                    timing,
                    span,
                });
            }
        }
        match tx.and_then(|tx| Pump::new(framing, tx, self.config)) {
            Some(pump) => {
                self.pump = Some(pump);
                self.close_after_body = close;
            }
            None if close => self.keep_alive.stop_reading(Stop::RequestClose),
            None => {}
        }
    }

    /// Answers a request the engine refuses, after every earlier response; reading ends.
    fn refuse(&mut self, error: EngineError) {
        if let Some(meter) = &mut self.meter {
            meter.read();
        }
        self.keep_alive.stop_reading(Stop::Refused);
        let outcome = Outcome::refused(error);
        self.answer_or_queue(outcome, refused_info(), true, None, tracing::Span::none());
    }

    /// `100 Continue`, in order, before the body of the request being started is read.
    fn interim_continue(&mut self) {
        if self.in_order() {
            self.output.encode_continue();
        } else {
            self.order.push(Slot {
                kind: SlotKind::Continue,
                info: refused_info(),
                close: false,
                timing: None,
                span: tracing::Span::none(),
            });
        }
    }

    /// Every earlier response has been encoded: a finished one may skip the queue.
    fn in_order(&self) -> bool {
        self.order.is_empty() && self.streaming.is_none() && !self.output.is_full()
    }

    /// Encodes a finished response at once when it is next in order, else queues it.
    fn answer_or_queue(
        &mut self,
        outcome: Outcome<B>,
        info: RequestInfo,
        close: bool,
        timing: Option<Timing>,
        span: tracing::Span,
    ) {
        if self.in_order() {
            self.answer(outcome, info, close, timing, span);
        } else {
            self.order.push(Slot {
                kind: SlotKind::Ready(outcome),
                info,
                close,
                timing,
                span,
            });
        }
    }

    /// The write side: encodes the front of the order while it is finished. Returns whether
    /// anything happened.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            if let Some(streaming) = &mut self.streaming {
                match self.output.poll_stream(streaming, cx) {
                    Streamed::Waiting => return progress,
                    Streamed::Flush => return true,
                    Streamed::Done { closes } => {
                        self.streaming = None;
                        if closes {
                            self.keep_alive.close();
                        }
                        progress = true;
                    }
                }
            }
            if self.keep_alive.is_finished(false) || self.output.is_full() {
                return progress;
            }
            let Some(front) = self.order.front_mut() else {
                return progress;
            };
            if let SlotKind::Pending(rx) = &mut front.kind {
                let Poll::Ready(received) = Pin::new(rx).poll(cx) else {
                    return progress;
                };
                let (outcome, finished) = received.unwrap_or_else(|_| {
                    tracing::error!("handler panicked; answering 500");
                    (Outcome::internal_error(), Instant::now())
                });
                front.timing = front.timing.map(|t| Timing { finished, ..t });
                front.kind = SlotKind::Ready(outcome);
            }
            let Some(slot) = self.order.pop_front() else {
                return progress;
            };
            match slot.kind {
                SlotKind::Continue => self.output.encode_continue(),
                SlotKind::Ready(outcome) => {
                    self.answer(outcome, slot.info, slot.close, slot.timing, slot.span)
                }
                SlotKind::Pending(_) => unreachable!("the front slot was resolved above"),
            }
            progress = true;
        }
    }

    /// Encodes a response that is next in order.
    fn answer(
        &mut self,
        outcome: Outcome<B>,
        info: RequestInfo,
        close: bool,
        timing: Option<Timing>,
        span: tracing::Span,
    ) {
        // Handler time, and how long the finished response waited for earlier ones.
        let timings = timing.map(|t| {
            let now = self.now();
            // Encoded the moment it finished (the clock reading is its finish): no wait.
            let queue = if now == t.finished {
                Duration::ZERO
            } else {
                now.saturating_duration_since(t.finished)
            };
            (t.finished.saturating_duration_since(t.started), queue)
        });
        if let Some(meter) = &mut self.meter {
            meter.answered(timings);
        }
        if !span.is_disabled() {
            record(&span, &outcome, timings);
        }
        let nothing_after = self.order.is_empty() && self.held.is_none();
        let last = self.keep_alive.is_last(close, nothing_after);
        match self.output.encode(outcome, info, last, timings) {
            Encoded::Whole { closes } => {
                if closes {
                    self.keep_alive.close();
                }
            }
            Encoded::Stream(streaming) => self.streaming = Some(streaming),
        }
    }

    /// This turn's clock reading, taken once.
    fn now(&mut self) -> Instant {
        *self.clock.get_or_insert_with(Instant::now)
    }

    /// Reads the socket for what `waiting` needs, under its deadline; shutdown stops a wait for
    /// a new request. `Ready` when something changed.
    fn poll_socket(&mut self, waiting: Waiting, cx: &mut Context<'_>) -> io::Result<Poll<()>> {
        let parked = self.input.is_parked();
        let clock = &mut self.clock;
        let now = || *clock.get_or_insert_with(Instant::now);
        let waiting = self.deadline.settle(waiting, parked, self.config, now);
        if waiting != Waiting::Body && self.poll_shutdown(cx) {
            self.keep_alive.stop_reading(Stop::Draining);
            return Ok(Poll::Ready(()));
        }
        match self.input.poll_read(&mut self.io, cx) {
            Poll::Ready(Ok(0)) => {
                self.on_eof(waiting, cx);
                return Ok(Poll::Ready(()));
            }
            Poll::Ready(Ok(_)) => {
                self.deadline.bytes_arrived(waiting);
                return Ok(Poll::Ready(()));
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {}
        }
        if !self.deadline.poll_expired(cx) {
            return Ok(Poll::Pending);
        }
        match waiting {
            Waiting::Grace => {
                self.input.park();
                self.output.release_memory();
                self.order.release_memory();
                let now = self.now();
                self.deadline.grace_over(self.config, now);
            }
            Waiting::Idle => self.keep_alive.stop_reading(Stop::Eof),
            Waiting::Head => self.refuse(EngineError::new(
                http::StatusCode::REQUEST_TIMEOUT,
                "request head not received in time",
            )),
            Waiting::Body => self.fail_body(BodyError::TimedOut, cx),
        }
        Ok(Poll::Ready(()))
    }

    /// Whether the server has begun shutting down.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(shutdown) = &mut self.shutdown else {
            return true;
        };
        if shutdown.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.shutdown = None;
        true
    }

    /// The client closed its sending side.
    fn on_eof(&mut self, waiting: Waiting, cx: &mut Context<'_>) {
        if waiting == Waiting::Body {
            self.fail_body(BodyError::Incomplete, cx);
        } else {
            self.keep_alive.stop_reading(Stop::Eof);
        }
    }

    /// The body being pumped cannot be read to its end: its handler is told, and reading stops.
    fn fail_body(&mut self, error: BodyError, cx: &mut Context<'_>) {
        if let Some(pump) = &mut self.pump {
            if let Pumped::Blocked = pump.fail(error, cx) {
                // The error waits for room in the handler's body; the pump delivers it.
                return;
            }
        }
        self.pump = None;
        self.keep_alive.stop_reading(Stop::Refused);
    }
}

/// What the read side did with the next request.
enum Next {
    /// Started it (or answered it, or stopped reading): look again.
    Started,
    /// Something holds it back; the task will be woken.
    Wait,
    /// Its head is not complete yet.
    NeedBytes,
}

/// Puts the streaming body the handler reads into `body` (left empty when there is none), and
/// returns the sending end the connection feeds it through.
fn body_channel(
    framing: Framing,
    body: &mut Body,
) -> Option<tokio::sync::mpsc::Sender<crate::body::Chunk>> {
    let length = match framing {
        Framing::Empty => return None,
        Framing::Length(n) => Some(n),
        Framing::Chunked => None,
    };
    let (tx, streaming) = Body::channel(length);
    *body = streaming;
    Some(tx)
}

/// Encoding info for a refused request: its version is not trusted, so answer as HTTP/1.1
/// with a Content-Length (valid for HTTP/1.0 clients too).
fn refused_info() -> RequestInfo {
    RequestInfo {
        version: http::Version::HTTP_11,
        head: false,
    }
}

/// Closes a request's span: its status and, when measured, its timings.
fn record<B>(span: &tracing::Span, outcome: &Outcome<B>, timing: Option<(Duration, Duration)>) {
    let status = match outcome {
        Outcome::Response(response, _) => response.status(),
        Outcome::Engine { error, .. } => error.status,
    };
    span.record("status", status.as_u16());
    if let Some((handler, queue)) = timing {
        span.record("handler_ms", handler.as_secs_f64() * 1000.0);
        span.record("queue_ms", queue.as_secs_f64() * 1000.0);
    }
    tracing::debug!(parent: span, "answered");
}
