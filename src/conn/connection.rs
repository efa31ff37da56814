//! One HTTP/1.1 connection as a single state machine: read, start, encode, write.
//!
//! Each turn of [`Conn::run`] polls the read side ([`Conn::poll_input`]: parse heads, start
//! handlers, pump bodies, read the socket) and the write side ([`Conn::poll_output`]: encode the
//! front of the [`Order`] as it finishes) until neither can progress, then writes what was
//! encoded in one system call. A pipelined batch of quick requests is therefore one read, a
//! loop of synchronous steps, and one write: no future is created per request, and a finished
//! response in order never enters the queue.

mod inline;
mod socket;
mod start;

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tower::Service;

use super::deadline::{Deadline, Waiting};
use super::dispatch::Dispatcher;
use super::keep_alive::KeepAlive;
#[cfg(feature = "metrics")]
use super::meter::Meter;
use super::order::Order;
use super::read::{Input, Pumped};
use super::slot::{Labels, Outcome, Slot, SlotKind, Timing};
use super::spawned::Spawned;
use super::write::{BodyBox, Encoded, Output, Streamed, Streaming};
use super::{ConnBody, ConnService};
use crate::body::Body;
use crate::proto::encode::RequestInfo;
use crate::proto::request::blank_request;
use crate::router::LastRoute;
use crate::shared::InsertInfo;
use crate::shutdown::Shutdown;
use crate::stats::ServerStats;
use crate::timing::{Elapsed, Measured, Stamp};
use crate::{Config, Router};

/// What a turn of the state machine asks of [`Conn::run`].
enum Step {
    /// Write the encoded responses.
    Flush,
    /// Nothing more will be written: shut the write side down.
    Done,
}

use start::Next;

pub(crate) struct Conn<'a, I, S: Service<Request<Body>>, B> {
    io: I,
    config: &'a Config,
    input: Input,
    output: Output,
    /// The response being written has a body still streaming.
    streaming: Option<Streaming<B>>,
    /// The box the last streamed body was polled in, for the next ([`BodyBox`]).
    spare_body: Option<BodyBox<B>>,
    order: Order<B>,
    /// The read side's state, and every decision to close.
    keep_alive: KeepAlive,
    dispatcher: Dispatcher<S>,
    /// The served `Router`, when it is one with inline handlers: the inline path
    /// (connection/inline.rs).
    inline: Option<Router>,
    /// The route the inline path matched last ([`LastRoute`]).
    last_route: LastRoute,
    /// The request being started: built here by the parser and taken from here by the
    /// service's call, so that it is copied once on its way, not at every step between
    /// (`Parser::build_into`). Blank between requests.
    request: Request<Body>,
    /// Resolves when the server stops taking requests; gone once it has.
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    deadline: Deadline,
    /// Requests read so far: the `seq` of each request's span.
    seq: u64,
    /// Measure handler time and head-of-line wait (for `Server-Timing` or metrics).
    timed: bool,
    /// This turn's reading of tokio's clock, for deadlines: one read per turn.
    clock: Option<Instant>,
    /// The latest reading of the timing clock this turn (when `timed`): a handler's finish is
    /// the next one's start and its answer's encoding time, one read per request, not three.
    stamp: Option<Stamp>,
    /// Boxed: a connection's counts take a few hundred bytes, and only metered servers pay.
    #[cfg(feature = "metrics")]
    meter: Option<Box<Meter>>,
}

impl<'a, I, S, B> Conn<'a, I, S, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: ConnService<B>,
    B: ConnBody,
{
    pub(crate) fn new(
        io: I,
        buf: bytes::BytesMut,
        service: S,
        config: &'a Config,
        mut shutdown: Shutdown,
        stats: ServerStats,
        connect_info: Option<InsertInfo>,
    ) -> Self {
        #[cfg(feature = "metrics")]
        let meter = config
            .metrics
            .then(|| Box::new(Meter::new(stats.requests())));
        let spawned = Arc::new(Spawned::new(stats));
        let draining = Box::pin(async move { shutdown.draining().await });
        Conn {
            io,
            config,
            input: Input::new(buf),
            output: Output::new(config.server_timing),
            streaming: None,
            spare_body: None,
            order: Order::new(config.max_pipeline_depth),
            keep_alive: KeepAlive::default(),
            inline: inline_router(&service),
            last_route: LastRoute::default(),
            request: blank_request(),
            dispatcher: Dispatcher::new(service, spawned, config, connect_info),
            shutdown: Some(draining),
            deadline: Deadline::default(),
            seq: 0,
            timed: config.server_timing || config.metrics,
            clock: None,
            stamp: None,
            #[cfg(feature = "metrics")]
            meter,
        }
    }

    /// The first head began while the connection's first bytes were sniffed: it must be
    /// complete by `due` ([`Deadline::head_began`]).
    pub(crate) fn head_began(&mut self, due: Instant) {
        self.deadline.head_began(due);
    }

    /// The socket, for lingering after the connection is finished.
    pub(crate) fn io(&mut self) -> &mut I {
        &mut self.io
    }

    /// Whether the finished connection lingers ([`KeepAlive::lingers`]).
    pub(crate) fn lingers(&self) -> bool {
        self.keep_alive.lingers()
    }

    /// Serves requests until the connection is finished, then shuts the write side down.
    pub(crate) async fn run(&mut self) -> io::Result<()> {
        while let Step::Flush = poll_fn(|cx| self.poll_step(cx)).await? {
            // The batch's figures go to the recorder before its bytes to the client: a scrape
            // the client makes once it has read its answers must find them counted.
            #[cfg(feature = "metrics")]
            if let Some(meter) = &mut self.meter {
                meter.batch();
            }
            self.output.flush(&mut self.io).await?;
            // A TLS stream may accept a write and keep the encrypted records (a full socket
            // buffer): only a flush sends them, and the client waits for those answers.
            self.io.flush().await?;
        }
        self.io.shutdown().await
    }

    /// Advances both sides until the encoded bytes should be written, the connection is
    /// finished, or nothing can happen before the task is woken; whichever it is, the task
    /// waits next, so the in-flight gauge is brought up to date ([`Meter::settle`]).
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Step>> {
        let step = self.poll_turn(cx);
        #[cfg(feature = "metrics")]
        if let Some(meter) = &mut self.meter {
            meter.settle();
        }
        step
    }

    /// One turn of [`Conn::poll_step`].
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Step>> {
        self.clock = None;
        self.stamp = None;
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
            let waiting = match self.keep_alive.body_mut() {
                Some(pump) => match pump.poll(&mut self.input.buf, cx) {
                    Pumped::Done => {
                        self.keep_alive.body_read();
                        progress = true;
                        continue;
                    }
                    Pumped::Failed(error) => {
                        self.body_failed(error);
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

    /// The write side: encodes the front of the order while it is finished. Returns whether
    /// anything happened.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            match self.poll_body(cx) {
                Some(Streamed::Waiting) => return progress,
                Some(Streamed::Flush) => return true,
                Some(Streamed::Done { .. }) => progress = true,
                None => {}
            }
            if self.keep_alive.is_finished(false) || self.output.is_full() {
                return progress;
            }
            let Poll::Ready(Some(slot)) = self.order.poll_front(cx) else {
                return progress;
            };
            self.encode_slot(slot, cx);
            progress = true;
        }
    }

    /// Moves the streaming body's ready frames into the output (`None`: no body streams). A
    /// finished body's box is kept for the next, and [`KeepAlive`] is told.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Option<Streamed> {
        let streamed = self.output.poll_stream(self.streaming.as_mut()?, cx);
        if let Streamed::Done { failed } = streamed {
            self.spare_body = self.streaming.take().map(Streaming::into_box);
            self.keep_alive.stream_done(failed);
        }
        Some(streamed)
    }

    /// Encodes a slot whose turn it is ([`Order::place`] or [`Order::poll_front`] gave it).
    fn encode_slot(&mut self, slot: Slot<B>, cx: &mut Context<'_>) {
        match slot.kind {
            SlotKind::Continue => self.output.encode_continue(),
            SlotKind::Ready(mut outcome) => self.answer(
                &mut outcome,
                slot.info,
                slot.timing,
                slot.span,
                slot.labels,
                cx,
            ),
            SlotKind::Pending(_) => unreachable!("the order gives out finished slots only"),
        }
    }

    /// Encodes a response that is next in order: every final answer, the service's or the
    /// engine's, goes through here, so this is where it is counted, with the status written,
    /// and where [`KeepAlive`] decides whether it is the last. A body that must be polled is
    /// polled at once: one whose frames are ready is then written whole, and the answers after
    /// it need not queue behind it.
    // Without the metrics feature the labels are empty: nothing is counted.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    fn answer(
        &mut self,
        outcome: &mut Outcome<B>,
        info: RequestInfo,
        timing: Option<Timing>,
        span: tracing::Span,
        labels: Labels,
        cx: &mut Context<'_>,
    ) {
        // Handler time, and how long the finished response waited for earlier ones.
        let timings = timing.map(|t| {
            let now = self.stamp();
            // Encoded the moment it finished (the clock reading is its finish): no wait.
            let queue = if now == t.finished {
                Elapsed::ZERO
            } else {
                now.since(t.finished)
            };
            Measured {
                handler: t.finished.since(t.started),
                queue,
            }
        });
        let status = outcome.status();
        #[cfg(feature = "metrics")]
        if let Some(meter) = &mut self.meter {
            meter.answered(labels, status, timings);
        }
        if !span.is_disabled() {
            record(&span, status, timings);
        }
        let last = self
            .keep_alive
            .is_last(outcome.ends_connection(), self.order.is_empty());
        let encoded = self.output.encode(
            outcome,
            info,
            last,
            timings.as_ref(),
            &mut self.spare_body,
            self.request.headers_mut(),
        );
        self.keep_alive
            .encoded(last, matches!(encoded, Encoded::Stream(_)));
        if let Encoded::Stream(streaming) = encoded {
            self.streaming = Some(streaming);
            self.poll_body(cx);
        }
    }

    /// This turn's reading of tokio's clock, taken once.
    fn now(&mut self) -> Instant {
        *self.clock.get_or_insert_with(Instant::now)
    }

    /// The timing clock's latest reading this turn, or a new one.
    fn stamp(&mut self) -> Stamp {
        *self.stamp.get_or_insert_with(Stamp::now)
    }
}

/// Closes a request's span: its status and, when measured, its timings.
fn record(span: &tracing::Span, status: http::StatusCode, timing: Option<Measured>) {
    span.record("http.response.status_code", status.as_u16());
    if let Some(Measured { handler, queue }) = timing {
        span.record("pipeline.handler_ms", handler.as_millis_f64());
        span.record("pipeline.queue_ms", queue.as_millis_f64());
    }
    tracing::debug!(parent: span, "answered");
}

/// The served service as a `Router` with inline handlers, if it is one: found by type, so that
/// `serve(listener, router)` gets the inline path without asking, and a router inside a layer
/// or another service (whose requests must pass through it) does not.
fn inline_router<S: 'static>(service: &S) -> Option<Router> {
    let router = (service as &dyn std::any::Any).downcast_ref::<Router>()?;
    router.has_inline().then(|| router.clone())
}
