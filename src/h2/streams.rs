//! Which streams of one HTTP/2 connection are open, from the service's call to the end of its
//! response body: what the connection's idle deadline watches.
//!
//! hyper's HTTP/2 server has no idle timeout of its own: a client that sends the preface and
//! nothing else, or a HEADERS frame that never ends, would hold its socket for ever (issue 11).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::watch;

/// Counts one connection's open streams; every stream's service clone holds one.
#[derive(Clone)]
pub(super) struct Streams(Arc<watch::Sender<usize>>);

impl Streams {
    /// A count of zero, and the receiver the connection's loop watches it with.
    pub(super) fn new() -> (Streams, watch::Receiver<usize>) {
        let (tx, rx) = watch::channel(0);
        (Streams(Arc::new(tx)), rx)
    }

    /// Counts a stream until the guard drops. Only the first open stream wakes the watcher:
    /// the connection's loop cares whether any is open, not how many.
    pub(super) fn open(&self) -> StreamGuard {
        self.0.send_if_modified(|n| {
            *n += 1;
            *n == 1
        });
        StreamGuard(Arc::clone(&self.0))
    }
}

/// One open stream; uncounted when dropped, finished or cancelled.
pub(super) struct StreamGuard(Arc<watch::Sender<usize>>);

impl Drop for StreamGuard {
    /// Wakes the watcher when the last open stream ends.
    fn drop(&mut self) {
        self.0.send_if_modified(|n| {
            *n -= 1;
            *n == 0
        });
    }
}

/// A response body that keeps its stream counted until hyper drops it (sent or reset), so a
/// long download is not mistaken for an idle connection. Boxed to stay `Unpin` without
/// unsafe pin projection: one allocation per HTTP/2 response.
pub(super) struct Held<B> {
    body: Pin<Box<B>>,
    _stream: StreamGuard,
}

impl<B> Held<B> {
    pub(super) fn new(body: B, stream: StreamGuard) -> Self {
        Held {
            body: Box::pin(body),
            _stream: stream,
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for Held<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
