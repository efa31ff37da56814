//! The client's one error type: what went wrong, and, for a request the connection could not
//! answer, whether it reached the server, so a caller (or [`Client`](super::Client)) knows
//! whether sending it again is safe.

use std::any::Any;
use std::fmt;
use std::io;
use std::sync::{Mutex, PoisonError};

use http::Request;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection closed (or failed) before this request was written: nothing of it
    /// reached the server, so sending it again is always safe. The request comes back
    /// ([`Error::into_request`]).
    NotSent,
    /// The request was written, and the connection ended before its response began: it **may
    /// or may not have been processed** (RFC 9112 §9.3.1). Sent again only if its method is
    /// idempotent; the request comes back when its body was empty.
    NotAnswered,
    /// The server's response (or a response before it on the connection) broke the protocol:
    /// a malformed head or body framing, an answer nobody asked for, a head over the limit.
    /// The connection is closed; the requests behind fail with `NotAnswered` or `NotSent`.
    Protocol,
    /// The connection closed partway through this response's head or body.
    Incomplete,
    /// Reading or writing the connection failed.
    Io,
    /// The request cannot be sent by this client (CONNECT, an upgrade, no `Host`); nothing
    /// was written.
    Request,
    /// The request's own body failed partway through being written; the connection closed
    /// after the partial request.
    Body,
    /// No connection could be made (refused, unreachable, timed out, the TLS handshake
    /// failed): nothing was sent.
    Connect,
    /// [`SendRequest::call`](tower::Service::call) without a ready slot: `poll_ready` first.
    NotReady,
}

/// A failed request or response body.
pub struct Error {
    kind: ErrorKind,
    reason: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// The request itself, when it can be sent again as it was (type-erased: `Request<B>`).
    /// In a mutex only so that the error is `Sync` (an error trait object, `BoxError`, must
    /// be) whatever the body type is; it is never locked while shared.
    request: Option<Mutex<Box<dyn Any + Send>>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        Error {
            kind,
            reason: reason.into(),
            source: None,
            request: None,
        }
    }

    pub(crate) fn io(e: io::Error, doing: &str) -> Self {
        let mut error = Error::new(ErrorKind::Io, format!("{doing}: {e}"));
        error.source = Some(Box::new(e));
        error
    }

    /// The same failure, counted as another kind (an I/O error that cut a response short).
    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn with_source(mut self, source: crate::BoxError) -> Self {
        self.source = Some(source);
        self
    }

    pub(crate) fn with_request<B: Send + 'static>(mut self, request: Request<B>) -> Self {
        self.request = Some(Mutex::new(Box::new(request)));
        self
    }

    /// The same failure for another request on the connection (the connection's end seen by
    /// each request behind it).
    pub(crate) fn for_another(&self, kind: ErrorKind) -> Self {
        Error::new(kind, self.reason.clone())
    }

    /// The reason alone, without the kind's wording.
    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the request may have reached the server: `false` for [`ErrorKind::NotSent`],
    /// [`ErrorKind::Connect`], [`ErrorKind::Request`] and [`ErrorKind::NotReady`], where
    /// nothing was written.
    pub fn may_have_been_processed(&self) -> bool {
        !matches!(
            self.kind,
            ErrorKind::NotSent | ErrorKind::NotReady | ErrorKind::Request | ErrorKind::Connect
        )
    }

    /// The request this error is about, when it can be sent again unchanged: every
    /// [`ErrorKind::NotSent`] request, and a [`ErrorKind::NotAnswered`] one whose body was
    /// empty. `None` when `B` is not the request's body type.
    ///
    /// # Return Value
    ///
    /// `Ok(request)`, or the error back (`Err`) when it holds no request of that type.
    pub fn into_request<B: 'static>(mut self) -> Result<Request<B>, Self> {
        let held = self
            .request
            .take()
            .map(|r| r.into_inner().unwrap_or_else(PoisonError::into_inner));
        match held.map(|r| r.downcast::<Request<B>>()) {
            Some(Ok(request)) => Ok(*request),
            Some(Err(other)) => {
                self.request = Some(Mutex::new(other));
                Err(self)
            }
            None => Err(self),
        }
    }

    /// Whether the error holds its request ([`Error::into_request`]).
    pub fn has_request(&self) -> bool {
        self.request.is_some()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("reason", &self.reason)
            .field("source", &self.source)
            .field("has_request", &self.request.is_some())
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::NotSent => write!(f, "not sent ({})", self.reason),
            ErrorKind::NotAnswered => write!(
                f,
                "not answered: may or may not have been processed ({})",
                self.reason
            ),
            ErrorKind::Protocol => write!(f, "invalid response: {}", self.reason),
            ErrorKind::Incomplete => write!(f, "response cut short: {}", self.reason),
            ErrorKind::Body => write!(f, "request body failed: {}", self.reason),
            ErrorKind::Io | ErrorKind::Request | ErrorKind::NotReady | ErrorKind::Connect => {
                f.write_str(&self.reason)
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
