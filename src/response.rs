//! Response bodies and the [`IntoResponse`] conversion used by [`Router`](crate::Router)
//! handlers.

use std::any::Any;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

use crate::{BodyError, BoxError};

/// The body of a [`Router`](crate::Router) response: bytes known up front, or any boxed
/// [`http_body::Body`] for streaming.
///
/// Whole bodies are kept unboxed so the common case (a handler returning a string) costs no
/// allocation beyond the bytes themselves.
#[derive(Debug)]
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::Full(bytes) => f.debug_tuple("Full").field(bytes).finish(),
            Kind::Boxed(_) => f.write_str("Boxed"),
        }
    }
}

/// An empty body (tower-http's timeout, CORS and auth layers build their own answers so).
impl Default for ResponseBody {
    fn default() -> Self {
        ResponseBody::empty()
    }
}

impl ResponseBody {
    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody {
            kind: Kind::Full(None),
        }
    }

    /// Wraps any body whose data is [`Bytes`]; streaming bodies are forwarded frame by frame.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match try_downcast::<ResponseBody, B>(body) {
            Ok(already) => already,
            Err(body) => ResponseBody {
                kind: Kind::Boxed(body.map_err(Into::into).boxed_unsync()),
            },
        }
    }
}

impl ResponseBody {
    /// All of the body's bytes when they are already in hand (the body is then empty), so the
    /// writer can encode the response without polling it; `None` for a streaming body.
    pub(crate) fn take_whole(&mut self) -> Option<Bytes> {
        match &mut self.kind {
            Kind::Full(bytes) => Some(bytes.take().unwrap_or_default()),
            Kind::Boxed(_) => None,
        }
    }
}

/// Returns `k` as a `T` when it is one, so wrapping a `ResponseBody` does not box it again.
fn try_downcast<T: 'static, K: 'static>(k: K) -> Result<T, K> {
    let mut slot = Some(k);
    match <dyn Any>::downcast_mut::<Option<T>>(&mut slot) {
        Some(t) => Ok(t.take().expect("the slot was filled above")),
        None => Err(slot.expect("the slot was not taken")),
    }
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        let kind = if bytes.is_empty() {
            Kind::Full(None)
        } else {
            Kind::Full(Some(bytes))
        };
        ResponseBody { kind }
    }
}

impl From<&'static str> for ResponseBody {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<String> for ResponseBody {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<Vec<u8>> for ResponseBody {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Boxed(body) => body.size_hint(),
        }
    }
}

/// Anything a [`Router`](crate::Router) handler may return.
pub trait IntoResponse {
    /// Converts `self` into a response.
    fn into_response(self) -> Response<ResponseBody>;
}

impl<B> IntoResponse for Response<B>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    fn into_response(self) -> Response<ResponseBody> {
        self.map(ResponseBody::new)
    }
}

/// A response with `body` and the given `Content-Type`.
fn with_type(body: ResponseBody, content_type: &'static str) -> Response<ResponseBody> {
    let mut res = Response::new(body);
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// The content type of text answers, the engine's own refusals on both protocols included.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";
const BINARY: &str = "application/octet-stream";

impl IntoResponse for &'static str {
    fn into_response(self) -> Response<ResponseBody> {
        with_type(self.into(), TEXT)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response<ResponseBody> {
        with_type(self.into(), TEXT)
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response<ResponseBody> {
        with_type(self.into(), BINARY)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response<ResponseBody> {
        with_type(self.into(), BINARY)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response<ResponseBody> {
        Response::new(ResponseBody::empty())
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response<ResponseBody> {
        let mut res = ().into_response();
        *res.status_mut() = self;
        res
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response<ResponseBody> {
        let mut res = self.1.into_response();
        *res.status_mut() = self.0;
        res
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response<ResponseBody> {
        match self {
            Ok(t) => t.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

/// A body that failed to arrive answers with its status (`413`, `400`) and the reason, so a
/// handler can use `?` on body reads.
impl IntoResponse for BodyError {
    fn into_response(self) -> Response<ResponseBody> {
        (self.status(), format!("{self}\n")).into_response()
    }
}
