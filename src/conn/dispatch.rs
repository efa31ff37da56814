//! Starting a request's handler: the service's first poll inline, a task of its own only when
//! it must wait.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::Service;
use tracing::Instrument;

use super::slot::{Finished, Labels, Outcome};
use super::spawned::{Barrier, Spawned};
use crate::body::Body;
use crate::proto::encode::RequestInfo;
use crate::proto::error::EngineError;
use crate::proto::request::blank_request;
use crate::router::{offer, RouteHint};
use crate::shared::InsertInfo;
use crate::timing::Stamp;
use crate::{BoxError, Config};

/// What the first poll of a handler gave.
pub(crate) enum Started<B> {
    /// Finished inline (no task, no channel): its answer is in the place
    /// [`Dispatcher::start`] was given.
    Ready,
    /// Running on its own task; its answer comes through the channel.
    Spawned(oneshot::Receiver<Finished<B>>),
}

/// Calls the service for each request of one connection.
pub(crate) struct Dispatcher<S: Service<Request<Body>>> {
    service: S,
    /// A pinned box for the next handler future, kept from the last one that finished on its
    /// first poll, so most requests cost no allocation for their future.
    spare: Option<Pin<Box<Option<S::Future>>>>,
    /// Handlers of this connection running on their own tasks (barriers wait on it).
    spawned: Arc<Spawned>,
    /// Holds an unsafe request back until the spawned handlers finished, and the next one
    /// until it did.
    barrier: Barrier,
    request_timeout: Option<Duration>,
    connect_info: Option<InsertInfo>,
    /// Label each request for `pipelined_requests_total` (`Config::metrics`).
    metered: bool,
}

impl<S, B> Dispatcher<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
{
    pub(crate) fn new(
        service: S,
        spawned: Arc<Spawned>,
        config: &Config,
        connect_info: Option<InsertInfo>,
    ) -> Self {
        Dispatcher {
            service,
            spare: None,
            spawned,
            barrier: Barrier::default(),
            request_timeout: config.request_timeout,
            connect_info,
            metered: config.metrics,
        }
    }

    /// Whether a request with this method may start now: the barrier lets it pass
    /// ([`Barrier::poll_pass`]) and the service is ready. `Ready` commits to starting it; an
    /// error from the service is answered `500` in the request's place
    /// (`Conn::start_request`, connection/start.rs).
    pub(crate) fn poll_admit(
        &mut self,
        method: &Method,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BoxError>> {
        let unsafe_method = !is_safe(method);
        if !self.barrier.poll_pass(unsafe_method, &self.spawned, cx) {
            return Poll::Pending;
        }
        let ready = std::task::ready!(self.service.poll_ready(cx)).map_err(Into::into);
        self.barrier.started(unsafe_method);
        Poll::Ready(ready)
    }

    /// A spawned handler's answer ends the connection ([`Spawned::answered_closing`]).
    pub(crate) fn answered_closing(&self) -> bool {
        self.spawned.answered_closing()
    }

    /// Adds what the connection knows (its peer info) to a request about to be handed over.
    pub(crate) fn prepare(&self, request: &mut Request<Body>) {
        if let Some(insert) = &self.connect_info {
            insert(request.extensions_mut());
        }
    }

    /// Calls the service (which `poll_ready` said is ready) and polls its future once, inline.
    ///
    /// A handler that is ready on its first poll (most are: plaintext, JSON, errors) costs no
    /// task and no channel; its response goes straight to the write side. One that is still
    /// pending moves to its own task, so slow or blocking handlers of the same connection run
    /// concurrently and on every core.
    ///
    /// An answer ready on the first poll is written into `answer`, where the connection
    /// encodes it from: an `Outcome` is ~180 bytes, and returning it through the steps between
    /// cost a copy at each (callgrind: ~170 instructions per request). `answer` is left as it
    /// was when the handler panicked: the caller's `Outcome::internal_error()`.
    ///
    /// `hint`: the route the connection already matched for this request, when the service
    /// is the `Router` it was matched in (`Router::hint`).
    ///
    /// Also returns what the answer is counted under: the method and the route a `Router`
    /// reported while it was called (`Labels::unknown()` if the call panicked).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        &mut self,
        cx: &mut Context<'_>,
        request: &mut Request<Body>,
        info: RequestInfo,
        span: &tracing::Span,
        hint: Option<RouteHint>,
        answer: &mut Outcome<B>,
    ) -> (Started<B>, Labels) {
        let service = &mut self.service;
        let spare = &mut self.spare;
        let metered = self.metered;
        let entered = span.enter();
        let first = catch_unwind(AssertUnwindSafe(|| {
            // Taken from the connection's slot as the call takes it: its one copy.
            let request = std::mem::replace(request, blank_request());
            let mut pinned = spare.take().unwrap_or_else(|| Box::pin(None));
            let labels = call_into(service, request, hint, metered, pinned.as_mut());
            let polled = pinned.as_mut().as_pin_mut().map(|f| f.poll(cx));
            let ready = matches!(polled, Some(Poll::Ready(_)));
            if let Some(Poll::Ready(result)) = polled {
                settle(answer, result, info);
            }
            (ready, pinned, labels)
        }));
        drop(entered);
        match first {
            Ok((true, mut pinned, labels)) => {
                pinned.set(None);
                self.spare = Some(pinned);
                (Started::Ready, labels)
            }
            Ok((_, pinned, labels)) => {
                let rx = self.spawn(pinned, info, span.clone());
                (Started::Spawned(rx), labels)
            }
            Err(_) => {
                tracing::error!("handler panicked; answering 500");
                (Started::Ready, Labels::unknown())
            }
        }
    }

    /// Moves a handler that was not ready on its first poll to a task of its own.
    fn spawn(
        &self,
        mut pinned: Pin<Box<Option<S::Future>>>,
        info: RequestInfo,
        span: tracing::Span,
    ) -> oneshot::Receiver<Finished<B>> {
        let guard = self.spawned.enter();
        let (mut tx, rx) = oneshot::channel();
        let deadline = self.request_timeout.map(|t| Instant::now() + t);
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
            // The connection drops its receiver when it ends; then the handler is cancelled
            // instead of running for nobody.
            let answer = tokio::select! {
                result = future => outcome(result, info),
                () = overdue => Outcome::timed_out(),
                _ = tx.closed() => return,
            };
            // Release whatever the finished future still owns (a concurrency permit, a pooled
            // connection) before the client can see the answer and send its next request.
            pinned.set(None);
            if answer.ends_connection() {
                guard.answer_closes();
            }
            drop(guard);
            let _ = tx.send((answer, Stamp::now()));
        };
        tokio::spawn(task.instrument(span));
        rx
    }
}

/// Calls the service and puts its future in `slot` (straight from the call: returned through
/// a tuple or a closure, the future and the request are copied on their way, ~100
/// instructions per request); when `metered`, labels the request with its method and the
/// route a `Router` reported while routing it.
#[cfg(feature = "metrics")]
fn call_into<S: Service<Request<Body>>>(
    service: &mut S,
    request: Request<Body>,
    hint: Option<RouteHint>,
    metered: bool,
    mut slot: Pin<&mut Option<S::Future>>,
) -> Labels {
    let _offered = offer(hint);
    if !metered {
        slot.set(Some(service.call(request)));
        return Labels::unknown();
    }
    let labels = Labels::new(request.method());
    let reported = crate::meter::expect_route();
    slot.set(Some(service.call(request)));
    labels.routed_to(reported.route())
}

/// Calls the service into `slot`: without the `metrics` feature there are no labels to learn.
#[cfg(not(feature = "metrics"))]
fn call_into<S: Service<Request<Body>>>(
    service: &mut S,
    request: Request<Body>,
    hint: Option<RouteHint>,
    _: bool,
    mut slot: Pin<&mut Option<S::Future>>,
) -> Labels {
    let _offered = offer(hint);
    slot.set(Some(service.call(request)));
    Labels
}

/// Turns a handler's result into its outcome; a service error is logged here, once.
pub(crate) fn outcome<B, E>(result: Result<Response<B>, E>, info: RequestInfo) -> Outcome<B>
where
    B: http_body::Body,
    E: Into<BoxError>,
{
    match result {
        Ok(response) => Outcome::response(response, info),
        Err(e) => Outcome::Engine {
            error: EngineError::from_handler(e.into()),
            close: false,
        },
    }
}

/// Writes a handler's result into `answer` as its outcome ([`outcome`], made in place).
fn settle<B, E>(answer: &mut Outcome<B>, result: Result<Response<B>, E>, info: RequestInfo)
where
    B: http_body::Body,
    E: Into<BoxError>,
{
    match result {
        Ok(response) => {
            let plan = Outcome::plan(&response, info);
            *answer = Outcome::Response(response, plan);
        }
        Err(e) => *answer = outcome(Err(e), info),
    }
}

/// GET, HEAD, OPTIONS and TRACE are safe (RFC 9110 §9.2.1) and may run concurrently; any other
/// method is a barrier (RFC 9112 §9.3.2).
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}
