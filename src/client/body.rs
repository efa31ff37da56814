//! A response body as the client hands it over: whole when it arrived with its head (no
//! hand-off per frame), otherwise frames streamed through the request's slot.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::error::Error;
use super::slots::{Exchange, SlotId};

/// A caller's hold on its slot: the response future's, then a streaming body's. Dropping it
/// tells the connection the caller left (the rest of the response is read and discarded).
pub(crate) struct Handle {
    exchange: Arc<dyn Exchange>,
    id: SlotId,
}

impl Handle {
    pub(crate) fn new(exchange: Arc<dyn Exchange>, id: SlotId) -> Self {
        Handle { exchange, id }
    }

    pub(crate) fn poll_answer(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<super::slots::Head, Error>> {
        self.exchange.poll_answer(self.id, cx)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.exchange.drop_handle(self.id);
    }
}

/// The body of a response from [`SendRequest`](super::SendRequest) or
/// [`Client`](super::Client): an [`http_body::Body`] of [`Bytes`] frames, trailers last when
/// the server sent them.
///
/// Dropping it before its end is safe: the connection reads the rest of this response and
/// throws it away (up to `max_discard` bytes, past which it closes the connection instead and
/// the requests behind fail as not answered), so the next response still goes to the next
/// request.
pub struct Incoming {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Bytes),
    Streaming {
        handle: Handle,
        /// Bytes still to come, when the response said how many.
        remaining: Option<u64>,
        ended: bool,
    },
}

impl Incoming {
    pub(crate) fn empty() -> Self {
        Incoming { kind: Kind::Empty }
    }

    pub(crate) fn full(bytes: Bytes) -> Self {
        Incoming {
            kind: if bytes.is_empty() {
                Kind::Empty
            } else {
                Kind::Full(bytes)
            },
        }
    }

    pub(crate) fn streaming(handle: Handle, len: Option<u64>) -> Self {
        Incoming {
            kind: Kind::Streaming {
                handle,
                remaining: len,
                ended: false,
            },
        }
    }
}

impl Body for Incoming {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match &mut self.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(_) => match std::mem::replace(&mut self.kind, Kind::Empty) {
                Kind::Full(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                _ => unreachable!("matched Full above"),
            },
            Kind::Streaming {
                handle,
                remaining,
                ended,
            } => {
                if *ended {
                    return Poll::Ready(None);
                }
                let frame = std::task::ready!(handle.exchange.poll_frame(handle.id, cx));
                match &frame {
                    Some(Ok(frame)) => {
                        if let (Some(n), Some(data)) = (remaining.as_mut(), frame.data_ref()) {
                            *n = n.saturating_sub(data.len() as u64);
                        }
                    }
                    Some(Err(_)) | None => *ended = true,
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(_) => false,
            Kind::Streaming { ended, .. } => *ended,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Streaming {
                remaining: Some(n), ..
            } => SizeHint::with_exact(*n),
            Kind::Streaming { .. } => SizeHint::default(),
        }
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::Streaming { .. } => "streaming",
        };
        f.debug_struct("Incoming").field("kind", &kind).finish()
    }
}

/// The reason phrase a server sent, in a response's extensions when it is not the status
/// code's standard one (`HTTP/1.1 200 Fine Thanks`); with the standard phrase there is none,
/// and `StatusCode::canonical_reason` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonPhrase(pub(crate) Bytes);

impl ReasonPhrase {
    /// The phrase's bytes, as sent (obs-text included).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The request bodies the client sends: any [`http_body::Body`] that can move to the
/// connection's task and whose error converts into a `BoxError`. A *sealed* alias, as the
/// server's [`HttpService`](crate::HttpService) is: it cannot be implemented directly, every
/// body of the right shape implements it, and the bound is written once instead of at every
/// item of the client.
pub trait RequestBody:
    Body<Data = <Self as RequestBody>::Chunk, Error = <Self as RequestBody>::Failure>
    + Send
    + Unpin
    + 'static
    + sealed::Sealed
{
    /// The body's `Data`.
    type Chunk: bytes::Buf + Send;
    /// The body's `Error`.
    type Failure: Into<crate::BoxError>;
}

impl<B> RequestBody for B
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
{
    type Chunk = B::Data;
    type Failure = B::Error;
}

mod sealed {
    /// Keeps [`RequestBody`](super::RequestBody) implemented by its blanket impl alone.
    pub trait Sealed {}

    impl<B> Sealed for B {}
}
