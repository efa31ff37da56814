//! Request heads onto the wire (RFC 9112 §3), and what each request means for the requests
//! behind it on the connection.

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, Method, Request};
use http_body::Body;

use super::error::{Error, ErrorKind};

/// How a request's body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Nothing after the head.
    Empty,
    /// `Content-Length: n`, then exactly n bytes (the body's exact size hint).
    Length(u64),
    /// Chunked: the body's size is not known in advance.
    Chunked,
}

/// What the connection needs to know about a request once it is written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Written {
    pub(crate) body: BodyKind,
    /// A HEAD request: its answer has no body whatever the answer's fields say.
    pub(crate) head: bool,
    /// Safe to send again when unanswered (RFC 9110 §9.2.2).
    pub(crate) idempotent: bool,
    /// The request asked the server to close after answering it: nothing is written after it.
    pub(crate) closes: bool,
}

/// Whether `method` is idempotent (RFC 9110 §9.2.2): sent twice, it means what it meant once.
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Checks that this client can send `request`; nothing is written yet.
pub(crate) fn check<B>(request: &Request<B>) -> Result<(), Error> {
    if request.method() == Method::CONNECT || request.headers().contains_key(UPGRADE) {
        return Err(Error::new(
            ErrorKind::Request,
            "CONNECT and protocol upgrades are not supported by the pipelining client",
        ));
    }
    if request.uri().authority().is_none() && !request.headers().contains_key(HOST) {
        return Err(Error::new(
            ErrorKind::Request,
            "the request has no Host: give the URI an authority or set the Host header",
        ));
    }
    Ok(())
}

/// Appends `request`'s head to `out`, with the framing its body needs, and says what the
/// connection must remember about it. The caller's own `Content-Length` and
/// `Transfer-Encoding` are replaced by the framing the body's size hint gives, so the bytes
/// that follow the head are always framed the way the head says.
pub(crate) fn head<B: Body>(request: &Request<B>, out: &mut Vec<u8>) -> Written {
    let method = request.method();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = request.headers();
    if !headers.contains_key(HOST) {
        if let Some(authority) = request.uri().authority() {
            field(out, b"host", authority.as_str().as_bytes());
        }
    }
    for (name, value) in headers {
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    let body = body_kind(request.body());
    match body {
        BodyKind::Empty if expects_body(method) => field(out, b"content-length", b"0"),
        BodyKind::Empty => {}
        BodyKind::Length(n) => field(
            out,
            b"content-length",
            itoa::Buffer::new().format(n).as_bytes(),
        ),
        BodyKind::Chunked => field(out, b"transfer-encoding", b"chunked"),
    }
    out.extend_from_slice(b"\r\n");
    Written {
        body,
        head: method == Method::HEAD,
        idempotent: is_idempotent(method),
        closes: asks_close(headers),
    }
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn body_kind<B: Body>(body: &B) -> BodyKind {
    if body.is_end_stream() {
        return BodyKind::Empty;
    }
    match body.size_hint().exact() {
        Some(0) => BodyKind::Empty,
        Some(n) => BodyKind::Length(n),
        None => BodyKind::Chunked,
    }
}

/// Methods whose requests carry content by definition: an empty one says so with
/// `Content-Length: 0` (RFC 9110 §8.6), where a GET says nothing.
fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

fn asks_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{Empty, Full};

    use super::*;

    fn encode<B: Body>(request: Request<B>) -> (String, Written) {
        let mut out = Vec::new();
        let written = head(&request, &mut out);
        (String::from_utf8(out).unwrap(), written)
    }

    #[test]
    fn host_comes_from_the_uri_and_framing_from_the_body() {
        let get = Request::get("http://example.com:8080/a?b=c")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let (wire, written) = encode(get);
        assert_eq!(
            wire,
            "GET /a?b=c HTTP/1.1\r\nhost: example.com:8080\r\n\r\n"
        );
        assert!(written.idempotent && !written.head && !written.closes);

        let post = Request::post("http://h/")
            .header("content-length", "99")
            .body(Full::new(Bytes::from_static(b"abc")))
            .unwrap();
        let (wire, written) = encode(post);
        assert_eq!(
            wire,
            "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\n"
        );
        assert_eq!(written.body, BodyKind::Length(3));
        assert!(!written.idempotent);

        let empty_post = Request::post("http://h/")
            .body(Empty::<Bytes>::new())
            .unwrap();
        assert!(encode(empty_post).0.ends_with("content-length: 0\r\n\r\n"));
    }

    #[test]
    fn a_body_of_unknown_size_is_chunked_and_the_callers_host_wins() {
        let put = Request::put("/x")
            .header("host", "given")
            .header("connection", "keep-alive, close")
            .body(Unknown(Some(Bytes::from_static(b"x"))))
            .unwrap();
        let (wire, written) = encode(put);
        assert_eq!(
            wire,
            "PUT /x HTTP/1.1\r\nhost: given\r\nconnection: keep-alive, close\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
        assert!(written.closes && written.idempotent);
        assert_eq!(written.body, BodyKind::Chunked);
    }

    /// A one-frame body whose size is not known in advance.
    struct Unknown(Option<Bytes>);

    impl Body for Unknown {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
        }
    }

    #[test]
    fn connect_upgrades_and_no_host_are_refused() {
        let connect = Request::connect("http://h:1").body(()).unwrap();
        assert_eq!(check(&connect).unwrap_err().kind(), ErrorKind::Request);
        let upgrade = Request::get("http://h/")
            .header("upgrade", "websocket")
            .body(())
            .unwrap();
        assert_eq!(check(&upgrade).unwrap_err().kind(), ErrorKind::Request);
        let no_host = Request::get("/").body(()).unwrap();
        assert_eq!(check(&no_host).unwrap_err().kind(), ErrorKind::Request);
        let host = Request::get("/").header("host", "h").body(()).unwrap();
        assert!(check(&host).is_ok());
    }
}
