//! Raw HTTP/1.1 on a socket, for tests that pipeline against the binary: requests written as
//! bytes, responses parsed back with httparse (the demo's answers all carry Content-Length).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `GET` for `path`, keep-alive.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// One response as received: its status and headers (names lower-cased).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one whole response from the front of `bytes`: the answer and its length in bytes,
/// or `None` while it is incomplete.
pub fn parse(bytes: &[u8]) -> Option<(Answer, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = res.parse(bytes).expect("a valid response head") else {
        return None;
    };
    let headers: Vec<(String, String)> = res
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).into_owned();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().expect("a numeric Content-Length"));
    if bytes.len() < head + length {
        return None;
    }
    let status = res.code.expect("a status");
    Some((Answer { status, headers }, head + length))
}

/// Every response in `bytes`, in order; panics on a cut-off one.
pub fn parse_all(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (answer, len) = parse(bytes).expect("a whole response");
        out.push(answer);
        bytes = &bytes[len..];
    }
    out
}

/// How long a test waits for the server's next bytes before calling it hung.
const HANG: std::time::Duration = std::time::Duration::from_secs(30);

/// A keep-alive connection that sends raw bytes and reads whole responses.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &str) {
        self.stream
            .write_all(bytes.as_bytes())
            .await
            .expect("write");
    }

    /// Reads until `n` whole responses have arrived.
    pub async fn responses(&mut self, n: usize) -> Vec<Answer> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some((answer, len)) = parse(&self.buf) {
                self.buf.drain(..len);
                out.push(answer);
                continue;
            }
            let mut chunk = [0u8; 16 * 1024];
            // Bounded, so a server that stops answering fails the test instead of hanging it.
            let read = tokio::time::timeout(HANG, self.stream.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no answer within {HANG:?} after {} of {n}", out.len()))
                .expect("read");
            assert!(read > 0, "closed after {} of {n} responses", out.len());
            self.buf.extend_from_slice(&chunk[..read]);
        }
        out
    }
}
