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

#[cfg(test)]
mod tests {
    use super::*;

    /// How decoding stopped.
    #[derive(Debug, PartialEq)]
    enum End {
        Done,
        /// The body ended with a trailer section of this many fields.
        Trailers(usize),
        NeedMore,
        Failed(BodyError),
    }

    /// Feeds `pieces` to a decoder one read at a time, decoding each until it asks for more;
    /// returns the body, how decoding stopped, and the bytes left for the next request.
    fn decode(framing: Framing, max: (u64, usize), pieces: &[&[u8]]) -> (Vec<u8>, End, Vec<u8>) {
        let mut decoder = Decoder::new(framing, max.0, max.1).expect("a framing with a body");
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            let end = loop {
                match decoder.decode(&mut buf) {
                    // An empty piece is never progress: a decoder that yields one would be
                    // called again on the same state forever.
                    Ok(Decoded::Data(data)) if data.is_empty() => panic!("an empty Data piece"),
                    Ok(Decoded::Data(data)) => body.extend_from_slice(&data),
                    Ok(Decoded::NeedMore) => break None,
                    Ok(Decoded::Trailers(map)) => break Some(End::Trailers(map.len())),
                    Ok(Decoded::Done) => break Some(End::Done),
                    Err(e) => break Some(End::Failed(e)),
                }
            };
            if let Some(end) = end {
                return (body, end, buf.to_vec());
            }
        }
        (body, End::NeedMore, buf.to_vec())
    }

    fn chunked(pieces: &[&[u8]]) -> (Vec<u8>, End, Vec<u8>) {
        decode(Framing::Chunked, (100, 100), pieces)
    }

    fn malformed(reason: &'static str) -> End {
        End::Failed(BodyError::Malformed(reason))
    }

    #[test]
    fn a_length_body_ends_at_its_last_byte_across_reads() {
        let (body, end, rest) = decode(Framing::Length(5), (100, 100), &[b"hel", b"loGET"]);
        assert_eq!(
            (&body[..], end, &rest[..]),
            (&b"hello"[..], End::Done, &b"GET"[..])
        );
        let (body, end, _) = decode(Framing::Length(5), (100, 100), &[b"hel"]);
        assert_eq!((&body[..], end), (&b"hel"[..], End::NeedMore));
    }

    #[test]
    fn a_chunked_body_ends_at_its_last_byte() {
        let wire = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nGET";
        let (body, end, rest) = chunked(&[wire]);
        assert_eq!(
            (&body[..], end, &rest[..]),
            (&b"abcde"[..], End::Done, &b"GET"[..])
        );
    }

    /// Every read boundary inside the framing gives the same body: the decoder waits on a
    /// lone CR, and on an empty buffer, instead of judging what it has not seen.
    #[test]
    fn a_chunked_body_split_at_every_byte_decodes_the_same() {
        let wire = b"3\r\nabc\r\n2\r\nde\r\n0\r\nx: y\r\n\r\nGET";
        let pieces: Vec<&[u8]> = wire.chunks(1).collect();
        let (body, end, rest) = chunked(&pieces);
        assert_eq!(
            (&body[..], end, &rest[..]),
            (&b"abcde"[..], End::Trailers(1), &b""[..])
        );
        let (body, end, rest) = chunked(&[b"3\r\nabc", b"\r\n", b"0\r\n", b"\r", b"\nGET"]);
        assert_eq!(
            (&body[..], end, &rest[..]),
            (&b"abc"[..], End::Done, &b"GET"[..])
        );
    }

    #[test]
    fn chunk_data_not_followed_by_crlf_is_refused_at_its_first_byte() {
        let missing = malformed("missing CRLF after chunk data");
        assert_eq!(chunked(&[b"3\r\nabcX"]).1, missing);
        assert_eq!(chunked(&[b"3\r\nabc\rX"]).1, missing);
    }

    /// The limit counts the chunks' sizes together: a body of exactly `max_body` bytes is
    /// whole, one more byte is too large.
    #[test]
    fn the_body_limit_is_inclusive() {
        let wire = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(decode(Framing::Chunked, (5, 100), &[wire]).1, End::Done);
        let over = decode(Framing::Chunked, (4, 100), &[wire]).1;
        assert_eq!(over, End::Failed(BodyError::TooLarge));
    }

    /// The limit counts the whole trailer section, its final CRLF included (`x: y\r\n\r\n` is
    /// 8 bytes), whether it is complete or still arriving; an empty section always fits.
    #[test]
    fn the_trailer_limit_is_inclusive() {
        let too_large = malformed("trailer section too large");
        let wire = b"0\r\nx: y\r\n\r\n";
        assert_eq!(
            decode(Framing::Chunked, (100, 8), &[wire]).1,
            End::Trailers(1)
        );
        assert_eq!(decode(Framing::Chunked, (100, 7), &[wire]).1, too_large);
        let partial = b"0\r\nx: yyy";
        assert_eq!(
            decode(Framing::Chunked, (100, 6), &[partial]).1,
            End::NeedMore
        );
        assert_eq!(decode(Framing::Chunked, (100, 5), &[partial]).1, too_large);
        let empty = decode(Framing::Chunked, (100, 0), &[b"0\r\n", b"\r", b"\n"]);
        assert_eq!(empty.1, End::Done);
    }
}
