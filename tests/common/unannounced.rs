//! A request body that does not announce its length (chunked on HTTP/1.1, no `content-length`
//! on HTTP/2), for the body-size and body-read-timeout tests.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;

/// Its chunks, one frame each, and then (when stalled) no end at all.
pub struct Unannounced {
    chunks: VecDeque<Bytes>,
    stall: bool,
}

impl Unannounced {
    /// `chunks` chunks of `size` bytes, then the end.
    pub fn new(chunks: usize, size: usize) -> Self {
        Unannounced {
            chunks: (0..chunks).map(|_| Bytes::from(vec![b'z'; size])).collect(),
            stall: false,
        }
    }

    /// `first`, then nothing more and no end: a client that stopped sending.
    pub fn stalled(first: &'static [u8]) -> Self {
        Unannounced {
            chunks: VecDeque::from([Bytes::from_static(first)]),
            stall: true,
        }
    }
}

impl http_body::Body for Unannounced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            // Never woken: the body stalls for good.
            None if self.stall => Poll::Pending,
            None => Poll::Ready(None),
        }
    }
}
