//! The request body handed to services: an [`http_body::Body`] that streams from the
//! connection.
//!
//! The connection's body pump decodes the body off the socket and sends it through a small
//! bounded channel, so a handler sees bytes as they arrive and a slow handler slows the client
//! down instead of making the server buffer the body. A handler that drops its body unread is
//! fine: the pump goes on decoding (and discarding) up to the exact end of the body before the
//! next request is parsed.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::BoxError;

/// Body chunks buffered between the pump and the handler. A few chunks let the pump stay
/// ahead of the handler by one socket read or so; bounding it is what makes a slow handler
/// push back on the client instead of growing server memory.
const BODY_CHANNEL_CAPACITY: usize = 4;

/// Why a request body could not be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The body grew past `Config::max_body_bytes`.
    TooLarge,
    /// The chunked framing was invalid; the reason says how.
    Malformed(&'static str),
    /// The connection ended before the body did.
    Incomplete,
    /// No body bytes arrived within `Config::body_read_timeout`.
    TimedOut,
}

impl BodyError {
    /// The status a handler should answer with when its body failed this way.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Malformed(_) | BodyError::Incomplete => StatusCode::BAD_REQUEST,
            BodyError::TimedOut => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// What was wrong, in a few words (a malformed body says how): the text of both
    /// `Display` and the engine's own answer to the request.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge => "request body larger than the limit",
            BodyError::Malformed(why) => why,
            BodyError::Incomplete => "connection closed before the body ended",
            BodyError::TimedOut => "request body stalled past the read timeout",
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Malformed(why) => write!(f, "malformed request body: {why}"),
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for BodyError {}

/// What the pump sends to a streaming body.
#[derive(Debug)]
pub(crate) enum Chunk {
    Data(Bytes),
    Trailers(HeaderMap),
    /// A chunked body ended without trailers.
    End,
    Error(BodyError),
}

/// A request body.
///
/// Implements [`http_body::Body`]: read it whole with [`Body::to_bytes`], or stream it frame by
/// frame. Build one from bytes or a string to test a service without a socket.
#[derive(Debug, Default)]
pub struct Body {
    kind: Kind,
}

#[derive(Default)]
enum Kind {
    #[default]
    Empty,
    Full(Option<Bytes>),
    /// A body from elsewhere (another HTTP implementation, a test).
    Boxed(BoxBody<Bytes, BodyError>),
    Streaming {
        rx: mpsc::Receiver<Chunk>,
        /// Bytes still due for a `Content-Length` body; `None` for chunked.
        remaining: Option<u64>,
        done: bool,
    },
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Empty => "Empty",
            Kind::Full(_) => "Full",
            Kind::Boxed(_) => "Boxed",
            Kind::Streaming { .. } => "Streaming",
        })
    }
}

impl Body {
    /// A body with no bytes.
    pub fn empty() -> Self {
        Body::default()
    }

    /// Wraps any body, for handing a request that arrived another way (hyper, a test) to a
    /// service written for `pipelined`. Errors that are not already a [`BodyError`] become
    /// [`BodyError::Incomplete`]: the body could not be read to its end.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let body = body.map_err(|e| {
            let e: BoxError = e.into();
            e.downcast_ref::<BodyError>()
                .copied()
                .unwrap_or(BodyError::Incomplete)
        });
        Body {
            kind: Kind::Boxed(BoxBody::new(body)),
        }
    }

    /// The whole body, once it has arrived. A body the engine reads off a connection is never
    /// larger than [`Config::max_body_bytes`](crate::Config::max_body_bytes), which it enforces
    /// as it reads, so collecting one is bounded (one wrapped with [`Body::new`] is as long as
    /// its source).
    ///
    /// # Errors
    ///
    /// The [`BodyError`] that ended the body early (too large, malformed, timed out,
    /// incomplete); a handler may return it as is, and it becomes that error's answer.
    pub async fn to_bytes(self) -> Result<Bytes, BodyError> {
        Ok(self.collect().await?.to_bytes())
    }

    /// A streaming body fed by the connection's body pump, and its sending end.
    pub(crate) fn channel(length: Option<u64>) -> (mpsc::Sender<Chunk>, Body) {
        let (tx, rx) = mpsc::channel(BODY_CHANNEL_CAPACITY);
        let kind = Kind::Streaming {
            rx,
            remaining: length,
            done: false,
        };
        (tx, Body { kind })
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body {
            kind: Kind::Full(Some(bytes)),
        }
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Bytes::from(s).into()
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Bytes::from_static(s.as_bytes()).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Bytes::from(v).into()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
            Kind::Streaming {
                rx,
                remaining,
                done,
            } => {
                if *done || *remaining == Some(0) {
                    return Poll::Ready(None);
                }
                let chunk = std::task::ready!(rx.poll_recv(cx));
                let frame = match chunk {
                    Some(Chunk::Data(data)) => {
                        if let Some(left) = remaining {
                            *left = left.saturating_sub(data.len() as u64);
                        }
                        Some(Ok(Frame::data(data)))
                    }
                    Some(Chunk::Trailers(map)) => {
                        *done = true;
                        Some(Ok(Frame::trailers(map)))
                    }
                    Some(Chunk::End) => {
                        *done = true;
                        None
                    }
                    Some(Chunk::Error(e)) => {
                        *done = true;
                        Some(Err(e))
                    }
                    // The pump went away without finishing the body: never pass a truncated
                    // body off as complete.
                    None => {
                        *done = true;
                        Some(Err(BodyError::Incomplete))
                    }
                };
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Boxed(body) => body.is_end_stream(),
            Kind::Streaming {
                remaining, done, ..
            } => *done || *remaining == Some(0),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Boxed(body) => body.size_hint(),
            Kind::Streaming {
                remaining: Some(n), ..
            } => SizeHint::with_exact(*n),
            Kind::Streaming { .. } => SizeHint::default(),
        }
    }
}
