//! The engine's own answer to a request it cannot hand to the service, or whose handler did
//! not answer: the same status and text on HTTP/1.1 and HTTP/2.

use http::StatusCode;

use crate::body::BodyError;
use crate::BoxError;

/// A request the engine refuses: its status and a short reason, sent as the response body so
/// that a person debugging with `nc` sees what was wrong. The connection closes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EngineError {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

impl EngineError {
    pub(crate) fn new(status: StatusCode, reason: &'static str) -> Self {
        EngineError { status, reason }
    }

    pub(crate) fn bad_request(reason: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    /// A handler that ran past `Config::request_timeout` and was cancelled.
    pub(crate) fn timed_out() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the handler did not answer in time",
        )
    }

    /// More header fields than `Config::max_headers`.
    pub(crate) fn too_many_headers() -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "too many headers",
        )
    }

    /// An `Expect` other than `100-continue`, which no protocol here can meet (RFC 9110
    /// §10.1.1).
    pub(crate) fn expectation_failed() -> Self {
        Self::new(
            StatusCode::EXPECTATION_FAILED,
            "only Expect: 100-continue is supported",
        )
    }

    /// A handler that failed or panicked.
    pub(crate) fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "the handler failed")
    }

    /// The answer to a handler's error: a failed request body gets the body's status (the
    /// handler only passed it on), anything else `500`, logged here, once, where the answer is
    /// made.
    pub(crate) fn from_handler(e: BoxError) -> Self {
        if let Some(body) = e.downcast_ref::<BodyError>() {
            return Self::from(*body);
        }
        tracing::warn!(error = %e, "handler failed; answering 500");
        Self::internal()
    }

    /// The response body: the status's reason phrase and what was wrong, one line, for a
    /// person reading it with `nc`.
    pub(crate) fn text(&self) -> String {
        let phrase = self.status.canonical_reason().unwrap_or("Error");
        format!("{phrase}: {}\n", self.reason)
    }
}

impl From<BodyError> for EngineError {
    /// The answer to a request whose body failed: the status a handler would give it
    /// ([`BodyError::status`]) and what was wrong.
    fn from(error: BodyError) -> Self {
        EngineError::new(error.status(), error.reason())
    }
}
