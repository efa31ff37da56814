//! One connection, one write, many responses, over TCP or TLS alike, through
//! `pipelined::client`: its encoder writes the batch and its decoder (the one the project has)
//! reads the answers.
//!
//! The client's connection writes the pipeline while it reads responses, because a long
//! pipeline can fill the server's pipeline and then its socket buffers; a client that only
//! read after it had finished writing would deadlock with a server that has stopped reading
//! (back pressure working as designed). Async on a current-thread runtime: tokio-rustls is
//! async, and the client runs over any stream, TCP or TLS.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use pipelined::client::{Builder, Connection, Error, ErrorKind, ReasonPhrase, ResponseFuture};
use pipelined::http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;

use super::tls::{Tls, Trust};
use super::url::{Scheme, Target};

/// A request's body: the whole `--data`, or nothing.
pub type Body = Full<Bytes>;

/// Bytes a request head may take beyond its method, target and fields: the rest of the
/// request line (` HTTP/1.1`), the blank line, and the `content-length` field the client adds
/// (up to 20 digits).
const HEAD_OVERHEAD: usize = 64;

/// What came back on the connection.
pub struct Exchange {
    /// Complete responses, in arrival order (which is request order).
    pub responses: Vec<Response>,
    /// Every byte received, for `--raw`.
    pub raw: Vec<u8>,
    /// Bytes of requests the socket took.
    pub written: usize,
    /// Why fewer responses than requests arrived.
    pub error: Option<String>,
}

/// One complete response.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    /// The server's reason phrase, as text.
    pub reason: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Since the requests were handed to the connection: when the body's last byte arrived.
    pub arrival: Duration,
}

impl Response {
    /// The reason phrase the server sent.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Every value of field `name`, as text.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = String> + 'a {
        self.headers
            .get_all(name)
            .into_iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// Connects to `target` (with TLS for `https://`, checking the server against `trust`),
/// writes `requests` in one write, and reads their responses. `Err` means nothing was sent:
/// the connection or its TLS handshake could not be made. Everything is bounded by `timeout`
/// from the start.
pub fn exchange(
    target: &Target,
    trust: &Trust,
    requests: Vec<Request<Body>>,
    timeout: Duration,
) -> Result<Exchange, String> {
    let tls = match target.scheme {
        Scheme::Http => None,
        Scheme::Https => Some(Tls::new(trust)?),
    };
    // One connection whose reading and writing take turns: one thread is all it needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let deadline = Instant::now() + timeout;
        let tcp = connect(target, deadline, timeout).await?;
        let limits = Limits {
            target,
            deadline,
            timeout,
        };
        match tls {
            None => Ok(pipeline(tcp, requests, limits).await),
            Some(tls) => {
                let stream = handshake(&tls, tcp, target, deadline, timeout).await?;
                Ok(pipeline(stream, requests, limits).await)
            }
        }
    })
}

/// The TLS handshake on `tcp`, within what is left of the timeout.
pub(crate) async fn handshake(
    tls: &Tls,
    tcp: TcpStream,
    target: &Target,
    deadline: Instant,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, String> {
    let done = match timeout_at(deadline, tls.handshake(tcp, &target.host)).await {
        Ok(done) => done,
        Err(_) => Err(format!("timed out after {}", secs(timeout))),
    };
    done.map_err(|why| format!("TLS handshake with {} failed: {why}", target.authority))
}

/// Tries each address `target` resolves to until one accepts.
pub(crate) async fn connect(
    target: &Target,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?;
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // The batch goes out in one write anyway; Nagle's algorithm could only hold
                // back its last segment (or the TLS Finished) until an ACK, skewing arrivals.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::ErrorKind::TimedOut.into());
                break;
            }
        }
    }
    let why = match last {
        None => format!("no address left to try within {}", secs(timeout)),
        Some(e) => describe(&e, timeout),
    };
    Err(format!("cannot connect to {}: {why}", target.authority))
}

/// Where the exchange goes and when it gives up, for the report's error.
#[derive(Clone, Copy)]
struct Limits<'a> {
    target: &'a Target,
    deadline: Instant,
    timeout: Duration,
}

/// Sends the batch and reads the answers on one stream, TCP or TLS. The exchange ends when
/// the reading does (every answer in, the first one missing, or the deadline); an unfinished
/// write (a server that stopped reading) is dropped with it.
async fn pipeline<S>(stream: S, requests: Vec<Request<Body>>, limits: Limits<'_>) -> Exchange
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let count = requests.len();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let watched = Watched {
        io: stream,
        seen: seen.clone(),
    };
    let (answers, connection) = call_all(watched, requests).await;
    let sent = Instant::now();
    let mut responses = Vec::with_capacity(count);
    let read = read_all(answers, &mut responses, sent);
    let ended = timeout_at(limits.deadline, beside(read, connection)).await;
    let got = responses.len();
    let error = match ended {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(unanswered(
            &failure,
            &responses,
            count,
            &seen.borrow(),
            limits,
        )),
        Err(_) => Some(format!(
            "timed out after {}: {got} of {count} responses arrived",
            secs(limits.timeout)
        )),
    };
    let Seen {
        received, written, ..
    } = seen.take();
    Exchange {
        responses,
        raw: received,
        written,
        error,
    }
}

/// Hands every request to a new client connection over `io` before the connection first
/// runs, so that it encodes them all into one buffer and the socket gets the batch in one
/// write: a place in the pipeline for each, and a write buffer the batch fits in.
async fn call_all<S>(
    io: S,
    requests: Vec<Request<Body>>,
) -> (Vec<ResponseFuture>, Connection<S, Body>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let builder = Builder::new()
        .pipeline_depth(requests.len())
        .max_write_buffer(batch_bytes(&requests))
        // `send` shows what a server does with a pipeline written at once, POSTs included (it
        // always has): a POST waits for no earlier answer, nor a request for a POST's.
        .pipeline_unsafe(true);
    let (mut send, connection) = builder.handshake(io);
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        // Never waits: there is a place for every request, and the connection has not run.
        // Were it to fail, `call` answers the request with that error, reported as any other.
        let _ = send.ready().await;
        answers.push(tower::Service::call(&mut send, request));
    }
    (answers, connection)
}

/// At least the bytes the client encodes for `requests`: each method, target and field as
/// written (`Host` among the fields: `send` always sets it), each body, and [`HEAD_OVERHEAD`]
/// for the rest of each head.
fn batch_bytes(requests: &[Request<Body>]) -> usize {
    requests
        .iter()
        .map(|request| {
            let target = request
                .uri()
                .path_and_query()
                .map_or(1, |p| p.as_str().len());
            let fields: usize = request
                .headers()
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len() + ": \r\n".len())
                .sum();
            let body = request.body().size_hint().exact().unwrap_or(0) as usize;
            request.method().as_str().len() + target + fields + body + HEAD_OVERHEAD
        })
        .sum()
}

/// Runs the connection while `read` reads the answers; the exchange ends when the reading
/// does. How the connection ended needs no look of its own: each request it left unanswered
/// says so in its error, and the stream saw how reading ended.
async fn beside<R, S>(read: R, connection: Connection<S, Body>) -> R::Output
where
    R: Future,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connection = async {
        let _ = connection.await;
        std::future::pending::<std::convert::Infallible>().await
    };
    tokio::select! {
        out = read => out,
        never = connection => match never {},
    }
}

/// The first request without a whole response, and what the client said about it.
struct Failure {
    error: Error,
    /// The head had arrived: the body is what went wrong.
    in_body: bool,
}

/// Awaits each answer in request order and reads its body to the end, noting when the end
/// arrived. Stops at the first request that got no whole response.
async fn read_all(
    answers: Vec<ResponseFuture>,
    responses: &mut Vec<Response>,
    sent: Instant,
) -> Result<(), Failure> {
    for answer in answers {
        let (head, body) = answer
            .await
            .map_err(|error| Failure {
                error,
                in_body: false,
            })?
            .into_parts();
        let body = body.collect().await.map_err(|error| Failure {
            error,
            in_body: true,
        })?;
        // The client keeps a phrase only when it is not the status code's standard one.
        let reason = match head.extensions.get::<ReasonPhrase>() {
            Some(own) => String::from_utf8_lossy(own.as_bytes()).into_owned(),
            None => head.status.canonical_reason().unwrap_or("").to_owned(),
        };
        responses.push(Response {
            status: head.status,
            reason,
            headers: head.headers,
            body: body.to_bytes(),
            arrival: sent.elapsed(),
        });
    }
    Ok(())
}

/// Why the response after `responses` did not arrive, as one line: what was wrong with it,
/// or how the connection ended before it.
fn unanswered(
    failure: &Failure,
    responses: &[Response],
    count: usize,
    seen: &Seen,
    limits: Limits<'_>,
) -> String {
    let got = responses.len();
    let error = &failure.error;
    match error.kind() {
        ErrorKind::Protocol => format!("response {} of {count}: {error}", got + 1),
        // After a request that asked to close (`-H 'Connection: close'`), nothing is written.
        ErrorKind::NotSent => format!(
            "{got} of {count} responses arrived; request {} was {error}",
            got + 1
        ),
        ErrorKind::NotAnswered | ErrorKind::Incomplete | ErrorKind::Io => {
            ended(failure, responses, count, seen.read_error.as_ref(), limits)
        }
        _ => format!(
            "request {}: {error} ({got} of {count} responses arrived)",
            got + 1
        ),
    }
}

/// How the connection ended with `responses` of `count` in, as the stream saw it (a reset is
/// named even when the client saw a failed write first), and where in the next response.
fn ended(
    failure: &Failure,
    responses: &[Response],
    count: usize,
    read_error: Option<&io::Error>,
    limits: Limits<'_>,
) -> String {
    let got = responses.len();
    match read_error {
        Some(e) if is_reset(e) => format!(
            "server closed the connection abruptly (reset) after {got} of {count} responses"
        ),
        // A TLS peer that closes without close_notify: the client takes it as the close it
        // would be on plain TCP, and so does the report.
        Some(e) if e.kind() != io::ErrorKind::UnexpectedEof => format!(
            "reading from {}: {} ({got} of {count} responses arrived)",
            limits.target.authority,
            describe(e, limits.timeout)
        ),
        _ => {
            let closed = format!("server closed the connection after {got} of {count} responses");
            match (failure.error.kind(), failure.in_body) {
                (ErrorKind::Incomplete, false) => closed + ", partway through the next one's head",
                (ErrorKind::Incomplete, true) => closed + ", partway through the next one's body",
                _ => closed + &asked_to_close(responses),
            }
        }
    }
}

/// Names the response that announced the close, if one did: the usual reason a server stops
/// early (a `-H 'Connection: close'`, or an error that ends the connection).
fn asked_to_close(responses: &[Response]) -> String {
    let said_close = |r: &Response| {
        r.header_values("connection")
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    };
    match responses.iter().position(said_close) {
        Some(i) => format!(" (response {} said Connection: close)", i + 1),
        None => String::new(),
    }
}

/// What crossed the stream, for the report.
#[derive(Default)]
struct Seen {
    /// Every byte read, for `--raw`.
    received: Vec<u8>,
    /// Bytes the stream took, for the report's first line.
    written: usize,
    /// The error reading ended with, if it did.
    read_error: Option<io::Error>,
}

/// The client's stream with what crosses it noted in [`Seen`]: above TLS, so it sees HTTP,
/// not records.
struct Watched<S> {
    io: S,
    seen: Rc<RefCell<Seen>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        let mut seen = self.seen.borrow_mut();
        match &read {
            Poll::Ready(Ok(())) => seen.received.extend_from_slice(&buf.filled()[before..]),
            Poll::Ready(Err(e)) => seen.read_error = Some(io::Error::new(e.kind(), e.to_string())),
            Poll::Pending => {}
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.seen.borrow_mut().written += n;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

pub(crate) fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A short lowercase reason, without the "(os error 111)" noise.
fn describe(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("timed out after {}", secs(timeout))
        }
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        _ => {
            let text = e.to_string();
            match text.split_once(" (os error") {
                Some((reason, _)) => reason.to_lowercase(),
                None => text,
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// The client's socket, counting the writes made to it. Vectored, like a TCP socket, so
    /// TLS records handed over together count as the one write they would be.
    struct Counted {
        io: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let written = Pin::new(&mut self.io).poll_write(cx, buf);
            if matches!(written, Poll::Ready(Ok(_))) {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            written
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            self.poll_write(cx, &joined)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    fn server_config() -> ServerConfig {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key.into())
            .unwrap()
    }

    /// Reads request heads (bodiless requests) until `count` are in; returns the bytes read.
    async fn read_heads<S: AsyncRead + Unpin>(io: &mut S, count: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < count {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed early");
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// ~360 KB of requests, 23 TLS records: rustls' default 64 KiB buffer would hand them to
    /// the socket in six writes, and the client's default 64 KiB write buffer would encode
    /// them in six pieces.
    #[tokio::test]
    async fn a_large_batch_leaves_tls_in_one_socket_write() {
        let count = 3000;
        let requests: Vec<Request<Body>> = (0..count)
            .map(|i| {
                Request::get(format!("/{i:0>96}"))
                    .header(http::header::HOST, "x")
                    .body(Body::default())
                    .unwrap()
            })
            .collect();
        // Room for the whole batch, so the socket never pushes back and the count is exact.
        let (client_io, server_io) = tokio::io::duplex(4 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let counted = writes.clone();
        // The client's writes are counted when the whole batch is in, before any answer (after
        // the last one the client closes the connection, which TLS says in a record of its own).
        let server = tokio::spawn(async move {
            let acceptor = TlsAcceptor::from(Arc::new(server_config()));
            let mut tls = acceptor.accept(server_io).await.unwrap();
            let got = read_heads(&mut tls, count).await;
            let writes = counted.load(Ordering::SeqCst);
            let answers = b"HTTP/1.1 204 No Content\r\n\r\n".repeat(count);
            tls.write_all(&answers).await.unwrap();
            tls.flush().await.unwrap();
            (got, writes)
        });
        let io = Counted {
            io: client_io,
            writes: writes.clone(),
        };
        let tls = Tls::new(&Trust::Anything).unwrap();
        let stream = tls.handshake(io, "localhost").await.unwrap();
        let before = writes.load(Ordering::SeqCst);
        let target = Target::parse("https://localhost").unwrap();
        let limits = Limits {
            target: &target,
            deadline: Instant::now() + Duration::from_secs(60),
            timeout: Duration::from_secs(60),
        };

        let exchange = pipeline(stream, requests, limits).await;

        assert_eq!(exchange.error, None);
        assert_eq!(exchange.responses.len(), count);
        let (got, writes) = server.await.unwrap();
        assert_eq!(writes - before, 1);
        assert_eq!(
            got.len(),
            exchange.written,
            "the server decrypted the batch whole"
        );
        assert!(got.starts_with(format!("GET /{:0>96} HTTP/1.1\r\n", 0).as_bytes()));
    }
}
