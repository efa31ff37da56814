//! Starting requests: the next head, the barrier and readiness checks, the hand-over to the
//! service, and each answer's place in the order (written at once when it is next in order).

use std::task::{Context, Poll};

use http::Method;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Conn;
use crate::body::{Body, Chunk};
use crate::conn::dispatch::Started;
use crate::conn::keep_alive::Stop;
use crate::conn::order::Place;
use crate::conn::read::Pump;
use crate::conn::slot::{Labels, Outcome, Slot, SlotKind, Timing};
use crate::conn::{ConnBody, ConnService};
use crate::proto::encode::RequestInfo;
use crate::proto::error::EngineError;
use crate::proto::request::{blank_request, Framing, Head, Meta};
use crate::timing::Stamp;
use crate::BoxError;

impl<'a, I, S, B> Conn<'a, I, S, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: ConnService<B>,
    B: ConnBody,
{
    /// Parses (or takes back) the next request and starts it if nothing holds it back.
    pub(super) fn next_request(&mut self, cx: &mut Context<'_>) -> Next {
        if self.order.is_full() {
            // Back pressure: the front slot's completion wakes the task.
            return Next::Wait;
        }
        if self.dispatcher.answered_closing() {
            self.keep_alive.answer_ends_connection();
            return Next::Started;
        }
        let meta = match self.keep_alive.take_parsed() {
            Some(head) => {
                self.request = head.request;
                head.meta
            }
            None => match self.next_head(cx) {
                Ok(Some(meta)) => meta,
                Ok(None) => return Next::NeedBytes,
                Err(Answered) => return Next::Started,
            },
        };
        let ready = match self.dispatcher.poll_admit(self.request.method(), cx) {
            Poll::Pending => {
                let request = std::mem::replace(&mut self.request, blank_request());
                self.keep_alive.hold(Box::new(Head { request, meta }));
                return Next::Wait;
            }
            Poll::Ready(ready) => ready,
        };
        self.start_request(meta, ready, cx);
        Next::Started
    }

    /// Parses the next head and answers it inline when its route can ([`Conn::try_inline`]);
    /// else builds its `http::Request` for the service. `Err`: it was answered (inline, or
    /// refused).
    fn next_head(&mut self, cx: &mut Context<'_>) -> Result<Option<Meta>, Answered> {
        // Matched in place, not moved out: a `Parsed` is ~150 bytes (see `build_into`).
        let mut next = self.input.next_parsed(self.config);
        let parsed = match &mut next {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(error) => {
                self.refuse(*error, cx);
                return Err(Answered);
            }
        };
        self.deadline.head_parsed();
        #[cfg(feature = "metrics")]
        if let Some(meter) = &mut self.meter {
            meter.read();
        }
        if self.try_inline(parsed, cx) {
            return Err(Answered);
        }
        match self
            .input
            .build_into(parsed, self.config, &mut self.request)
        {
            Ok(meta) => Ok(Some(meta)),
            Err(error) => {
                self.request = blank_request();
                self.refuse_parsed(error, cx);
                Err(Answered)
            }
        }
    }

    /// Hands a request to the service, gives its response a place in the order, and tells
    /// [`KeepAlive`](crate::conn::keep_alive::KeepAlive) what follows it (its body, its close).
    /// The request is the one built in `self.request`, which is blank again afterwards.
    fn start_request(&mut self, meta: Meta, ready: Result<(), BoxError>, cx: &mut Context<'_>) {
        let Meta {
            framing,
            close,
            expect_continue,
        } = meta;
        let request = &mut self.request;
        let info = RequestInfo {
            version: request.version(),
            head_method: request.method() == Method::HEAD,
        };
        let tx = body_channel(framing, request.body_mut());
        let has_body = tx.is_some();
        if expect_continue && tx.is_some() {
            self.interim_continue();
        }
        self.dispatcher.prepare(&mut self.request);
        self.seq += 1;
        let request = &self.request;
        let span = request_span(request.method(), request.uri(), request.version(), self.seq);
        let started = self.timed.then(|| self.stamp());
        // What the request is answered when its handler gives nothing (it panicked, or the
        // service failed), until the dispatcher writes the handler's answer here.
        let mut answer = Outcome::internal_error();
        let (outcome, labels) = match ready {
            Ok(()) => {
                let path = self.request.uri().path();
                let hint = self
                    .inline
                    .as_ref()
                    .and_then(|r| r.hint(path, &self.last_route));
                let request = &mut self.request;
                let dispatcher = &mut self.dispatcher;
                dispatcher.start(cx, request, info, &span, hint, &mut answer)
            }
            Err(e) => {
                tracing::warn!(error = %e, "service not ready; answering 500");
                self.request = blank_request();
                (Started::Ready, Labels::unknown())
            }
        };
        // Told before the answer is placed: a request that closes makes its answer the last.
        match tx.and_then(|tx| Pump::new(framing, tx, self.config)) {
            Some(pump) => self.keep_alive.body_follows(pump, close),
            None => self.keep_alive.request_started(close),
        }
        match outcome {
            Started::Ready => {
                let timing = started.map(|started| {
                    let finished = Stamp::now();
                    self.stamp = Some(finished);
                    Timing { started, finished }
                });
                if answer.ends_connection() {
                    self.keep_alive.answer_ends_connection();
                }
                // A request with a body is answered once the body bytes already read are
                // decoded, so that a body known to be bad by then still changes the answer
                // (`Order::body_failed`).
                self.answer_in_order(&mut answer, info, timing, span, labels, !has_body, cx);
            }
            Started::Spawned(rx) => {
                let timing = started.map(|started| Timing {
                    started,
                    finished: started,
                });
                debug_assert_eq!(self.order.place(false, true), Place::Queue);
                self.order.push(Slot {
                    kind: SlotKind::Pending(rx),
                    info,
                    timing,
                    span,
                    labels,
                });
            }
        }
    }

    /// Answers a request the engine refuses before its head was parsed (a malformed or late
    /// head), after every earlier response; reading ends. It is counted as a request read
    /// here; one refused after parsing was counted then ([`Conn::refuse_parsed`]).
    pub(super) fn refuse(&mut self, error: EngineError, cx: &mut Context<'_>) {
        #[cfg(feature = "metrics")]
        if let Some(meter) = &mut self.meter {
            meter.read();
        }
        self.refuse_parsed(error, cx);
    }

    /// Answers a parsed request the engine refuses (its head broke a rule only its header
    /// map shows), after every earlier response; reading ends.
    fn refuse_parsed(&mut self, error: EngineError, cx: &mut Context<'_>) {
        self.keep_alive.stop_reading(Stop::Refused);
        let mut outcome = Outcome::refused(error);
        let span = tracing::Span::none();
        let info = refused_info();
        self.answer_in_order(&mut outcome, info, None, span, Labels::unknown(), true, cx);
    }

    /// `100 Continue`, in order, before the body of the request being started is read.
    fn interim_continue(&mut self) {
        if self.order.place(true, self.writable()) == Place::Now {
            self.output.encode_continue();
            return;
        }
        self.order.push(Slot {
            kind: SlotKind::Continue,
            info: refused_info(),
            timing: None,
            span: tracing::Span::none(),
            labels: Labels::unknown(),
        });
    }

    /// Encodes a finished answer at once when [`Order::place`](crate::conn::order::Order::place)
    /// says it is next, else queues it (taken from `outcome`); `may_encode`: nothing but order
    /// holds it back. By reference: encoded at once, the answer is not copied on its way.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_in_order(
        &mut self,
        outcome: &mut Outcome<B>,
        info: RequestInfo,
        timing: Option<Timing>,
        span: tracing::Span,
        labels: Labels,
        may_encode: bool,
        cx: &mut Context<'_>,
    ) {
        let writable = may_encode && self.writable();
        if self.order.place(true, writable) == Place::Now {
            self.answer(outcome, info, timing, span, labels, cx);
        } else {
            self.order.push(Slot {
                kind: SlotKind::Ready(outcome.take()),
                info,
                timing,
                span,
                labels,
            });
        }
    }

    /// The write side has encoded every earlier response and has room for more.
    fn writable(&self) -> bool {
        self.streaming.is_none() && !self.output.is_full()
    }
}

/// The request was answered where it was parsed (inline, or refused).
pub(super) struct Answered;

/// What the read side did with the next request.
pub(super) enum Next {
    /// Started it (or answered it, or stopped reading): look again.
    Started,
    /// Something holds it back; the task will be woken.
    Wait,
    /// Its head is not complete yet.
    NeedBytes,
}

/// Puts the streaming body the handler reads into `body` (left empty when there is none), and
/// returns the sending end the connection feeds it through.
pub(super) fn body_channel(
    framing: Framing,
    body: &mut Body,
) -> Option<tokio::sync::mpsc::Sender<Chunk>> {
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
pub(super) fn refused_info() -> RequestInfo {
    RequestInfo {
        version: http::Version::HTTP_11,
        head_method: false,
    }
}

/// The span of request number `seq` of the connection (debug level: free unless enabled). It
/// covers its handler, inline or on its own task, and is closed with the status and timings
/// when it is answered. Field names follow OpenTelemetry's HTTP conventions; the pipeline's
/// own are prefixed.
pub(super) fn request_span(
    method: &Method,
    uri: &http::Uri,
    version: http::Version,
    seq: u64,
) -> tracing::Span {
    tracing::debug_span!(
        "http.request",
        http.request.method = %method,
        url.path = %uri.path(),
        // Recorded by the Router (`MatchedPath`) when a route matches.
        http.route = tracing::field::Empty,
        network.protocol.version = protocol_version(version),
        http.response.status_code = tracing::field::Empty,
        pipeline.seq = seq,
        pipeline.handler_ms = tracing::field::Empty,
        pipeline.queue_ms = tracing::field::Empty,
    )
}

/// The `network.protocol.version` of an HTTP/1 request.
fn protocol_version(version: http::Version) -> &'static str {
    if version == http::Version::HTTP_10 {
        "1.0"
    } else {
        "1.1"
    }
}
