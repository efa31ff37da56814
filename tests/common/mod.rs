//! Test support: a server on 127.0.0.1:0 and a raw-bytes client that can pipeline (no Rust
//! HTTP client pipelines). Timeouts here only turn a hang into a failure; they never decide
//! what a test asserts.
#![allow(dead_code)]

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use pipelined::{Config, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod reading_stopped;
pub mod unannounced;

/// Marks the panics tests cause on purpose (in handlers, bodies), for [`quiet_expected_panics`].
pub const EXPECTED: &str = "[expected panic]";

/// Keeps deliberate panics (their message holds [`EXPECTED`]) out of the test output; every
/// other panic (a failed assertion) still reaches the default hook.
pub fn quiet_expected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.contains(EXPECTED)) {
                default(info);
            }
        }));
    });
}

/// How long a test waits for bytes before declaring the server hung.
pub const HANG: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds; the deadline only turns a hang into a failure.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A running server; shut down gracefully on [`TestServer::shutdown`] (or dropped with the
/// test's runtime).
pub struct TestServer {
    pub addr: SocketAddr,
    /// Its live counts (open connections, running handlers).
    pub stats: pipelined::ServerStats,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Signals graceful shutdown and waits for the server to return.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        self.stopped().await;
    }

    /// Signals graceful shutdown without waiting (see [`TestServer::stopped`]).
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server to return once its shutdown began.
    pub async fn stopped(self) {
        tokio::time::timeout(HANG, self.handle)
            .await
            .expect("server did not shut down")
            .expect("server task panicked")
            .expect("server returned an error");
    }
}

/// Serves `app` with default limits.
pub async fn serve(app: Router) -> TestServer {
    serve_with(app, Config::default()).await
}

/// Serves `app` with `config`.
pub async fn serve_with(app: Router, config: Config) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn(pipelined::serve(listener, app).config(config))
}

/// Runs `server` (any listener of socket addresses, configured as the test needs) on a task of
/// its own, shut down gracefully by [`TestServer::shutdown`].
pub fn spawn<L>(server: pipelined::Serve<L, Router>) -> TestServer
where
    L: pipelined::Listener<Addr = SocketAddr>,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let server = server.with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let handle = tokio::spawn(server.into_future());
    TestServer {
        addr,
        stats,
        stop: Some(stop),
        handle,
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True when the response says the connection closes after it.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A raw client connection.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    /// Writes all of `bytes` in one write call.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Half-closes: no more requests, responses still readable.
    pub async fn shutdown_write(&mut self) {
        self.stream.shutdown().await.unwrap();
    }

    /// Reads one response to a non-HEAD request. Panics on EOF.
    pub async fn response(&mut self) -> RawResponse {
        self.try_response(false)
            .await
            .expect("connection closed before a response")
    }

    /// Reads one response to a HEAD request (no body follows the head).
    pub async fn head_response(&mut self) -> RawResponse {
        self.try_response(true)
            .await
            .expect("connection closed before a response")
    }

    /// Reads `n` responses to non-HEAD requests.
    pub async fn responses(&mut self, n: usize) -> Vec<RawResponse> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.response().await);
        }
        out
    }

    /// Reads one response, or `None` if the server closed the connection cleanly first.
    pub async fn try_response(&mut self, head: bool) -> Option<RawResponse> {
        let (status, headers, head_len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut res = httparse::Response::new(&mut fields);
            match res.parse(&self.buf).expect("malformed response head") {
                httparse::Status::Complete(len) => {
                    let headers = res
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (res.code.unwrap(), headers, len);
                }
                httparse::Status::Partial => {
                    if self.fill().await == 0 {
                        assert!(self.buf.is_empty(), "EOF inside a response head");
                        return None;
                    }
                }
            }
        };
        self.buf.advance(head_len);
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status < 200 || status == 204 || status == 304 {
            return Some(response);
        }
        if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("bad content-length");
            while self.buf.len() < len {
                assert!(self.fill().await > 0, "EOF inside a body");
            }
            response.body = self.buf.split_to(len).to_vec();
        } else if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.chunked().await;
        } else {
            while self.fill().await > 0 {}
            response.body = self.buf.split().to_vec();
        }
        Some(response)
    }

    /// True when the server has closed the connection (EOF with nothing more to read).
    pub async fn is_closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await == 0
    }

    async fn chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let (len, size) = loop {
                match httparse::parse_chunk_size(&self.buf).expect("bad chunk size") {
                    httparse::Status::Complete(found) => break found,
                    httparse::Status::Partial => {
                        assert!(self.fill().await > 0, "EOF inside a chunk size")
                    }
                }
            };
            self.buf.advance(len);
            let size = size as usize;
            while self.buf.len() < size + 2 {
                assert!(self.fill().await > 0, "EOF inside a chunk");
            }
            if size == 0 {
                // No trailers expected from the demo routes: the last chunk ends with CRLF.
                assert_eq!(&self.buf[..2], b"\r\n", "trailers not expected");
                self.buf.advance(2);
                return body;
            }
            body.extend_from_slice(&self.buf[..size]);
            assert_eq!(
                &self.buf[size..size + 2],
                b"\r\n",
                "chunk not ended by CRLF"
            );
            self.buf.advance(size + 2);
        }
    }

    async fn fill(&mut self) -> usize {
        self.buf.reserve(16 * 1024);
        tokio::time::timeout(HANG, self.stream.read_buf(&mut self.buf))
            .await
            .expect("server hung: no bytes within the hang limit")
            .unwrap_or(0)
    }
}

/// `GET path` with a Host header.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// `method path` with a Content-Length body.
pub fn with_body(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}
