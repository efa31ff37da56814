//! The engine's own answer to a request it cannot hand to the service.

use http::StatusCode;

use crate::body::BodyError;

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
}

impl From<BodyError> for EngineError {
    /// The answer to a request whose body failed: the status a handler would give it
    /// ([`BodyError::status`]) and what was wrong.
    fn from(error: BodyError) -> Self {
        let reason = match error {
            BodyError::Malformed(why) => why,
            BodyError::TooLarge => "request body larger than the limit",
            BodyError::Incomplete => "connection closed before the body ended",
            BodyError::TimedOut => "request body stalled past the read timeout",
        };
        EngineError::new(error.status(), reason)
    }
}
