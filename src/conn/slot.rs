//! What a request's place in the response order holds ([`Slot`]), what it resolves to
//! ([`Outcome`]), and the count of handlers running on their own tasks ([`InFlight`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use http::Response;
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::body::BodyError;
use crate::proto::encode::{self, Plan, RequestInfo};
use crate::proto::error::EngineError;
use crate::stats::ServerStats;

/// One request's place in the response order.
pub(crate) struct Slot<B> {
    pub(crate) kind: SlotKind<B>,
    pub(crate) info: RequestInfo,
    /// The connection closes once this response is written.
    pub(crate) close: bool,
    /// When the handler was started and, if it finished inline, when it finished: for the
    /// `Server-Timing` header (`None` when that is turned off).
    pub(crate) timing: Option<Timing>,
    /// The request's span; the status and timings are recorded in it when it is answered.
    pub(crate) span: tracing::Span,
    /// What its answer is counted under in `pipelined_requests_total`.
    pub(crate) labels: Labels,
}

#[cfg(feature = "metrics")]
pub(crate) use crate::meter::Labels;

/// Without the `metrics` feature nothing is counted, and a request carries no labels.
#[cfg(not(feature = "metrics"))]
#[derive(Clone, Copy)]
pub(crate) struct Labels;

#[cfg(not(feature = "metrics"))]
impl Labels {
    pub(crate) fn unknown() -> Self {
        Labels
    }
}

/// When a request's handler started and finished.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) started: Instant,
    pub(crate) finished: Instant,
}

/// What a spawned handler sends back: its answer and when it finished.
pub(crate) type Finished<B> = (Outcome<B>, Instant);

pub(crate) enum SlotKind<B> {
    /// The handler finished on the connection's own first poll of it: no task, no oneshot.
    Ready(Outcome<B>),
    /// The handler runs on its own task and answers through the oneshot.
    Pending(oneshot::Receiver<Finished<B>>),
    /// `100 Continue`, written in order before the body of the next request is read.
    Continue,
}

/// What a slot resolves to.
pub(crate) enum Outcome<B> {
    /// The service's response, and how it goes on the wire (planned once, when the handler
    /// finished, so the connection knows at once whether it ends there).
    Response(Response<B>, Plan),
    /// An answer the engine writes itself: a refused request, or a failed or panicked handler.
    Engine { error: EngineError, close: bool },
}

impl<B: http_body::Body> Outcome<B> {
    /// A service's response to the request described by `info`.
    pub(crate) fn response(response: Response<B>, info: RequestInfo) -> Self {
        let len = response.body().size_hint().exact();
        let plan = encode::plan(response.status(), response.headers(), len, info, false);
        Outcome::Response(response, plan)
    }

    /// Whether the connection ends after this answer (RFC 9112 §9.6: nothing after it may be
    /// processed).
    pub(crate) fn ends_connection(&self) -> bool {
        match self {
            Outcome::Response(_, plan) => plan.close,
            Outcome::Engine { close, .. } => *close,
        }
    }
}

impl<B> Outcome<B> {
    /// The status this answer is written with.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            Outcome::Response(response, _) => response.status(),
            Outcome::Engine { error, .. } => error.status,
        }
    }

    /// A refused request: the connection cannot go on after it.
    pub(crate) fn refused(error: EngineError) -> Self {
        Outcome::Engine { error, close: true }
    }

    /// The answer once the request's body is known to have failed and this answer has not been
    /// encoded: the client can still be told what was wrong (400, 413, 408) instead of a
    /// success it would take for the handler's verdict on a body it never sent. An error
    /// answer stands, the handler's own (often about the very body error it read) or the
    /// engine's: the client is told the request failed either way.
    pub(crate) fn with_failed_body(self, error: BodyError) -> Self {
        match self {
            Outcome::Response(response, _)
                if !response.status().is_client_error() && !response.status().is_server_error() =>
            {
                Outcome::refused(error.into())
            }
            other => other,
        }
    }

    /// A handler that ran past `Config::request_timeout`: `503` in its slot, connection goes on.
    pub(crate) fn timed_out() -> Self {
        Outcome::Engine {
            error: EngineError::timed_out(),
            close: false,
        }
    }

    /// A handler that failed or panicked; its own slot gets the 500 and the connection goes on.
    pub(crate) fn internal_error() -> Self {
        Outcome::Engine {
            error: EngineError::internal(),
            close: false,
        }
    }
}

/// Handlers of one connection that run on their own tasks and have not finished yet.
///
/// Unsafe methods are barriers (RFC 9112 §9.3.2): the connection waits until this count drops
/// to zero before starting one, and again before starting anything after it.
#[derive(Debug)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
    /// A finished handler's response ends the connection: read nothing more.
    closing: AtomicBool,
    /// The server-wide count, kept in step with this one.
    stats: ServerStats,
}

/// Held by a spawned handler; dropping it (on finish or panic) marks the handler finished.
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    pub(crate) fn new(stats: ServerStats) -> Self {
        InFlight {
            count: AtomicUsize::new(0),
            idle: Notify::new(),
            closing: AtomicBool::new(false),
            stats,
        }
    }

    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.stats.handler_started();
        InFlightGuard(Arc::clone(self))
    }

    /// Records that a finished response ends the connection (RFC 9112 §9.6: nothing after it
    /// may be processed).
    pub(crate) fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// No spawned handler of this connection is running.
    pub(crate) fn is_idle(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Resolves once no spawned handler of this connection is running.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl InFlightGuard {
    /// See [`InFlight::mark_closing`]; called before the guard drops, so a connection waiting at
    /// a barrier sees it.
    pub(crate) fn mark_closing(&self) {
        self.0.mark_closing();
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.stats.handler_finished();
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}
