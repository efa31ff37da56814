//! What hyper calls for each HTTP/2 stream: `Config`'s per-request limits and the connection's
//! info, then the application's service, so that a client cannot bypass a limit by opening
//! with the HTTP/2 preface.
//!
//! Each refusal, failure and panic gets the answer the ordered engine gives the same request
//! on HTTP/1.1 (same status, same one-line reason), and each handler is measured as there
//! ([`super::measure`]), so a client sees one server whatever protocol it speaks.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body::Body as _;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::time::error::Elapsed;
use tower::Service;

use super::body::{discard, limited};
use super::measure::{Handling, Measure};
use super::streams::{Held, StreamGuard, Streams};
use crate::proto::error::EngineError;
use crate::proto::request::expects_100_continue;
use crate::shared::InsertInfo;
use crate::stats::{HandlerGuard, ServerStats};
use crate::{Body, BodyError, BoxError, Config};

/// How many times `max_body_bytes` a refused request's upload may still send, discarded, so
/// that its stream ends cleanly: an upload up to this many limits completes and its client reads
/// the refusal ([`discard`]); a larger or endless one is reset.
const DISCARD_LIMITS: u64 = 2;

/// A stream's response: the application's, or one the server made itself, counted as an open
/// stream until hyper is done with its body.
pub(super) type Answer<B> = Response<Held<Either<B, Full<Bytes>>>>;

/// The per-request limits of one connection and what it measures, shared by every stream's
/// clone of the service.
pub(super) struct Limits {
    max_headers: usize,
    max_body_bytes: u64,
    body_read_timeout: Duration,
    request_timeout: Option<Duration>,
    connect_info: Option<InsertInfo>,
    measure: Measure,
}

impl Limits {
    pub(super) fn new(config: &Config, connect_info: Option<InsertInfo>) -> Self {
        Limits {
            max_headers: config.max_headers,
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
            request_timeout: config.request_timeout,
            connect_info,
            measure: Measure::new(config),
        }
    }

    /// Lets a refused request's upload end cleanly in the background ([`discard`]), unless it
    /// is already over or announces more than the drain would take anyway.
    fn drain_refused(&self, body: Incoming) {
        let most = self.max_body_bytes.saturating_mul(DISCARD_LIMITS);
        if !body.is_end_stream() && body.size_hint().lower() <= most {
            tokio::spawn(discard(body, most, self.body_read_timeout));
        }
    }

    /// The request as the service gets it: its body under the body limits, the connection's
    /// info in its extensions.
    fn prepare(&self, request: Request<Incoming>) -> Request<Body> {
        let mut request =
            request.map(|body| limited(body, self.max_body_bytes, self.body_read_timeout));
        if let Some(insert) = &self.connect_info {
            insert(request.extensions_mut());
        }
        request
    }

    /// What the server answers instead of calling the service, as the HTTP/1.1 engine would.
    fn refusal(&self, request: &Request<Incoming>) -> Option<EngineError> {
        // hyper's `max_header_list_size` bounds the bytes; the count is ours to check.
        if field_count(request.headers()) > self.max_headers {
            return Some(EngineError::too_many_headers());
        }
        // `100-continue` means nothing to hyper's HTTP/2 server (the client just sends its
        // body); any other expectation is refused as on HTTP/1.1.
        if let Err(refused) = expects_100_continue(request.headers()) {
            return Some(refused);
        }
        // hyper's size hint is the announced `content-length` (h2 checks the DATA against it),
        // so an announced oversize body is refused before a byte of it is read.
        if request.body().size_hint().lower() > self.max_body_bytes {
            return Some(BodyError::TooLarge.into());
        }
        None
    }
}

/// The application's service behind [`Limits`], counting its running handlers in `stats` and
/// its open streams in `streams` (the connection's idle deadline).
#[derive(Clone)]
pub(super) struct Guarded<S> {
    pub(super) service: S,
    pub(super) limits: Arc<Limits>,
    pub(super) stats: ServerStats,
    pub(super) streams: Streams,
}

impl<S, B> Service<Request<Incoming>> for Guarded<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Answer<B>;
    /// Never an error: a failed handler is answered here, as on HTTP/1.1, rather than handed
    /// to hyper, which would only reset the stream.
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Answer<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.service.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let stream = self.streams.open();
        let mut counting = self.limits.measure.counting(request.method(), &self.stats);
        let work = match self.limits.refusal(&request) {
            Some(error) => {
                self.limits.drain_refused(request.into_body());
                Work::Refused(error)
            }
            None => {
                let request = self.limits.prepare(request);
                let running = self.stats.handler();
                let handling = self.limits.measure.start();
                // A panic in the service's call or its future is answered `500` like a
                // failure, as on HTTP/1.1, rather than unwinding through hyper's task, which
                // would reset the stream.
                let service = &mut self.service;
                let called =
                    counting.call(|| catch_unwind(AssertUnwindSafe(|| service.call(request))));
                Work::Run {
                    called,
                    running,
                    handling,
                }
            }
        };
        let timeout = self.limits.request_timeout;
        Box::pin(async move {
            let answer = match work {
                Work::Refused(error) => engine(error, stream),
                Work::Run {
                    called,
                    running,
                    handling,
                } => {
                    let outcome = run(called, timeout).await;
                    drop(running);
                    let mut answer = respond(outcome, stream);
                    if let Some(handling) = handling {
                        handling.finish(answer.headers_mut());
                    }
                    answer
                }
            };
            counting.answered(answer.status());
            Ok(answer)
        })
    }
}

/// What a stream does for its answer: the server refuses it, or the service's call runs.
enum Work<F> {
    Refused(EngineError),
    Run {
        /// The future the service's call made (`Err`: the call panicked).
        called: std::thread::Result<F>,
        /// The stream counted as a running handler in `ServerStats`.
        running: HandlerGuard,
        /// Its time, when measured.
        handling: Option<Handling>,
    },
}

/// Runs the handler the service's call made (`Err`: the call itself panicked) to its result:
/// `None` if it panicked, `Err` past `timeout`, when it is dropped (cancelled), as the HTTP/1.1
/// engine cancels an overdue handler.
async fn run<F: Future>(
    called: std::thread::Result<F>,
    timeout: Option<Duration>,
) -> Result<Option<F::Output>, Elapsed> {
    let Ok(handler) = called else {
        return Ok(None);
    };
    let handler = unwound(handler);
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, handler).await,
        None => Ok(handler.await),
    }
}

/// Polls `future` to its output, or `None` if a poll of it panicked.
async fn unwound<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Some(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        },
    )
    .await
}

/// The stream's answer to what its handler did, as the HTTP/1.1 engine answers a slot: the
/// service's response; `500` for its error or panic (a failed request body: the body's
/// status); `503` when it was overdue.
fn respond<B, E: Into<BoxError>>(
    outcome: Result<Option<Result<Response<B>, E>>, Elapsed>,
    stream: StreamGuard,
) -> Answer<B> {
    match outcome {
        Ok(Some(Ok(response))) => response.map(|body| Held::new(Either::Left(body), stream)),
        Ok(Some(Err(e))) => engine(EngineError::from_handler(e.into()), stream),
        Ok(None) => {
            tracing::error!("handler panicked; answering 500");
            engine(EngineError::internal(), stream)
        }
        Err(_) => engine(EngineError::timed_out(), stream),
    }
}

/// The header fields as HTTP/1.1 would count them: HTTP/2 clients may send each cookie as a
/// field of its own (RFC 9113 §8.2.3), where HTTP/1.1 sends one `Cookie` line, so the cookies
/// count as one field and a browser's many cookies are not refused on HTTP/2 alone.
fn field_count(headers: &http::HeaderMap) -> usize {
    let cookies = headers.get_all(header::COOKIE).iter().count();
    headers.len() - cookies.saturating_sub(1)
}

/// The response the server makes itself: the status and a one-line reason, as on HTTP/1.1.
fn engine<B>(error: EngineError, stream: StreamGuard) -> Answer<B> {
    let text = Full::new(Bytes::from(error.text()));
    let mut response = Response::new(Held::new(Either::Right(text), stream));
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::response::TEXT),
    );
    response
}
