//! Starting requests: the next head, the barrier and readiness checks, the hand-over to the
//! service, and a finished response's place (written at once when it is next in order).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Method;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::{Conn, Held};
use crate::body::{Body, Chunk};
use crate::conn::dispatch::{is_safe, Started};
use crate::conn::keep_alive::Stop;
use crate::conn::read::Pump;
use crate::conn::slot::{Labels, Outcome, Slot, SlotKind, Timing};
use crate::conn::{ConnBody, ConnService};
use crate::proto::encode::RequestInfo;
use crate::proto::error::EngineError;
use crate::proto::request::{Framing, Head};
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
                    #[cfg(feature = "metrics")]
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
    pub(super) fn poll_barrier(&mut self, cx: &mut Context<'_>) -> bool {
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
    pub(super) fn dispatch(
        &mut self,
        head: Head,
        ready: Result<(), BoxError>,
        cx: &mut Context<'_>,
    ) {
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
        // Field names follow OpenTelemetry's HTTP conventions; the pipeline's own are prefixed.
        let span = tracing::debug_span!(
            "http.request",
            http.request.method = %request.method(),
            url.path = %request.uri().path(),
            // Recorded by the Router (`MatchedPath`) when a route matches.
            http.route = tracing::field::Empty,
            network.protocol.version = protocol_version(request.version()),
            http.response.status_code = tracing::field::Empty,
            pipeline.seq = self.seq,
            pipeline.handler_ms = tracing::field::Empty,
            pipeline.queue_ms = tracing::field::Empty,
        );
        let started = self.timed.then(|| self.now());
        let (outcome, labels) = match ready {
            Ok(()) => self.dispatcher.start(cx, request, info, &span),
            Err(e) => {
                tracing::warn!(error = %e, "service not ready; answering 500");
                (Started::Ready(Outcome::internal_error()), Labels::unknown())
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
                if tx.is_some() {
                    // Encoded once the body bytes already read are decoded, so that a body
                    // known to be bad by then still changes the answer (`Order::body_failed`).
                    let kind = SlotKind::Ready(outcome);
                    self.order.push(Slot {
                        kind,
                        info,
                        close,
                        timing,
                        span,
                        labels,
                    });
                } else {
                    self.answer_or_queue(outcome, info, close, timing, span, labels);
                }
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
                    labels,
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
    pub(super) fn refuse(&mut self, error: EngineError) {
        #[cfg(feature = "metrics")]
        if let Some(meter) = &mut self.meter {
            meter.read();
        }
        self.keep_alive.stop_reading(Stop::Refused);
        let outcome = Outcome::refused(error);
        let span = tracing::Span::none();
        self.answer_or_queue(outcome, refused_info(), true, None, span, Labels::unknown());
    }

    /// `100 Continue`, in order, before the body of the request being started is read.
    pub(super) fn interim_continue(&mut self) {
        if self.in_order() {
            self.output.encode_continue();
        } else {
            self.order.push(Slot {
                kind: SlotKind::Continue,
                info: refused_info(),
                close: false,
                timing: None,
                span: tracing::Span::none(),
                labels: Labels::unknown(),
            });
        }
    }

    /// Every earlier response has been encoded: a finished one may skip the queue.
    pub(super) fn in_order(&self) -> bool {
        self.order.is_empty() && self.streaming.is_none() && !self.output.is_full()
    }

    /// Encodes a finished response at once when it is next in order, else queues it.
    pub(super) fn answer_or_queue(
        &mut self,
        outcome: Outcome<B>,
        info: RequestInfo,
        close: bool,
        timing: Option<Timing>,
        span: tracing::Span,
        labels: Labels,
    ) {
        if self.in_order() {
            self.answer(outcome, info, close, timing, span, labels);
        } else {
            self.order.push(Slot {
                kind: SlotKind::Ready(outcome),
                info,
                close,
                timing,
                span,
                labels,
            });
        }
    }
}

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
        head: false,
    }
}

/// The `network.protocol.version` of an HTTP/1 request.
fn protocol_version(version: http::Version) -> &'static str {
    if version == http::Version::HTTP_10 {
        "1.0"
    } else {
        "1.1"
    }
}
