//! Inline handlers: answers ready the moment the request head is parsed (health checks,
//! redirects, static and cached answers, lookups in memory), given a borrowed view of the head
//! ([`HeadView`]) and returning an [`Answer`] the engine encodes straight into the write
//! buffer. No `http::Request`, no `HeaderMap`, no future, no task: on HTTP/1.1 such a request
//! costs about half of what a `tower::Service` call does (`loadtest/RESULTS.md`), and still
//! takes its place in the response order behind slower requests of the same pipeline.
//!
//! An inline handler is also a [`Service`](tower::Service) route: a request the inline path
//! does not take is handed to the same handler through a view of its `http::Request`, so the
//! answer is the same either way. The Service path is taken by
//! - a request with a body (`Content-Length`, `Transfer-Encoding`) or `Expect`;
//! - every request of a [`Router`](crate::Router) wrapped in a tower layer
//!   ([`Router::layer`](crate::Router::layer)) or inside another service (the engine finds a
//!   `Router` only when it is the service served);
//! - HTTP/2 requests;
//! - a request whose head must wait (a barrier: an earlier unsafe request still running);
//! - a request the handler declines with [`Answer::pass`]: it goes to the Service handler
//!   routed for the same method (`get_inline(f).get(handler)`), or, when there is none, is
//!   answered `404 Not Found`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};

use crate::proto::encode::Field;
use crate::proto::trusted::Validated;
use crate::response::ResponseBody;
use crate::router::PathParams;

/// A borrowed view of a request head: what an inline handler reads.
pub struct HeadView<'a> {
    method: &'a Method,
    uri: &'a Uri,
    version: Version,
    params: Params<'a>,
    headers: Headers<'a>,
}

/// Path parameters: matchit's, borrowed, on the inline path; the request's [`PathParams`] on
/// the Service path.
enum Params<'a> {
    Matched(&'a matchit::Params<'a, 'a>),
    Owned(Option<&'a PathParams>),
}

/// Header fields: slices of the read buffer on the inline path; the request's map on the
/// Service path.
enum Headers<'a> {
    Raw(&'a Validated, &'a Bytes),
    Map(&'a HeaderMap),
}

impl<'a> HeadView<'a> {
    /// The view of a head the engine parsed (the inline path).
    pub(crate) fn raw(
        method: &'a Method,
        uri: &'a Uri,
        version: Version,
        params: Option<&'a matchit::Params<'a, 'a>>,
        fields: (&'a Validated, &'a Bytes),
    ) -> Self {
        HeadView {
            method,
            uri,
            version,
            params: params.map_or(Params::Owned(None), Params::Matched),
            headers: Headers::Raw(fields.0, fields.1),
        }
    }

    /// The view of an `http::Request` (the Service path).
    pub(crate) fn of<B>(request: &'a Request<B>) -> Self {
        HeadView {
            method: request.method(),
            uri: request.uri(),
            version: request.version(),
            params: Params::Owned(request.extensions().get::<PathParams>()),
            headers: Headers::Map(request.headers()),
        }
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The path, as sent (percent-encoding kept).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The value of path parameter `name` (`{id}` in `/items/{id}`), as it appeared in the
    /// path.
    pub fn param(&self, name: &str) -> Option<&str> {
        match &self.params {
            Params::Matched(params) => params.get(name),
            Params::Owned(params) => params.and_then(|p| p.get(name)),
        }
    }

    /// The first value of header `name` (matched case-insensitively), as sent.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match &self.headers {
            Headers::Raw(validated, head) => validated
                .raw_fields(head)
                .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, value)| value),
            Headers::Map(map) => map.get(name).map(HeaderValue::as_bytes),
        }
    }
}

/// What an inline handler answers: a status, a `Content-Type`, a few more headers and a body
/// that is usually static or small (`Bytes`: a `&'static str` costs no copy). The engine adds
/// `Date`, `Server`, `Content-Length`, `Server-Timing` and `Connection` as for any response, and
/// leaves the body out of an answer to `HEAD`.
///
/// ```
/// use pipelined::{get_inline, Answer, Router};
/// let app = Router::new()
///     .route("/health", get_inline(|_head| Answer::text("ok\n")))
///     .route("/old", get_inline(|_head| {
///         Answer::new(http::StatusCode::MOVED_PERMANENTLY)
///             .header(http::header::LOCATION, http::HeaderValue::from_static("/new"))
///     }));
/// # drop(app);
/// ```
#[derive(Clone, Debug)]
pub struct Answer {
    pub(crate) kind: AnswerKind,
}

#[derive(Clone, Debug)]
pub(crate) enum AnswerKind {
    Respond(Respond),
    /// The handler declined: the Service path answers.
    Pass,
}

/// An answer's parts, as the encoder reads them.
#[derive(Clone, Debug)]
pub(crate) struct Respond {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<HeaderValue>,
    /// Allocated only when a handler adds a header.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

impl Respond {
    /// Its headers as the encoder takes them: the `Content-Type` first, then the others.
    pub(crate) fn fields(&self) -> impl Iterator<Item = Field<'_>> + Clone {
        let content_type = self.content_type.iter().map(|v| (&CONTENT_TYPE, v));
        content_type.chain(self.headers.iter().map(|(name, value)| (name, value)))
    }
}

impl Answer {
    /// `status` with an empty body.
    pub fn new(status: StatusCode) -> Self {
        Answer {
            kind: AnswerKind::Respond(Respond {
                status,
                content_type: None,
                headers: Vec::new(),
                body: Bytes::new(),
            }),
        }
    }

    /// `200 OK` with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Bytes>) -> Self {
        Answer::new(StatusCode::OK)
            .body(HeaderValue::from_static("text/plain; charset=utf-8"), body)
    }

    /// Sets the body and its `Content-Type`.
    pub fn body(mut self, content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        if let AnswerKind::Respond(respond) = &mut self.kind {
            respond.content_type = Some(content_type);
            respond.body = body.into();
        }
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: StatusCode) -> Self {
        if let AnswerKind::Respond(respond) = &mut self.kind {
            respond.status = status;
        }
        self
    }

    /// Adds a header. `Content-Length` and `Transfer-Encoding` are ignored: the body's length
    /// is the one the engine writes, for `HEAD` too. `Connection: close` closes the
    /// connection after the answer; a `Date` or `Server` replaces the engine's own.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        let framing =
            name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING;
        if let (AnswerKind::Respond(respond), false) = (&mut self.kind, framing) {
            respond.headers.push((name, value));
        }
        self
    }

    /// Declines the request: it goes to the Service handler routed for the same method on the
    /// same path, or is answered `404 Not Found` when there is none (module docs of
    /// [`get_inline`](crate::get_inline)).
    pub fn pass() -> Self {
        Answer {
            kind: AnswerKind::Pass,
        }
    }

    /// The answer as a response, for the Service path; `None` when the handler passed.
    pub(crate) fn into_response(self) -> Option<Response<ResponseBody>> {
        let AnswerKind::Respond(respond) = self.kind else {
            return None;
        };
        let mut response = Response::new(ResponseBody::from(respond.body));
        *response.status_mut() = respond.status;
        let headers = response.headers_mut();
        if let Some(content_type) = respond.content_type {
            headers.insert(CONTENT_TYPE, content_type);
        }
        for (name, value) in respond.headers {
            headers.append(name, value);
        }
        Some(response)
    }
}

/// An inline handler, type-erased and cheap to clone.
#[derive(Clone)]
pub(crate) struct Inline(Arc<dyn Fn(&HeadView<'_>) -> Answer + Send + Sync>);

impl Inline {
    pub(crate) fn new<F>(handler: F) -> Self
    where
        F: Fn(&HeadView<'_>) -> Answer + Send + Sync + 'static,
    {
        Inline(Arc::new(handler))
    }

    pub(crate) fn call(&self, head: &HeadView<'_>) -> Answer {
        (self.0)(head)
    }
}
