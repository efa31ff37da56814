//! Request-body framing: `Content-Length` and chunked (RFC 9112 §6.3, §7.1).
//!
//! The decoder takes bytes off the front of the connection's read buffer and never reads past
//! the end of the body, so whatever the handler does with the body, the next request starts at
//! exactly the right byte (no desync, no smuggling).

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::chunk;
use super::request::Framing;
use crate::body::BodyError;

/// Longest chunk-size line (size plus extensions) we buffer; extensions carry nothing we use,
/// so a long line is only a way to make us buffer.
const MAX_CHUNK_LINE: usize = 4096;

/// Trailer fields parsed on the stack; more is a malformed body.
const MAX_TRAILERS: usize = 32;

/// One step of decoding.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// Body bytes for the handler.
    Data(Bytes),
    /// The chunked trailer section; the body is complete.
    Trailers(HeaderMap),
    /// The buffer holds no further body bytes: read more from the socket.
    NeedMore,
    /// The body is complete.
    Done,
}

#[derive(Debug)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkDataEnd,
    Trailers,
    Done,
}

/// Decodes one request body.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    /// Body bytes seen so far, checked against `max_body`.
    received: u64,
    max_body: u64,
    max_trailer_bytes: usize,
}

impl Decoder {
    /// A decoder for `framing`, or `None` when there is no body.
    pub(crate) fn new(framing: Framing, max_body: u64, max_trailer_bytes: usize) -> Option<Self> {
        let state = match framing {
            Framing::Empty => return None,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
        };
        Some(Decoder {
            state,
            received: 0,
            max_body,
            max_trailer_bytes,
        })
    }

    /// Takes the next piece of the body off the front of `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        loop {
            match self.state {
                State::Done => return Ok(Decoded::Done),
                State::Length(remaining) | State::ChunkData(remaining) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = remaining.min(buf.len() as u64);
                    let left = remaining - n;
                    self.state = match self.state {
                        State::Length(_) if left == 0 => State::Done,
                        State::Length(_) => State::Length(left),
                        _ if left == 0 => State::ChunkDataEnd,
                        _ => State::ChunkData(left),
                    };
                    return Ok(Decoded::Data(buf.split_to(n as usize).freeze()));
                }
                State::ChunkSize => match self.chunk_size(buf)? {
                    Some(0) => self.state = State::Trailers,
                    Some(size) => {
                        self.received = self.received.saturating_add(size);
                        if self.received > self.max_body {
                            return Err(BodyError::TooLarge);
                        }
                        self.state = State::ChunkData(size);
                    }
                    None => return Ok(Decoded::NeedMore),
                },
                State::ChunkDataEnd => {
                    if buf.len() < 2 && buf.first().is_none_or(|&b| b == b'\r') {
                        return Ok(Decoded::NeedMore);
                    }
                    if !buf.starts_with(b"\r\n") {
                        return Err(BodyError::Malformed("missing CRLF after chunk data"));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => return self.trailers(buf),
            }
        }
    }

    /// Parses a chunk-size line (see [`chunk`] for the grammar); `None` when it is not
    /// complete yet.
    fn chunk_size(&self, buf: &mut BytesMut) -> Result<Option<u64>, BodyError> {
        match chunk::parse(buf, MAX_CHUNK_LINE).map_err(BodyError::Malformed)? {
            chunk::Line::Complete { size, len } => {
                buf.advance(len);
                Ok(Some(size))
            }
            chunk::Line::Partial => Ok(None),
        }
    }

    /// Parses the trailer section that ends a chunked body.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, BodyError> {
        if buf.starts_with(b"\r\n") {
            buf.advance(2);
            self.state = State::Done;
            return Ok(Decoded::Done);
        }
        if buf.is_empty() || &buf[..] == b"\r" {
            return Ok(Decoded::NeedMore);
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILERS];
        let invalid = BodyError::Malformed("invalid trailer section");
        match httparse::parse_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete((len, _))) if len > self.max_trailer_bytes => {
                Err(BodyError::Malformed("trailer section too large"))
            }
            Ok(httparse::Status::Complete((len, fields))) => {
                let mut map = HeaderMap::with_capacity(fields.len());
                for field in fields.iter() {
                    let name =
                        HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| invalid)?;
                    let value = HeaderValue::from_bytes(field.value).map_err(|_| invalid)?;
                    map.append(name, value);
                }
                buf.advance(len);
                self.state = State::Done;
                Ok(Decoded::Trailers(map))
            }
            Ok(httparse::Status::Partial) if buf.len() > self.max_trailer_bytes => {
                Err(BodyError::Malformed("trailer section too large"))
            }
            Ok(httparse::Status::Partial) => Ok(Decoded::NeedMore),
            Err(_) => Err(invalid),
        }
    }
}
