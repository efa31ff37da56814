//! The writing side: which queued request may go on the wire now (RFC 9112 §9.3.2), its head
//! and body onto the write buffer, and the buffer onto the socket.

use crate::client::RequestBody;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Connection;
use crate::client::encode::{is_idempotent, BodyKind};
use crate::client::error::{Error, ErrorKind};

/// A request body being written after its head.
struct Streaming<B> {
    body: B,
    slot: u32,
    /// Bytes still owed for `Content-Length` framing; `None`: chunked.
    remaining: Option<u64>,
}

/// The write buffer and the body being streamed.
pub(super) struct Writer<B> {
    buf: Vec<u8>,
    /// How much of `buf` the socket has taken.
    pos: usize,
    body: Option<Streaming<B>>,
    /// Written bytes the stream may still hold (TLS) until flushed.
    unflushed: bool,
    /// A write failed: nothing more is written; the reading side finds out how the server
    /// left, and the error is reported then.
    broken: Option<Error>,
    /// Written requests with a non-idempotent method whose final status has not arrived.
    unsafe_unanswered: usize,
}

impl<B> Writer<B> {
    pub(super) fn new() -> Self {
        Writer {
            buf: Vec::new(),
            pos: 0,
            body: None,
            unflushed: false,
            broken: None,
            unsafe_unanswered: 0,
        }
    }

    /// Whether bytes or a body are still to be written.
    pub(super) fn is_busy(&self) -> bool {
        self.broken.is_none() && (self.pos < self.buf.len() || self.body.is_some())
    }

    /// The slot whose request body is being written.
    pub(super) fn streaming_slot(&self) -> Option<u32> {
        self.body.as_ref().map(|s| s.slot)
    }

    /// The write error that stopped the writer, if one did.
    pub(super) fn take_broken(&mut self) -> Option<Error> {
        self.broken.take()
    }

    /// A non-idempotent request's final status arrived.
    pub(super) fn answered(&mut self, method_was_idempotent: bool) {
        if !method_was_idempotent {
            self.unsafe_unanswered -= 1;
        }
    }
}

impl<T, B> Connection<T, B>
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    /// Encodes what may be written and writes what the socket takes. `Ok(true)`: progress.
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        if self.writer.broken.is_some() {
            return Ok(false);
        }
        let encoded = self.encode(cx)?;
        let written = self.flush(cx);
        Ok(encoded || written)
    }

    /// Moves queued requests (and the body being streamed) onto the write buffer.
    fn encode(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let mut progress = false;
        while self.writer.buf.len() < self.config.max_write_buffer {
            if self.writer.body.is_some() {
                if !self.poll_body(cx)? {
                    break;
                }
                progress = true;
                continue;
            }
            if self.closing {
                break;
            }
            let pipeline_unsafe = self.config.pipeline_unsafe;
            let idle = self.in_flight.is_empty();
            let behind_unsafe = self.writer.unsafe_unanswered > 0;
            let may_write = |request: &Request<B>| {
                pipeline_unsafe || (!behind_unsafe && (idle || is_idempotent(request.method())))
            };
            let Some(next) = self.shared.next_to_write(&mut self.writer.buf, may_write) else {
                break;
            };
            if !next.written.idempotent {
                self.writer.unsafe_unanswered += 1;
            }
            self.closing |= next.written.closes;
            self.in_flight.push_back((next.slot, next.written));
            if let Some(body) = next.body {
                let remaining = match next.written.body {
                    BodyKind::Length(n) => Some(n),
                    _ => None,
                };
                self.writer.body = Some(Streaming {
                    body,
                    slot: next.slot,
                    remaining,
                });
            }
            progress = true;
        }
        Ok(progress)
    }

    /// Encodes the next frame of the body being streamed. `Ok(false)`: the body has nothing
    /// ready.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let Some(streaming) = &mut self.writer.body else {
            return Ok(false);
        };
        let out = &mut self.writer.buf;
        let frame = match Pin::new(&mut streaming.body).poll_frame(cx) {
            Poll::Pending => return Ok(false),
            Poll::Ready(frame) => frame,
        };
        let body_failed = |why: &str| Error::new(ErrorKind::Body, why.to_owned());
        match frame {
            Some(Err(e)) => Err(body_failed("the body returned an error").with_source(e.into())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    let len = data.remaining();
                    if len == 0 {
                        return Ok(true);
                    }
                    match &mut streaming.remaining {
                        Some(n) if (len as u64) > *n => {
                            return Err(body_failed("the body is longer than its size hint"))
                        }
                        Some(n) => *n -= len as u64,
                        None => {
                            // Writing to a Vec cannot fail.
                            let _ = write!(out, "{len:x}\r\n");
                        }
                    }
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        out.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                    if streaming.remaining.is_none() {
                        out.extend_from_slice(b"\r\n");
                    }
                    Ok(true)
                }
                Err(frame) => {
                    // Trailers end a chunked body; a Content-Length body has nowhere to
                    // put them.
                    if let (None, Ok(trailers)) = (streaming.remaining, frame.into_trailers()) {
                        out.extend_from_slice(b"0\r\n");
                        for (name, value) in &trailers {
                            out.extend_from_slice(name.as_str().as_bytes());
                            out.extend_from_slice(b": ");
                            out.extend_from_slice(value.as_bytes());
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"\r\n");
                        self.writer.body = None;
                    }
                    Ok(true)
                }
            },
            None => {
                match streaming.remaining {
                    Some(0) => {}
                    Some(_) => return Err(body_failed("the body is shorter than its size hint")),
                    None => out.extend_from_slice(b"0\r\n\r\n"),
                }
                self.writer.body = None;
                Ok(true)
            }
        }
    }

    /// Hands the write buffer to the socket, then flushes it. `true`: bytes moved.
    fn flush(&mut self, cx: &mut Context<'_>) -> bool {
        let writer = &mut self.writer;
        let mut progress = false;
        while writer.pos < writer.buf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &writer.buf[writer.pos..]) {
                Poll::Ready(Ok(0)) => {
                    writer.broken = Some(Error::new(ErrorKind::Io, "the socket took no bytes"));
                    return progress;
                }
                Poll::Ready(Ok(n)) => {
                    writer.pos += n;
                    writer.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    writer.broken = Some(Error::io(e, "writing the requests"));
                    return progress;
                }
                Poll::Pending => return progress,
            }
        }
        writer.buf.clear();
        writer.pos = 0;
        if writer.unflushed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => writer.unflushed = false,
                Poll::Ready(Err(e)) => writer.broken = Some(Error::io(e, "flushing the requests")),
                Poll::Pending => {}
            }
        }
        progress
    }
}
