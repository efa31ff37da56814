//! The engine's own answer to a request it cannot hand to the service.

use http::StatusCode;

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
