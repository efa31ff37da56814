//! Response heads, for the client (`crate::client`): the status line and fields through
//! httparse (RFC 9112 §4, §5), and how the body after them is framed (§6.3). The body itself is
//! decoded by the server's own body decoder ([`super::decode`]) where the grammar is the same
//! (Content-Length, chunked with extensions and trailers); only a body delimited by the
//! connection's close is the client's alone.
//!
//! Field values are taken from the buffer without a copy and without a second check
//! ([`Validated`], as the request parser does).

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, StatusCode, Version};

use super::trusted::Validated;

/// How the body after a response head is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body: a HEAD answer, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// The body runs until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    /// The server's reason phrase, when it is not the status code's standard one (most
    /// servers send the standard one, which costs nothing to keep).
    pub(crate) reason: Option<Bytes>,
    pub(crate) framing: BodyFraming,
    /// The server will not answer another request on this connection: it said
    /// `Connection: close`, it speaks HTTP/1.0 without keep-alive, the body runs to the
    /// close, or its framing cannot be trusted to end where the next response starts
    /// (Transfer-Encoding beside Content-Length, §6.3 point 3; Transfer-Encoding on
    /// HTTP/1.0, §6.1).
    pub(crate) closes: bool,
}

/// Why a response head was refused; the connection cannot be read further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The head (or its field count) is over the client's limit.
    TooLarge,
    /// Not a response head the grammar allows; the reason says how.
    Malformed(&'static str),
}

/// Parses response heads off the front of a connection's read buffer; keeps the header
/// positions it records between heads so that parsing allocates nothing after warm-up.
#[derive(Debug, Default)]
pub(crate) struct HeadParser {
    validated: Validated,
}

/// Header fields parsed on the stack; a response with more is refused as too large.
const MAX_FIELDS: usize = 100;

impl HeadParser {
    /// Takes the next response head off the front of `buf`. `Ok(None)`: the head is not
    /// complete yet (and still within `max_len`). `request_was_head`: the request was HEAD,
    /// whose answer has no body whatever its fields say.
    pub(crate) fn parse(
        &mut self,
        buf: &mut BytesMut,
        max_len: usize,
        request_was_head: bool,
    ) -> Result<Option<ResponseHead>, HeadError> {
        // Uninitialised: zeroing 100 fields on every call cost ~300 instructions a response
        // (callgrind, loadtest/client.sh); httparse writes each field it returns.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
            Ok(httparse::Status::Complete(len)) if len > max_len => {
                return Err(HeadError::TooLarge)
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > max_len => {
                return Err(HeadError::TooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(_) => return Err(HeadError::Malformed("not an HTTP/1.x response head")),
        };
        let status = parsed
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .ok_or(HeadError::Malformed("a status code outside 100-999"))?;
        let version = match parsed.version {
            Some(0) => Version::HTTP_10,
            _ => Version::HTTP_11,
        };
        // A phrase httparse found is a slice of `buf`; an absent or empty one is not kept.
        let reason_range = parsed
            .reason
            .filter(|r| !r.is_empty() && status.canonical_reason() != Some(*r))
            .map(|r| {
                let at = r.as_ptr() as usize - buf.as_ptr() as usize;
                at..at + r.len()
            });
        self.validated.record(buf, parsed.headers);
        let head: Bytes = buf.split_to(len).freeze();
        let reason = reason_range.map(|range| head.slice(range));
        let mut headers = HeaderMap::with_capacity(self.validated.count());
        let mut facts = Facts::default();
        for (name, value, _) in self.validated.fields(&head) {
            let name = HeaderName::from_bytes(name)
                .map_err(|_| HeadError::Malformed("an invalid field name"))?;
            facts.note(&name, value.as_bytes());
            headers.append(name, value);
        }
        let (framing, untrusted) = facts.framing(status, request_was_head)?;
        // An HTTP/1.0 message with Transfer-Encoding: its framing "ought to be handled as
        // faulty", and the connection closed after it (RFC 9112 §6.1).
        let te_on_1_0 = version == Version::HTTP_10 && facts.transfer_encoding;
        // A body that runs to the close is the last thing on this connection, whatever the
        // fields say: nothing more is written behind it.
        let to_the_close = framing == BodyFraming::UntilClose;
        let closes = untrusted || te_on_1_0 || to_the_close || !facts.keeps_alive(version);
        Ok(Some(ResponseHead {
            status,
            version,
            headers,
            reason,
            framing,
            closes,
        }))
    }
}

/// What the framing and keep-alive rules read, gathered while the map is built: one look at
/// each field instead of a map lookup per rule afterwards (~300 instructions a response).
#[derive(Default)]
struct Facts {
    /// Content-Length: the one length every value and list member agrees on, or why not.
    /// Judged only when the length frames the body (§6.3 point 5).
    length: Option<Result<u64, &'static str>>,
    transfer_encoding: bool,
    /// The last member of the last Transfer-Encoding value is `chunked`.
    chunked_last: bool,
    close: bool,
    keep_alive: bool,
}

impl Facts {
    fn note(&mut self, name: &HeaderName, value: &[u8]) {
        if name == CONTENT_LENGTH {
            for member in value.split(|&b| b == b',') {
                self.length = Some(match (self.length, parse_decimal(member.trim_ascii())) {
                    (Some(Err(why)), _) => Err(why),
                    (_, None) => Err("an invalid Content-Length"),
                    (Some(Ok(l)), Some(n)) if l != n => Err("conflicting Content-Length values"),
                    (_, Some(n)) => Ok(n),
                });
            }
        } else if name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            self.chunked_last = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == CONNECTION {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    /// How the body is delimited, and whether that framing leaves the connection unusable
    /// after it (RFC 9112 §6.3, in its order).
    fn framing(
        &self,
        status: StatusCode,
        request_was_head: bool,
    ) -> Result<(BodyFraming, bool), HeadError> {
        if request_was_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok((BodyFraming::Empty, false));
        }
        if self.transfer_encoding {
            let framing = if self.chunked_last {
                BodyFraming::Chunked
            } else {
                BodyFraming::UntilClose
            };
            // Transfer-Encoding overrides Content-Length, but a message with both "ought to be
            // handled as an error" (§6.3 point 3): answer this one, trust nothing after it.
            return Ok((framing, self.length.is_some()));
        }
        Ok(match self.length {
            None => (BodyFraming::UntilClose, false),
            Some(Err(why)) => return Err(HeadError::Malformed(why)),
            Some(Ok(0)) => (BodyFraming::Empty, false),
            Some(Ok(n)) => (BodyFraming::Length(n), false),
        })
    }

    /// Whether the server keeps the connection open after this response (RFC 9112 §9.3):
    /// HTTP/1.1 unless it says `close`, HTTP/1.0 only if it says `keep-alive`.
    fn keeps_alive(&self, version: Version) -> bool {
        !self.close && (version == Version::HTTP_11 || self.keep_alive)
    }
}

/// A non-empty run of ASCII digits as a number that fits in a `u64`.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wire: &str, head: bool) -> Result<Option<ResponseHead>, HeadError> {
        let mut buf = BytesMut::from(wire);
        HeadParser::default().parse(&mut buf, 1024, head)
    }

    fn framing_of(wire: &str) -> BodyFraming {
        parse(wire, false).unwrap().unwrap().framing
    }

    #[test]
    fn the_head_comes_off_the_front_and_the_body_stays() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi");
        let head = HeadParser::default()
            .parse(&mut buf, 1024, false)
            .unwrap()
            .unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers["x-a"], "b");
        assert_eq!(head.framing, BodyFraming::Length(2));
        assert!(!head.closes);
        assert_eq!(head.reason, None, "the standard phrase is not kept");
        assert_eq!(&buf[..], b"hi");
    }

    #[test]
    fn a_reason_phrase_of_the_servers_own_is_kept() {
        let head = parse(
            "HTTP/1.1 200 Fine Thanks\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert_eq!(head.unwrap().unwrap().reason.unwrap(), "Fine Thanks");
        for none in ["HTTP/1.1 404 \r\n", "HTTP/1.1 404\r\n"] {
            let head = parse(&format!("{none}content-length: 0\r\n\r\n"), false);
            assert_eq!(head.unwrap().unwrap().reason, None, "{none:?}");
        }
    }

    #[test]
    fn every_framing_of_section_6_3() {
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\n\r\n"),
            BodyFraming::UntilClose
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 204 No\r\ncontent-length: 5\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 304 No\r\ncontent-length: 5\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 103 Hints\r\nlink: x\r\n\r\n"),
            BodyFraming::Empty
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\ncontent-length: 7\r\n\r\n"),
            BodyFraming::Length(7)
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n"),
            BodyFraming::Chunked
        );
        assert_eq!(
            framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n"),
            BodyFraming::UntilClose
        );
        let head = parse("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true);
        assert_eq!(head.unwrap().unwrap().framing, BodyFraming::Empty);
    }

    #[test]
    fn close_is_read_from_the_version_and_the_connection_field() {
        let closes = |wire| parse(wire, false).unwrap().unwrap().closes;
        assert!(!closes("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(closes(
            "HTTP/1.1 200 OK\r\nconnection: x, Close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(closes("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!closes(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(closes(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"
        ));
        assert!(closes(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn bad_heads_are_refused_with_a_reason() {
        fn malformed(wire: &str) -> &'static str {
            match parse(wire, false) {
                Err(HeadError::Malformed(why)) => why,
                other => panic!("{wire:?}: {other:?}"),
            }
        }
        assert_eq!(
            malformed("SSH-2.0-OpenSSH\r\n\r\n"),
            "not an HTTP/1.x response head"
        );
        assert_eq!(
            malformed("HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n"),
            "conflicting Content-Length values"
        );
        for bad in ["+1", "-1", "0x1", "", "1 1", "99999999999999999999"] {
            let wire = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert_eq!(malformed(&wire), "an invalid Content-Length", "{bad:?}");
        }
    }

    #[test]
    fn a_head_over_the_limit_is_refused_complete_or_not() {
        let long = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(2000));
        assert_eq!(parse(&long, false).unwrap_err(), HeadError::TooLarge);
        assert_eq!(
            parse(&long[..1500], false).unwrap_err(),
            HeadError::TooLarge
        );
        assert!(parse(&long[..500], false).unwrap().is_none());
        let many: String = (0..=MAX_FIELDS).map(|i| format!("x{i}: y\r\n")).collect();
        let wire = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        let mut buf = BytesMut::from(wire.as_str());
        let refused = HeadParser::default().parse(&mut buf, 1 << 20, false);
        assert_eq!(refused.unwrap_err(), HeadError::TooLarge);
    }
}
