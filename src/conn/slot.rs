//! What a request's place in the response order holds ([`Slot`]) and what it resolves to
//! ([`Outcome`]).

use http::Response;
use tokio::sync::oneshot;

use crate::body::BodyError;
use crate::inline::Respond;
use crate::proto::encode::{self, Plan, RequestInfo};
use crate::proto::error::EngineError;
use crate::timing::Stamp;

/// One request's place in the response order.
pub(crate) struct Slot<B> {
    pub(crate) kind: SlotKind<B>,
    pub(crate) info: RequestInfo,
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
    pub(crate) started: Stamp,
    pub(crate) finished: Stamp,
}

/// What a spawned handler sends back: its answer and when it finished.
pub(crate) type Finished<B> = (Outcome<B>, Stamp);

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
    /// An inline handler's answer ([`Answer`](crate::Answer)), planned as a response is.
    Inline(Respond, Plan),
}

impl<B: http_body::Body> Outcome<B> {
    /// A service's response to the request described by `info`.
    pub(crate) fn response(response: Response<B>, info: RequestInfo) -> Self {
        let plan = Self::plan(&response, info);
        Outcome::Response(response, plan)
    }

    /// How a service's response to the request described by `info` goes on the wire.
    pub(crate) fn plan(response: &Response<B>, info: RequestInfo) -> Plan {
        let len = response.body().size_hint().exact();
        encode::plan(response.status(), response.headers(), len, info, false)
    }

    /// Whether the connection ends after this answer (RFC 9112 §9.6: nothing after it may be
    /// processed).
    pub(crate) fn ends_connection(&self) -> bool {
        match self {
            Outcome::Response(_, plan) | Outcome::Inline(_, plan) => plan.close,
            Outcome::Engine { close, .. } => *close,
        }
    }
}

impl<B> Outcome<B> {
    /// An inline handler's answer to the request described by `info`.
    pub(crate) fn inline(respond: Respond, info: RequestInfo) -> Self {
        let len = Some(respond.body.len() as u64);
        // Its `Content-Type` says nothing the plan needs: only the other headers are scanned.
        let others = respond.headers.iter().map(|(name, value)| (name, value));
        let plan = encode::plan(respond.status, others, len, info, false);
        Outcome::Inline(respond, plan)
    }

    /// The status this answer is written with.
    pub(crate) fn status(&self) -> http::StatusCode {
        match self {
            Outcome::Response(response, _) => response.status(),
            Outcome::Engine { error, .. } => error.status,
            Outcome::Inline(respond, _) => respond.status,
        }
    }

    /// Moves the answer out, leaving [`Outcome::internal_error`] (cheap to make, nothing to
    /// drop) in its place: for an answer made in place and then queued.
    pub(crate) fn take(&mut self) -> Self {
        std::mem::replace(self, Outcome::internal_error())
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{Response, StatusCode, Version};
    use http_body_util::Empty;

    use super::Outcome;
    use crate::body::BodyError;
    use crate::proto::encode::RequestInfo;

    fn info() -> RequestInfo {
        RequestInfo {
            version: Version::HTTP_11,
            head_method: false,
        }
    }

    #[test]
    fn an_answer_reports_the_status_it_is_written_with() {
        let mut response = Response::new(Empty::<Bytes>::new());
        *response.status_mut() = StatusCode::CREATED;
        assert_eq!(Outcome::response(response, info()).status(), 201);
        assert_eq!(Outcome::<Empty<Bytes>>::internal_error().status(), 500);
        assert_eq!(Outcome::<Empty<Bytes>>::timed_out().status(), 503);
        let refused = Outcome::<Empty<Bytes>>::refused(BodyError::TooLarge.into());
        assert_eq!(refused.status(), 413);
    }
}
