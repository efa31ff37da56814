//! Response decoding for the client: heads through `httparse`, bodies framed by
//! Content-Length, chunked coding, or the connection's close (RFC 9112 §6.3).
//!
//! A state machine rather than "parse the buffer again on every read", so a large chunked body
//! arriving in many reads costs one pass, not one pass per read.

use std::time::Duration;

/// Header fields a response may carry; more is treated as a malformed response.
const MAX_HEADERS: usize = 128;

/// One complete response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Field names lowercased, values as sent, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Since the requests were written: when the read that completed this response returned.
    pub arrival: Duration,
}

impl Response {
    /// Every value of field `name` (lowercase), as text.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Where the decoder is within the current response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// This many body bytes still to come.
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    Trailers,
    /// The body runs until the server closes the connection.
    UntilClose,
}

/// Decodes consecutive responses from the bytes of one connection.
pub struct Decoder {
    state: State,
    current: Option<Response>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Head,
            current: None,
        }
    }

    /// Consumes bytes from the front of `buf` and returns the next complete response, if
    /// `buf` holds the rest of it. `head` says the request was a HEAD (a response without a
    /// body whatever its headers say). Interim (1xx) responses are skipped.
    pub fn decode(
        &mut self,
        buf: &mut Vec<u8>,
        head: bool,
        now: Duration,
    ) -> Result<Option<Response>, String> {
        loop {
            match self.state {
                State::Head => {
                    let Some((response, framing, len)) = parse_head(buf, head, now)? else {
                        return Ok(None);
                    };
                    buf.drain(..len);
                    if (100..200).contains(&response.status) && response.status != 101 {
                        continue;
                    }
                    self.current = Some(response);
                    self.state = framing;
                }
                State::Length(0) => return Ok(self.finish(now)),
                State::Length(n) => {
                    let take = n.min(buf.len() as u64);
                    self.take_body(buf, take as usize);
                    self.state = State::Length(n - take);
                    if buf.is_empty() && take < n {
                        return Ok(None);
                    }
                }
                State::ChunkSize => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        buf.drain(..len);
                        self.state = State::Trailers;
                    }
                    Ok(httparse::Status::Complete((len, size))) => {
                        buf.drain(..len);
                        self.state = State::ChunkData(size);
                    }
                    Ok(httparse::Status::Partial) => return Ok(None),
                    Err(_) => return Err("a malformed chunk size".to_owned()),
                },
                State::ChunkData(0) => self.state = State::ChunkEnd,
                State::ChunkData(n) => {
                    let take = n.min(buf.len() as u64);
                    self.take_body(buf, take as usize);
                    self.state = State::ChunkData(n - take);
                    if buf.is_empty() && take < n {
                        return Ok(None);
                    }
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".to_owned());
                    }
                    buf.drain(..2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(buf, &mut fields) {
                        Ok(httparse::Status::Complete((len, _))) => {
                            buf.drain(..len);
                            return Ok(self.finish(now));
                        }
                        Ok(httparse::Status::Partial) => return Ok(None),
                        Err(e) => return Err(format!("malformed trailers: {e}")),
                    }
                }
                State::UntilClose => {
                    let all = buf.len();
                    self.take_body(buf, all);
                    return Ok(None);
                }
            }
        }
    }

    /// The connection has closed: a body delimited by the close is now complete. `Ok(None)`
    /// means the close fell between responses.
    pub fn end(&mut self, buf: &[u8], now: Duration) -> Result<Option<Response>, String> {
        match self.state {
            State::UntilClose => Ok(self.finish(now)),
            State::Head if buf.is_empty() => Ok(None),
            State::Head => Err("partway through the next one's head".to_owned()),
            _ => Err("partway through the next one's body".to_owned()),
        }
    }

    fn take_body(&mut self, buf: &mut Vec<u8>, n: usize) {
        if let Some(response) = &mut self.current {
            response.body.extend_from_slice(&buf[..n]);
        }
        buf.drain(..n);
    }

    fn finish(&mut self, now: Duration) -> Option<Response> {
        self.state = State::Head;
        let mut response = self.current.take()?;
        response.arrival = now;
        Some(response)
    }
}

/// Parses a response head at the front of `buf`: the response so far, how its body is
/// framed, and the head's length.
fn parse_head(
    buf: &[u8],
    head: bool,
    now: Duration,
) -> Result<Option<(Response, State, usize)>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP/1.x response head ({e})")),
    };
    let status = parsed.code.unwrap_or_default();
    let response = Response {
        status,
        reason: parsed.reason.unwrap_or_default().to_owned(),
        headers: parsed
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
        arrival: now,
    };
    let framing = framing(&response, head)?;
    Ok(Some((response, framing, len)))
}

/// How the body that follows this head is delimited (RFC 9112 §6.3).
fn framing(response: &Response, head: bool) -> Result<State, String> {
    if head || (100..200).contains(&response.status) || matches!(response.status, 204 | 304) {
        return Ok(State::Length(0));
    }
    let codings: Vec<String> = response.header_values("transfer-encoding").collect();
    if !codings.is_empty() {
        let last = codings.join(",");
        let last = last.rsplit(',').next().unwrap_or_default().trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            State::ChunkSize
        } else {
            State::UntilClose
        });
    }
    let mut length = None;
    for value in response.header_values("content-length") {
        for n in value.split(',') {
            let n = n.trim();
            let n = n
                .parse::<u64>()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("a bad Content-Length `{value}`"))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length values".to_owned());
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(State::UntilClose, State::Length))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` split into pieces of `step` bytes; returns the bodies and the end result.
    fn decode_all(wire: &[u8], heads: &[bool], step: usize) -> (Vec<Vec<u8>>, Result<(), String>) {
        let mut decoder = Decoder::new();
        let mut buf = Vec::new();
        let mut bodies = Vec::new();
        let mut pieces = wire.chunks(step.max(1));
        loop {
            let head = heads.get(bodies.len()).copied().unwrap_or(false);
            match decoder.decode(&mut buf, head, Duration::ZERO) {
                Ok(Some(r)) => {
                    bodies.push(r.body);
                    continue;
                }
                Ok(None) => {}
                Err(e) => return (bodies, Err(e)),
            }
            match pieces.next() {
                Some(piece) => buf.extend_from_slice(piece),
                None => {
                    return match decoder.end(&buf, Duration::ZERO) {
                        Ok(Some(r)) => {
                            bodies.push(r.body);
                            (bodies, Ok(()))
                        }
                        Ok(None) => (bodies, Ok(())),
                        Err(e) => (bodies, Err(e)),
                    }
                }
            }
        }
    }

    #[test]
    fn every_framing_in_any_split() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\n\
            HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
            HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n\
            HTTP/1.1 200 OK\r\n\r\nuntil the end";
        let heads = [false, true, false, false, false];
        for step in 1..wire.len() {
            let (bodies, end) = decode_all(wire, &heads, step);
            assert_eq!(end, Ok(()), "step {step}");
            let expected: [&[u8]; 5] = [b"hello", b"", b"", b"abcde", b"until the end"];
            assert_eq!(bodies, expected, "step {step}");
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
                "next one's body",
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-le", "next one's head"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x response"),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
                "conflicting",
            ),
        ];
        for (wire, expected) in cases {
            let (_, end) = decode_all(wire, &[], wire.len());
            let err = end.unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
