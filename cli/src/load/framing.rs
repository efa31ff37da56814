//! Response heads and bodies for the load engine, read in place: status, how the body is
//! delimited (RFC 9112 §6.3), whether the server keeps the connection, and the
//! `Server-Timing` queue wait; no `HeaderMap`, no copy.
//!
//! The rules are those of `pipelined::client` (src/proto/response_head.rs in the library): the
//! engine needs only these facts of each response, and building the client's `http::Response`
//! costs more than wrk spends on a whole response (see `super::wire`).

use std::mem::MaybeUninit;

use crate::send::report::timing_of;

/// Longest response head the engine reads; a longer one ends the connection as a protocol
/// error (what `pipelined::client` allows by default).
pub const MAX_HEAD: usize = 64 * 1024;
/// Header fields parsed on the stack; a response with more is refused.
const MAX_FIELDS: usize = 100;

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body: a HEAD answer, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes follow.
    Length(u64),
    Chunked,
    /// The body runs until the server closes.
    UntilClose,
}

/// The facts of one response head.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub status: u16,
    /// Bytes the head took, blank line included.
    pub len: usize,
    pub framing: Framing,
    /// The server will not answer another request on this connection (`Connection: close`,
    /// HTTP/1.0 without keep-alive, a body to the close, or framing that cannot be trusted to
    /// end where the next response starts).
    pub closes: bool,
    /// `Server-Timing: queue;dur=…`, in milliseconds.
    pub hol_wait: Option<f64>,
}

/// Parses the head at the front of `buf`. `Ok(None)`: not complete yet. `Err`: the reason the
/// stream cannot be read further.
pub fn parse_head(buf: &[u8], request_was_head: bool) -> Result<Option<Head>, &'static str> {
    // Uninitialised: httparse writes each field it returns, and zeroing 100 would cost more
    // than the parse.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return Ok(None),
        Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err("a response head too large"),
        Err(_) => return Err("not an HTTP/1.x response head"),
    };
    let status = parsed.code.filter(|c| (100..1000).contains(c));
    let status = status.ok_or("a status code outside 100-999")?;
    let mut facts = Facts::default();
    for field in parsed.headers.iter() {
        facts.note(field.name.as_bytes(), field.value)?;
    }
    let hol_wait = timing_of(facts.server_timing.into_iter().flatten()).map(|t| t.queue);
    let (framing, untrusted) = facts.framing(status, request_was_head)?;
    let http_1_0 = parsed.version == Some(0);
    // HTTP/1.0 with Transfer-Encoding "ought to be handled as faulty" (RFC 9112 §6.1).
    let te_on_1_0 = http_1_0 && facts.transfer_encoding;
    let keeps_alive = !facts.close && (!http_1_0 || facts.keep_alive);
    let closes = untrusted || te_on_1_0 || framing == Framing::UntilClose || !keeps_alive;
    Ok(Some(Head {
        status,
        len,
        framing,
        closes,
        hol_wait,
    }))
}

/// What the framing and keep-alive rules read, gathered in one pass over the fields.
#[derive(Default)]
struct Facts<'a> {
    /// The one Content-Length every value and list member agrees on.
    length: Option<u64>,
    transfer_encoding: bool,
    /// The last member of the last Transfer-Encoding value is `chunked`.
    chunked_last: bool,
    close: bool,
    keep_alive: bool,
    /// The first two `Server-Timing` values (this project's server sends one; a service
    /// behind it may add its own).
    server_timing: [Option<&'a [u8]>; 2],
}

impl<'a> Facts<'a> {
    fn note(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), &'static str> {
        if name.eq_ignore_ascii_case(b"content-length") {
            for member in value.split(|&b| b == b',') {
                let n = parse_decimal(member.trim_ascii()).ok_or("an invalid Content-Length")?;
                if self.length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length values");
                }
                self.length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encoding = true;
            self.chunked_last = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"server-timing") {
            if let Some(free) = self.server_timing.iter_mut().find(|v| v.is_none()) {
                *free = Some(value);
            }
        }
        Ok(())
    }

    /// How the body is delimited, and whether that framing leaves the connection unusable
    /// after it (RFC 9112 §6.3, in its order).
    fn framing(
        &self,
        status: u16,
        request_was_head: bool,
    ) -> Result<(Framing, bool), &'static str> {
        if request_was_head || status < 200 || status == 204 || status == 304 {
            return Ok((Framing::Empty, false));
        }
        if self.transfer_encoding {
            let framing = if self.chunked_last {
                Framing::Chunked
            } else {
                Framing::UntilClose
            };
            // Both Transfer-Encoding and Content-Length: answer this one, trust nothing after.
            return Ok((framing, self.length.is_some()));
        }
        Ok(match self.length {
            None => (Framing::UntilClose, false),
            Some(0) => (Framing::Empty, false),
            Some(n) => (Framing::Length(n), false),
        })
    }
}

/// A non-empty run of ASCII digits that fits in a `u64`.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

/// Where a chunked body's decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Within a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data, before its CRLF.
    DataEnd,
    /// After the last chunk: trailer fields, then a blank line.
    Trailers,
}

/// What one step of a chunked body's decoding did.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of `buf` used.
    pub used: usize,
    /// Of them, body data.
    pub data: u64,
    /// The body has ended.
    pub done: bool,
}

impl Chunked {
    /// Decodes as much of `buf` as is complete.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded, &'static str> {
        let mut used = 0;
        let mut data = 0;
        loop {
            let rest = &buf[used..];
            match *self {
                Chunked::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        used += len;
                        *self = Chunked::Trailers;
                    }
                    Ok(httparse::Status::Complete((len, size))) => {
                        used += len;
                        *self = Chunked::Data(size);
                    }
                    Ok(httparse::Status::Partial) if rest.len() > MAX_HEAD => {
                        return Err("a chunk-size line too long")
                    }
                    Ok(httparse::Status::Partial) => break,
                    Err(_) => return Err("an invalid chunk size"),
                },
                Chunked::Data(left) => {
                    let take = left.min(rest.len() as u64);
                    if take == 0 {
                        break;
                    }
                    used += take as usize;
                    data += take;
                    *self = if take == left {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left - take)
                    };
                }
                Chunked::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        *self = Chunked::Size;
                    }
                    [] | [b'\r'] => break,
                    _ => return Err("chunk data longer than its size"),
                },
                Chunked::Trailers => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > MAX_HEAD {
                            return Err("trailer fields too long");
                        }
                        break;
                    };
                    used += end + 2;
                    if end == 0 {
                        return Ok(Decoded {
                            used,
                            data,
                            done: true,
                        });
                    }
                }
            }
        }
        Ok(Decoded {
            used,
            data,
            done: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(wire: &str) -> Head {
        parse_head(wire.as_bytes(), false).unwrap().unwrap()
    }

    #[test]
    fn content_length_frames_the_body_and_the_connection_stays() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!");
        assert_eq!(
            (h.status, h.framing, h.closes),
            (200, Framing::Length(13), false)
        );
        assert_eq!(h.len, 39);
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Len", false),
            Ok(None)
        );
    }

    #[test]
    fn bodiless_answers_have_no_body_whatever_their_fields_say() {
        for wire in [
            "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert_eq!(head(wire).framing, Framing::Empty, "{wire:?}");
        }
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(
            h.unwrap().unwrap().framing,
            Framing::Empty,
            "an answer to HEAD"
        );
    }

    #[test]
    fn chunked_wins_over_length_but_nothing_after_is_trusted() {
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((h.framing, h.closes), (Framing::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.closes), (Framing::Chunked, true));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.closes), (Framing::UntilClose, true));
        let h =
            head("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.closes, "Transfer-Encoding on HTTP/1.0");
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_field() {
        assert!(head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").closes);
        assert!(head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").closes);
        let h = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.closes);
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.closes), (Framing::UntilClose, true));
    }

    #[test]
    fn bad_heads_are_refused() {
        for wire in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(parse_head(wire.as_bytes(), false).is_err(), "{wire:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
        assert!(
            parse_head(huge.as_bytes(), false).is_err(),
            "a head past the limit"
        );
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n\r\n");
        assert_eq!(
            h.framing,
            Framing::Length(7),
            "agreeing members are one length"
        );
    }

    #[test]
    fn the_servers_queue_wait_is_read() {
        let h = head(
            "HTTP/1.1 200 OK\r\nServer-Timing: handler;dur=1.5, queue;dur=0.25\r\n\
             Content-Length: 0\r\n\r\n",
        );
        assert_eq!(h.hol_wait, Some(0.25));
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").hol_wait,
            None
        );
    }

    /// A chunked body fed a byte at a time decodes to the same data and end as whole.
    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5;ext=1\r\nHello\r\n8\r\n, World!\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut whole = Chunked::Size;
        let d = whole.decode(wire).unwrap();
        assert_eq!(
            d,
            Decoded {
                used: wire.len() - 4,
                data: 13,
                done: true
            }
        );
        for split in 1..wire.len() - 4 {
            let mut state = Chunked::Size;
            let (mut used, mut data, mut buf) = (0, 0, Vec::new());
            let mut fed = 0;
            loop {
                if fed < wire.len() {
                    let step = split.min(wire.len() - fed);
                    buf.extend_from_slice(&wire[fed..fed + step]);
                    fed += step;
                }
                let d = state.decode(&buf).unwrap();
                buf.drain(..d.used);
                used += d.used;
                data += d.data;
                if d.done {
                    break;
                }
                assert!(fed < wire.len(), "split {split}: ran out before the end");
            }
            assert_eq!((used, data), (wire.len() - 4, 13), "split {split}");
        }
        let mut state = Chunked::Size;
        assert!(
            state.decode(b"3\r\nabcd\r\n").is_err(),
            "data past its size"
        );
        assert!(Chunked::Size.decode(b"zz\r\n").is_err());
    }

    /// A chunk-size line or trailer section with no end in sight is refused once it passes
    /// `MAX_HEAD`, and not a byte before: the connection cannot be read further, and an
    /// unbounded one would grow the read buffer without limit.
    #[test]
    fn endless_chunk_lines_and_trailers_are_refused_past_the_limit() {
        let line = |len: usize| {
            let mut line = b"1;".to_vec();
            line.resize(len, b'a');
            line
        };
        let waiting = || {
            Ok(Decoded {
                used: 0,
                data: 0,
                done: false,
            })
        };
        assert_eq!(Chunked::Size.decode(&line(MAX_HEAD)), waiting());
        assert!(Chunked::Size.decode(&line(MAX_HEAD + 1)).is_err());
        let trailer = vec![b'a'; MAX_HEAD];
        assert_eq!(Chunked::Trailers.decode(&trailer), waiting());
        assert!(Chunked::Trailers
            .decode(&[&trailer[..], b"a"].concat())
            .is_err());
    }
}
