//! The reading side: response heads and bodies off the socket, each handed to the oldest
//! written request (`in_flight`'s front), 1xx answers skipped, a dropped caller's body
//! discarded within its bound, and how a close or a bad byte ends the connection.

use crate::client::RequestBody;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::{Response, StatusCode};
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Connection;
use crate::client::error::{Error, ErrorKind};
use crate::client::slots::{Delivery, Head};
use crate::client::ReasonPhrase;
use crate::proto::decode::{Decoded, Decoder};
use crate::proto::request::Framing;
use crate::proto::response_head::{BodyFraming, HeadError, HeadParser, ResponseHead};
use crate::BodyError;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// Reads per turn before the writer gets its turn again.
const READS_PER_TURN: usize = 4;

/// Where the reader is within the response stream.
enum At {
    /// Between responses, or within a head.
    Head,
    /// Within the body of the front request's response.
    Body {
        slot: u32,
        decoder: BodyDecoder,
        /// The caller left: bytes that may still be thrown away before the connection is
        /// closed instead.
        discard: Option<u64>,
        /// The server said this is its last response.
        last: bool,
    },
}

enum BodyDecoder {
    /// Content-Length or chunked: the server's own body decoder.
    Framed(Decoder),
    /// Everything until the server closes.
    UntilClose,
}

pub(super) struct Reader {
    buf: BytesMut,
    scratch: Box<[u8]>,
    parser: HeadParser,
    at: At,
    /// The server closed its side.
    eof: bool,
    /// The server closed between responses with none owed.
    closed_cleanly: bool,
}

impl Reader {
    pub(super) fn new() -> Self {
        Reader {
            buf: BytesMut::with_capacity(READ_SIZE),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
            parser: HeadParser::default(),
            at: At::Head,
            eof: false,
            closed_cleanly: false,
        }
    }

    /// The slot whose response body is being read, handing the reader back to heads.
    pub(super) fn take_current(&mut self) -> Option<u32> {
        match std::mem::replace(&mut self.at, At::Head) {
            At::Body { slot, .. } => Some(slot),
            At::Head => None,
        }
    }

    pub(super) fn closed_cleanly(&self) -> bool {
        self.closed_cleanly
    }
}

/// What one decoding step did.
enum Step {
    /// Something was decoded: go on.
    Progress,
    /// The buffer holds no more of what comes next.
    NeedMore,
    /// The caller's body buffer is full: read nothing until it takes some.
    Paused,
}

impl<T, B> Connection<T, B>
where
    T: AsyncRead + AsyncWrite + Unpin,
    B: RequestBody,
{
    /// Decodes what is buffered and reads more. `Ok(true)`: progress.
    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, Error> {
        let mut progress = false;
        let mut reads = 0;
        loop {
            match self.decode_step()? {
                Step::Progress => {
                    progress = true;
                    continue;
                }
                Step::Paused => return Ok(progress),
                Step::NeedMore => {}
            }
            if self.reader.eof {
                self.at_eof()?;
                return Ok(progress);
            }
            if reads == READS_PER_TURN {
                return Ok(true);
            }
            reads += 1;
            let reader = &mut self.reader;
            let mut read = ReadBuf::new(&mut reader.scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => reader.eof = true,
                Poll::Ready(Ok(())) => reader.buf.extend_from_slice(read.filled()),
                // A TLS peer that closes without close_notify: for the responses it is the
                // close it would be on TCP (a response cut short is still refused).
                Poll::Ready(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    reader.eof = true
                }
                Poll::Ready(Err(e)) => {
                    let error = Error::io(e, "reading the responses");
                    // Part of a head already in: that response began, so its request is not
                    // "not answered" (as at a clean close, `at_eof`).
                    let error = if self.head_begun() {
                        error.with_kind(ErrorKind::Incomplete)
                    } else {
                        error
                    };
                    return Err(self.broken_or(error));
                }
                Poll::Pending => return Ok(progress),
            }
            progress = true;
        }
    }

    /// Whether bytes of the front request's response head have arrived.
    fn head_begun(&self) -> bool {
        matches!(self.reader.at, At::Head)
            && !self.reader.buf.is_empty()
            && !self.in_flight.is_empty()
    }

    /// One step of decoding at the front of the read buffer.
    fn decode_step(&mut self) -> Result<Step, Error> {
        match &mut self.reader.at {
            At::Head => self.decode_head(),
            At::Body { .. } => self.decode_body(),
        }
    }

    fn decode_head(&mut self) -> Result<Step, Error> {
        let Some(&(slot, written)) = self.in_flight.front() else {
            if self.reader.buf.is_empty() {
                return Ok(Step::NeedMore);
            }
            return Err(protocol(
                "the server sent a response no request was waiting for",
            ));
        };
        let max = self.config.max_head_bytes;
        let head = match self
            .reader
            .parser
            .parse(&mut self.reader.buf, max, written.head)
        {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(Step::NeedMore),
            Err(HeadError::TooLarge) => {
                return Err(protocol(
                    "a response head larger than the limit (max_head_bytes)",
                ))
            }
            Err(HeadError::Malformed(why)) => return Err(protocol(why)),
        };
        if head.status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(protocol(
                "101 Switching Protocols to a request that asked for no upgrade",
            ));
        }
        if head.status.is_informational() {
            // 100 Continue, 103 Early Hints: the final answer follows.
            return Ok(Step::Progress);
        }
        self.writer.answered(written.idempotent);
        let last = head.closes;
        let framing = head.framing;
        let delivery = match framing {
            BodyFraming::Empty => Delivery::Empty,
            BodyFraming::Length(n) if (self.reader.buf.len() as u64) >= n => {
                Delivery::Full(self.reader.buf.split_to(n as usize).freeze())
            }
            BodyFraming::Length(n) => Delivery::Streaming(Some(n)),
            BodyFraming::Chunked | BodyFraming::UntilClose => Delivery::Streaming(None),
        };
        let streaming = matches!(delivery, Delivery::Streaming(_));
        let (abandoned, request) = self.shared.deliver(slot, head_of(head, delivery));
        drop(request);
        if !streaming {
            self.in_flight.pop_front();
            return self.after_response(last).map(|()| Step::Progress);
        }
        let decoder = match framing {
            BodyFraming::Length(n) => {
                BodyDecoder::Framed(Decoder::new(Framing::Length(n), u64::MAX, max).expect("n > 0"))
            }
            BodyFraming::Chunked => BodyDecoder::Framed(
                Decoder::new(Framing::Chunked, u64::MAX, max).expect("chunked has a body"),
            ),
            _ => BodyDecoder::UntilClose,
        };
        self.reader.at = At::Body {
            slot,
            decoder,
            discard: abandoned.then_some(self.config.max_discard),
            last,
        };
        Ok(Step::Progress)
    }

    fn decode_body(&mut self) -> Result<Step, Error> {
        let reader = &mut self.reader;
        let At::Body {
            slot,
            decoder,
            discard,
            last,
        } = &mut reader.at
        else {
            unreachable!("decode_body runs in a body")
        };
        let (slot, last) = (*slot, *last);
        if discard.is_none() && self.shared.buffered(slot) >= self.config.max_body_buffer {
            return Ok(Step::Paused);
        }
        let decoded = match decoder {
            BodyDecoder::Framed(decoder) => decoder.decode(&mut reader.buf),
            BodyDecoder::UntilClose if reader.buf.is_empty() => Ok(Decoded::NeedMore),
            BodyDecoder::UntilClose => Ok(Decoded::Data(reader.buf.split().freeze())),
        };
        let frame = match decoded {
            Ok(Decoded::Data(data)) => Frame::data(data),
            Ok(Decoded::Trailers(trailers)) => Frame::trailers(trailers),
            Ok(Decoded::NeedMore) => return Ok(Step::NeedMore),
            Ok(Decoded::Done) => return self.end_body(slot, last),
            Err(BodyError::Malformed(why)) => return Err(protocol(why)),
            Err(_) => return Err(protocol("an invalid response body")),
        };
        let trailers = frame.is_trailers();
        let len = frame.data_ref().map_or(0, |d| d.len() as u64);
        match discard {
            Some(left) if len > *left => {
                return Err(Error::new(
                    ErrorKind::NotAnswered,
                    "a dropped response's body ran past max_discard; the connection was closed",
                ))
            }
            Some(left) => *left -= len,
            None => {
                // The caller left since the last frame: this one counts as discarded too.
                if self.shared.push_frame(slot, frame).is_none() {
                    *discard = Some(self.config.max_discard.saturating_sub(len));
                }
            }
        }
        if trailers {
            return self.end_body(slot, last);
        }
        Ok(Step::Progress)
    }

    /// The front response's body ended.
    fn end_body(&mut self, slot: u32, last: bool) -> Result<Step, Error> {
        self.reader.at = At::Head;
        self.in_flight.pop_front();
        self.shared.finish(slot, Ok(()));
        self.after_response(last).map(|()| Step::Progress)
    }

    /// After a response that said it was the server's last, no later request is answered.
    fn after_response(&mut self, last: bool) -> Result<(), Error> {
        if !last {
            return Ok(());
        }
        self.closing = true;
        if self.in_flight.is_empty() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NotAnswered,
            "the server closes the connection after an earlier response (Connection: close)",
        ))
    }

    /// The server closed its side with the buffer decoded as far as it goes.
    fn at_eof(&mut self) -> Result<(), Error> {
        if let At::Body {
            slot,
            decoder: BodyDecoder::UntilClose,
            last: _,
            ..
        } = self.reader.at
        {
            self.end_body(slot, true)?;
            self.reader.closed_cleanly = self.in_flight.is_empty();
            return Ok(());
        }
        if matches!(self.reader.at, At::Body { .. }) {
            return Err(self.broken_or(Error::new(
                ErrorKind::NotAnswered,
                "the server closed the connection partway through a response body",
            )));
        }
        if !self.reader.buf.is_empty() {
            return Err(Error::new(
                ErrorKind::Incomplete,
                "the server closed the connection partway through a response head",
            ));
        }
        if self.in_flight.is_empty() {
            self.reader.closed_cleanly = true;
            return Ok(());
        }
        Err(self.broken_or(Error::new(
            ErrorKind::NotAnswered,
            "the server closed the connection before answering",
        )))
    }

    /// The write error that came first, when there was one: it says more about why the
    /// server left than the read side's end does.
    fn broken_or(&mut self, error: Error) -> Error {
        match self.writer.take_broken() {
            Some(broken) => Error::new(
                error.kind(),
                format!("{}; before that, {}", error.reason(), broken.reason()),
            ),
            None => error,
        }
    }
}

fn protocol(why: &str) -> Error {
    Error::new(ErrorKind::Protocol, why.to_owned())
}

/// The head handed to the caller: status, version and fields; the body comes by `delivery`.
fn head_of(head: ResponseHead, delivery: Delivery) -> Head {
    let mut response = Response::new(());
    *response.status_mut() = head.status;
    *response.version_mut() = head.version;
    *response.headers_mut() = head.headers;
    if let Some(reason) = head.reason {
        response.extensions_mut().insert(ReasonPhrase(reason));
    }
    let (parts, ()) = response.into_parts();
    Head {
        parts,
        body: delivery,
    }
}
