//! An HTTP/2 request body under `Config`'s body limits, failing as an HTTP/1.1 body does: with
//! [`BodyError::TooLarge`] past `max_body_bytes`, with [`BodyError::TimedOut`] when it stalls
//! past `body_read_timeout`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::{Body, BodyError, BoxError};

/// The request body handed to the service: `body` within both limits.
pub(super) fn limited(body: Incoming, max_bytes: u64, read_timeout: Duration) -> Body {
    let max = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let body = Limited::new(ReadTimeout::new(body, read_timeout), max);
    Body::new(body.map_err(|e| {
        if e.is::<LengthLimitError>() {
            BoxError::from(BodyError::TooLarge)
        } else {
            e
        }
    }))
}

/// Reads and drops a refused request's body to its end: at most `most` bytes, none of them
/// kept, and never waiting longer than `read_timeout` for the next frame.
///
/// HTTP/2 lets a server answer before the request is over and then reset the stream with
/// `NO_ERROR` (RFC 9113 §8.1), which hyper does as soon as the body is dropped; but clients
/// such as curl (7.88 here) take that reset for a failed transfer and never show the answer,
/// so a `413` looked like a broken server. Read to its end, the upload finishes and the stream
/// closes cleanly. Bounded in bytes and time, so an endless or stalled upload is still reset.
pub(super) async fn discard(body: Incoming, most: u64, read_timeout: Duration) {
    let most = usize::try_from(most).unwrap_or(usize::MAX);
    let mut body = Limited::new(ReadTimeout::new(body, read_timeout), most);
    while let Some(Ok(_)) = body.frame().await {}
}

/// A body that fails with [`BodyError::TimedOut`] when its reader waits longer than `timeout`
/// for the next frame. HTTP/1.1 arms the same limit whenever the connection waits for body
/// bytes; here it runs while the handler waits, from the wait's start, so a client that
/// stalls its upload does not hold the handler (and its stream) past it. Flow control alone
/// would not: a stalled stream costs the client nothing.
///
/// By hand rather than tower-http's `TimeoutBody` (the same idea): tower-http and its
/// `bitflags` would take the library's dependency tree past the 50 lines CI allows, and its
/// error would still need mapping to `BodyError`.
struct ReadTimeout {
    body: Incoming,
    timeout: Duration,
    /// Armed once a wait starts; boxed, since a `Sleep` must stay pinned. `None` until the
    /// first wait, so a body that never makes its reader wait allocates no timer.
    sleep: Option<Pin<Box<Sleep>>>,
    /// A frame came since the timer was armed: the next wait starts it afresh.
    rearm: bool,
    /// Timed out: the body is over.
    failed: bool,
}

impl ReadTimeout {
    fn new(body: Incoming, timeout: Duration) -> Self {
        ReadTimeout {
            body,
            timeout,
            sleep: None,
            rearm: true,
            failed: false,
        }
    }

    /// Whether the wait that just started (or goes on) has lasted `timeout`.
    /// The clock is read only when a wait starts, not on every poll while it goes on.
    fn overdue(&mut self, cx: &mut Context<'_>) -> bool {
        let timeout = self.timeout;
        let sleep = match &mut self.sleep {
            Some(sleep) if self.rearm => {
                sleep.as_mut().reset(Instant::now() + timeout);
                sleep
            }
            Some(sleep) => sleep,
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(Instant::now() + timeout))),
        };
        self.rearm = false;
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl http_body::Body for ReadTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.rearm = true;
                Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)))
            }
            Poll::Pending if self.overdue(cx) => {
                self.failed = true;
                Poll::Ready(Some(Err(BodyError::TimedOut.into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
