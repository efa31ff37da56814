//! HTTPS through `pipelined::tls`: ALPN picks the engine, pipelined responses keep their order
//! across TLS records and leave in few of them, handshakes never hold up the accept loop, and
//! `config_from_pem` says which file is wrong. Certificates are made per run with rcgen; the
//! clients are real ones (hyper's HTTP/1.1 and HTTP/2 clients on tokio-rustls, curl, h2load).

mod common;
#[path = "common/h2frames.rs"]
#[allow(dead_code)]
mod h2frames;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use common::{TestServer, HANG};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pipelined::tls::rustls::pki_types::{CertificateDer, ServerName};
use pipelined::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use pipelined::tls::{config_from_pem, TlsListener};
use pipelined::{get, Body, Listener, PathParams, Protocol, Router};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Body bytes of each `/big/{i}` answer: four full TLS records' worth.
const BIG: usize = 64 * 1024;

/// Most bytes of plaintext in one TLS record (RFC 8446 §5.1).
const RECORD_PLAINTEXT: usize = 16 * 1024;

fn app() -> Router {
    Router::new()
        .route("/plaintext", get(|_req| async { "Hello, World!" }))
        .route("/big/{i}", get(big))
        .route("/peer", get(peer))
}

/// `BIG` bytes: `{i}:` then one letter chosen by `i`, so a response cut short, swapped or
/// mixed with another shows. Even indices finish after a yield (their own task), odd ones on
/// their first poll, so answers finish out of order.
async fn big(req: http::Request<Body>) -> String {
    let params = req.extensions().get::<PathParams>().unwrap();
    let i: usize = params.get("i").unwrap().parse().unwrap();
    if i.is_multiple_of(2) {
        tokio::task::yield_now().await;
    }
    big_body(i)
}

fn big_body(i: usize) -> String {
    let tag = format!("{i}:");
    let letter = char::from(b'a' + (i % 26) as u8);
    let mut body = tag.clone();
    body.extend(std::iter::repeat_n(letter, BIG - tag.len()));
    body
}

/// The `connect_info` this server was given.
async fn peer(req: http::Request<Body>) -> String {
    req.extensions()
        .get::<SocketAddr>()
        .map_or_else(|| "none".to_string(), ToString::to_string)
}

/// A CA, and a server certificate for `localhost` / `127.0.0.1` it signed, as PEM files in a
/// directory of their own (removed on drop).
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pipelined-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();

        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

        let key = rcgen::KeyPair::generate().unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca: ca.der().clone(),
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// A file of this directory holding `contents`.
    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        Arc::new(config_from_pem(self.cert(), self.key()).unwrap())
    }

    /// A client that trusts this CA and offers `alpn` (nothing: no ALPN extension).
    fn client_config(&self, alpn: &[&[u8]]) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        // rustls' process-default provider: ring, the only one the build turns on.
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// A handshaken TLS connection to `addr` offering `alpn`.
    async fn connect(&self, addr: SocketAddr, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let connector = TlsConnector::from(Arc::new(self.client_config(alpn)));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(addr.ip().into());
        tokio::time::timeout(HANG, connector.connect(name, tcp))
            .await
            .expect("handshake hung")
            .unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves the test app on `listener`, handlers seeing the TCP peer (`connect_info`).
fn serve_tls<L: Listener<Addr = SocketAddr>>(listener: TlsListener<L>) -> TestServer {
    common::spawn(pipelined::serve(listener, app()).connect_info(|peer: SocketAddr| peer))
}

/// TLS on TCP with the default handshake timeout.
async fn serve_tcp(pki: &Pki) -> TestServer {
    serve_tls(TlsListener::new(bind().await, pki.server_config()))
}

/// The `https://` URL of `path` on `server`.
fn url(server: &TestServer, path: &str) -> String {
    format!("https://{}{path}", server.addr)
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Reads HTTP/1.1 responses (Content-Length bodies) from any stream.
struct Responses<S> {
    io: S,
    buf: BytesMut,
    /// Bytes of the responses read so far, heads included.
    received: usize,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Responses<S> {
    fn new(io: S) -> Self {
        Responses {
            io,
            buf: BytesMut::new(),
            received: 0,
        }
    }

    /// Writes `bytes` in one write and pushes it out.
    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.io.flush().await.unwrap();
    }

    async fn next(&mut self) -> Answer {
        let (status, headers, len) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 32];
            let mut head = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(len) = head.parse(&self.buf).unwrap() {
                let headers = head.headers.iter().map(|h| {
                    let value = String::from_utf8_lossy(h.value).into_owned();
                    (h.name.to_ascii_lowercase(), value)
                });
                break (head.code.unwrap(), headers.collect::<Vec<_>>(), len);
            }
            self.fill().await;
        };
        self.buf.advance(len);
        self.received += len;
        let answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = answer.header("content-length").unwrap().parse().unwrap();
        while self.buf.len() < len {
            self.fill().await;
        }
        self.received += len;
        Answer {
            body: self.buf.split_to(len).to_vec(),
            ..answer
        }
    }

    async fn fill(&mut self) {
        self.buf.reserve(64 * 1024);
        let read = tokio::time::timeout(HANG, self.io.read_buf(&mut self.buf)).await;
        let n = read.expect("no bytes within the hang limit").unwrap();
        assert!(n > 0, "EOF inside a response");
    }
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

/// Whether the handshake agreed on HTTP/2: a client speaks what ALPN said, as reqwest does.
fn agreed_h2(tls: &TlsStream<TcpStream>) -> bool {
    tls.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// One GET with hyper's client over `tls`, in HTTP/2 or HTTP/1.1: the response, its body
/// collected.
async fn hyper_get(tls: TlsStream<TcpStream>, path: &str, http2: bool) -> http::Response<Bytes> {
    let io = TokioIo::new(tls);
    let exchange = async {
        let response = if http2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(conn);
            let uri = format!("https://localhost{path}");
            let request = http::Request::get(uri).body(Empty::<Bytes>::new());
            sender.send_request(request.unwrap()).await
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let request = http::Request::get(path).header(http::header::HOST, "localhost");
            sender
                .send_request(request.body(Empty::<Bytes>::new()).unwrap())
                .await
        };
        let (parts, body) = response.unwrap().into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        http::Response::from_parts(parts, body)
    };
    tokio::time::timeout(HANG, exchange)
        .await
        .expect("no response within the hang limit")
}

/// Whether the server has closed `stream` (EOF or reset) within the hang limit.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    loop {
        match tokio::time::timeout(HANG, stream.read(&mut byte)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An alert; the close follows.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn alpn_picks_http2_or_the_pipelining_engine() {
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;

    // Offering both, the server's preference wins: HTTP/2.
    let tls = pki.connect(server.addr, &[b"h2", b"http/1.1"]).await;
    assert!(agreed_h2(&tls));
    let res = hyper_get(tls, "/plaintext", true).await;
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.body(), "Hello, World!");

    let tls = pki.connect(server.addr, &[b"http/1.1"]).await;
    assert!(!agreed_h2(&tls));
    let res = hyper_get(tls, "/plaintext", false).await;
    assert_eq!(res.version(), http::Version::HTTP_11);
    assert_eq!(res.body(), "Hello, World!");
    server.shutdown().await;
}

/// The protocol ALPN agreed on is the one served, whatever the first bytes look like: the
/// HTTP/2 preface after `http/1.1` is a bad HTTP/1.1 request (`505`), and an HTTP/1.1 request
/// after `h2` is a broken HTTP/2 preface, answered in HTTP/2.
#[tokio::test]
async fn alpn_decides_without_sniffing() {
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;

    let mut h1 = Responses::new(pki.connect(server.addr, &[b"http/1.1"]).await);
    h1.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert_eq!(h1.next().await.status, 505);

    let mut h2 = pki.connect(server.addr, &[b"h2"]).await;
    h2.write_all(request("/plaintext").as_bytes())
        .await
        .unwrap();
    h2.flush().await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(HANG, h2.read_to_end(&mut received)).await;
    let _ = read.expect("HTTP/2 kept a connection with a bad preface open");
    // Refused in HTTP/2 (RFC 9113 §3.4): the server's SETTINGS, then GOAWAY PROTOCOL_ERROR.
    let frames = h2frames::frames_in(&received);
    assert_eq!(frames.first().map(|f| f.0), Some(0x4), "{received:?}");
    let goaway = frames.iter().find(|f| f.0 == 0x7);
    let code = goaway.map(|f| u32::from_be_bytes(f.1[4..8].try_into().unwrap()));
    assert_eq!(code, Some(0x1), "no GOAWAY PROTOCOL_ERROR: {received:?}");
    drop((h1, h2));
    server.shutdown().await;
}

/// 100 requests in one write, answered with 64 KiB bodies that finish out of order: every
/// answer arrives whole and in request order, across some 400 TLS records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_answers_keep_their_order_across_tls_records() {
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;
    let tls = pki.connect(server.addr, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut client = Responses::new(tls);
    let pipeline: String = (0..100).map(|i| request(&format!("/big/{i}"))).collect();
    client.send(pipeline.as_bytes()).await;
    for i in 0..100 {
        let answer = client.next().await;
        assert_eq!(answer.status, 200, "answer {i}");
        assert!(
            answer.body == big_body(i).as_bytes(),
            "answer {i} is not /big/{i}'s: starts {:?}",
            String::from_utf8_lossy(&answer.body[..8])
        );
    }
    drop(client);
    server.shutdown().await;
}

/// What the server wrote on its sockets, seen below TLS: the records it sent.
#[derive(Default)]
struct Records {
    /// Records begun so far.
    count: usize,
    /// The header of the record being begun, while incomplete.
    header: Vec<u8>,
    /// Bytes of the current record's payload still to come.
    remaining: usize,
}

impl Records {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(bytes.len());
                self.remaining -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 5 {
                self.remaining = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
                self.count += 1;
            }
        }
    }
}

/// A TCP socket that counts the records written to it and, like a full send buffer, refuses
/// (for one poll) the first write after each read: a TLS stream that leaves encrypted bytes
/// behind without being flushed then never sends them.
struct Wire {
    io: TcpStream,
    refuse_next_write: bool,
    records: Arc<Mutex<Records>>,
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.refuse_next_write = true;
        }
        polled
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if std::mem::take(&mut self.refuse_next_write) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.records.lock().unwrap().feed(&buf[..n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// TCP connections as [`Wire`]s, sharing one record count.
struct WireListener {
    tcp: TcpListener,
    records: Arc<Mutex<Records>>,
}

impl Listener for WireListener {
    type Io = Wire;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(Wire, SocketAddr)> {
        let (io, peer) = self.tcp.accept().await?;
        io.set_nodelay(true)?;
        let records = Arc::clone(&self.records);
        let wire = Wire {
            io,
            refuse_next_write: false,
            records,
        };
        Ok((wire, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Every answer is flushed through TLS (a refused write leaves it in rustls' buffer: only a
/// flush sends it), and a pipelined batch of 100 answers is a handful of records, not 100.
#[tokio::test]
async fn a_pipelined_batch_is_flushed_in_few_tls_records() {
    let pki = Pki::new();
    let records = Arc::new(Mutex::new(Records::default()));
    let wire = WireListener {
        tcp: bind().await,
        records: Arc::clone(&records),
    };
    let server = serve_tls(TlsListener::new(wire, pki.server_config()));
    let mut client = Responses::new(pki.connect(server.addr, &[b"http/1.1"]).await);

    // One request after another, each answer after a refused write: each arrives.
    for _ in 0..3 {
        client.send(request("/plaintext").as_bytes()).await;
        assert_eq!(client.next().await.body, b"Hello, World!");
    }

    let before = (records.lock().unwrap().count, client.received);
    let pipeline = request("/plaintext").repeat(100);
    client.send(pipeline.as_bytes()).await;
    for _ in 0..100 {
        assert_eq!(client.next().await.body, b"Hello, World!");
    }
    let batch = records.lock().unwrap().count - before.0;
    let bytes = client.received - before.1;
    assert!(
        batch <= bytes.div_ceil(RECORD_PLAINTEXT) + 1,
        "100 pipelined answers (~{bytes} bytes) took {batch} TLS records"
    );
    drop(client);
    server.shutdown().await;
}

/// Without ALPN the connection's first bytes decide, as on plain TCP: HTTP/1.1, or HTTP/2
/// prior knowledge.
#[tokio::test]
async fn without_alpn_the_protocol_is_sniffed() {
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;

    let tls = pki.connect(server.addr, &[]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    let mut client = Responses::new(tls);
    client.send(request("/plaintext").as_bytes()).await;
    let answer = client.next().await;
    assert_eq!(answer.body, b"Hello, World!");

    // HTTP/2 prior knowledge: the preface, with nothing agreed.
    let tls = pki.connect(server.addr, &[]).await;
    let res = hyper_get(tls, "/plaintext", true).await;
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.body(), "Hello, World!");
    drop(client);
    server.shutdown().await;
}

/// A client that connects and says nothing does not hold up one that connects after it, and is
/// closed once the handshake timeout has passed.
#[tokio::test]
async fn a_silent_client_times_out_without_stalling_the_others() {
    // Long enough that the other client's handshake and request finish well within it on a
    // loaded machine.
    const TIMEOUT: Duration = Duration::from_secs(10);
    let pki = Pki::new();
    let listener = TlsListener::new(bind().await, pki.server_config()).handshake_timeout(TIMEOUT);
    let server = serve_tls(listener);

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let connected = Instant::now();
    let mut client = Responses::new(pki.connect(server.addr, &[b"http/1.1"]).await);
    client.send(request("/plaintext").as_bytes()).await;
    assert_eq!(client.next().await.body, b"Hello, World!");
    let mut byte = [0; 1];
    assert_eq!(
        silent.try_read(&mut byte).unwrap_err().kind(),
        io::ErrorKind::WouldBlock,
        "the silent client is still waiting for its handshake"
    );

    assert!(closed_by_server(&mut silent).await, "never closed");
    // The timer starts when the server accepts, a moment before `connected` at the most.
    assert!(
        connected.elapsed() >= TIMEOUT - Duration::from_secs(1),
        "closed after {:?}, before the handshake timeout",
        connected.elapsed()
    );
    drop(client);
    server.shutdown().await;
}

/// With every handshake slot taken by silent clients, a new client is not kept waiting: the
/// oldest silent handshakes give way, one per newcomer, the newer silent ones keep their slots,
/// and the honest client's handshake finishes while they are all still unfinished. No clock
/// decides it: the handshake timeout is an hour (before eviction, the honest client waited for
/// it in the listen backlog).
#[tokio::test]
async fn a_new_client_takes_the_slot_of_the_oldest_silent_handshake() {
    const SLOTS: usize = 4;
    let pki = Pki::new();
    let listener = TlsListener::new(bind().await, pki.server_config())
        .handshake_timeout(Duration::from_secs(3600))
        .max_handshakes(SLOTS);
    let server = serve_tls(listener);

    // Accepted in this order (the backlog is first in, first out): the last one finds every
    // slot taken and evicts the first; the honest client then evicts the second.
    let mut silent = Vec::new();
    for _ in 0..=SLOTS {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let mut client = Responses::new(pki.connect(server.addr, &[b"http/1.1"]).await);
    client.send(request("/plaintext").as_bytes()).await;
    assert_eq!(client.next().await.body, b"Hello, World!");

    for (i, socket) in silent.iter_mut().enumerate().take(2) {
        assert!(
            closed_by_server(socket).await,
            "silent client {i} kept its slot"
        );
    }
    let mut byte = [0; 1];
    for (i, socket) in silent.iter().enumerate().skip(2) {
        assert_eq!(
            socket.try_read(&mut byte).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "silent client {i} lost its slot although an older one could give way"
        );
    }
    drop((client, silent));
    server.shutdown().await;
}

/// A client that sent its whole ClientHello has shown it speaks TLS: when every slot is taken,
/// the silent client accepted after it gives way, not it, although it is the oldest. Its
/// handshake then finishes when it goes on.
#[tokio::test]
async fn a_client_hello_keeps_its_slot_while_a_silent_client_can_give_way() {
    let pki = Pki::new();
    let listener = TlsListener::new(bind().await, pki.server_config())
        .handshake_timeout(Duration::from_secs(3600))
        .max_handshakes(2);
    let server = serve_tls(listener);

    let gate = Arc::new(Gate::default());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let stalled = Stalled {
        io: tcp,
        gate: Arc::clone(&gate),
    };
    let connector = TlsConnector::from(Arc::new(pki.client_config(&[b"http/1.1"])));
    let name = ServerName::IpAddress(server.addr.ip().into());
    let slow = tokio::spawn(connector.connect(name, stalled));
    // The server answered its ClientHello: it read all of it.
    tokio::time::timeout(HANG, gate.answered.notified())
        .await
        .expect("the server never answered the ClientHello");

    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut client = Responses::new(pki.connect(server.addr, &[b"http/1.1"]).await);
    client.send(request("/plaintext").as_bytes()).await;
    assert_eq!(client.next().await.body, b"Hello, World!");
    assert!(
        closed_by_server(&mut silent).await,
        "the silent client kept its slot"
    );

    gate.open();
    let slow = tokio::time::timeout(HANG, slow)
        .await
        .expect("handshake hung");
    let mut slow = Responses::new(slow.unwrap().expect("the ClientHello's slot was taken"));
    slow.send(request("/plaintext").as_bytes()).await;
    assert_eq!(slow.next().await.body, b"Hello, World!");
    drop((client, slow));
    server.shutdown().await;
}

/// Holds a client's writes once it has read: see [`Stalled`].
#[derive(Default)]
struct Gate {
    /// (something was read, writes may go on, the writer waiting for that).
    state: Mutex<(bool, bool, Option<std::task::Waker>)>,
    /// Notified on the first read.
    answered: tokio::sync::Notify,
}

impl Gate {
    fn open(&self) {
        let mut state = self.state.lock().unwrap();
        state.1 = true;
        if let Some(writer) = state.2.take() {
            writer.wake();
        }
    }
}

/// A client's TCP socket that sends its first flight (a ClientHello), reads the server's
/// answer, and then holds its next flight until its [`Gate`] opens: a client in the middle of
/// its handshake, as slow as the test wants.
struct Stalled {
    io: TcpStream,
    gate: Arc<Gate>,
}

impl AsyncRead for Stalled {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            let first = !std::mem::replace(&mut self.gate.state.lock().unwrap().0, true);
            if first {
                self.gate.answered.notify_one();
            }
        }
        polled
    }
}

impl AsyncWrite for Stalled {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        {
            let mut state = self.gate.state.lock().unwrap();
            if state.0 && !state.1 {
                state.2 = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Bytes that are not a ClientHello end their own connection only: `accept` neither fails nor
/// waits for them, and its first connection is the next client's.
#[tokio::test]
async fn garbage_instead_of_a_client_hello_hurts_no_one_else() {
    let pki = Pki::new();
    let mut listener = TlsListener::new(bind().await, pki.server_config());
    let addr = listener.local_addr().unwrap();
    let mut garbage = TcpStream::connect(addr).await.unwrap();
    garbage
        .write_all(request("/plaintext").as_bytes())
        .await
        .unwrap();

    let client = tokio::spawn(async move {
        let tls = pki.connect(addr, &[b"http/1.1"]).await;
        (tls.get_ref().0.local_addr().unwrap(), tls)
    });
    let accepted = tokio::time::timeout(HANG, listener.accept()).await;
    let (io, peer) = accepted.expect("accept hung").unwrap();
    let (client_addr, _tls) = client.await.unwrap();
    assert_eq!(peer, client_addr, "the first connection accepted");
    assert_eq!(
        TlsListener::<TcpListener>::protocol(&io),
        Some(Protocol::Http1)
    );
    assert!(closed_by_server(&mut garbage).await, "never closed");
}

/// Shutdown drops the listener, and with it the handshakes still running: a silent client is
/// closed long before its handshake timeout.
#[tokio::test]
async fn shutdown_ends_the_handshakes_in_flight() {
    let pki = Pki::new();
    let listener = TlsListener::new(bind().await, pki.server_config())
        .handshake_timeout(Duration::from_secs(3600));
    let server = serve_tls(listener);
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // Accepted after the silent one (the backlog is first in, first out), so by the time it is
    // served the silent one's handshake is running.
    let mut client = Responses::new(pki.connect(server.addr, &[b"http/1.1"]).await);
    client.send(request("/plaintext").as_bytes()).await;
    assert_eq!(client.next().await.body, b"Hello, World!");
    drop(client);

    server.shutdown().await;
    assert!(
        closed_by_server(&mut silent).await,
        "handshake outlived the server"
    );
}

/// `connect_info` gets the TCP peer's address through TLS, on both engines.
#[tokio::test]
async fn connect_info_is_the_tcp_peer() {
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;
    let tls = pki.connect(server.addr, &[b"http/1.1"]).await;
    let local = tls.get_ref().0.local_addr().unwrap();
    let mut client = Responses::new(tls);
    client.send(request("/peer").as_bytes()).await;
    assert_eq!(client.next().await.body, local.to_string().as_bytes());

    let tls = pki.connect(server.addr, &[b"h2"]).await;
    let local = tls.get_ref().0.local_addr().unwrap();
    let res = hyper_get(tls, "/peer", true).await;
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.body(), &local.to_string());
    drop(client);
    server.shutdown().await;
}

/// Whether `tool` runs; outside CI a missing one skips its test, saying so.
fn installed(tool: &str, hint: &str) -> bool {
    if std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "CI must have {tool}");
    eprintln!("skipped: {tool} is not installed ({hint})");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_http1_and_http2_over_tls() {
    if !installed("curl", "apt-get install curl") {
        return;
    }
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = tokio::process::Command::new("curl")
            .args(["--silent", "--show-error", "--insecure", flag])
            .args([
                "--write-out",
                " %{http_version}",
                &url(&server, "/plaintext"),
            ])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "curl {flag}: {stderr}");
        let expected = format!("Hello, World! {version}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            expected,
            "curl {flag}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_drives_http2_and_pipelined_http1_over_tls() {
    if !installed("h2load", "apt-get install nghttp2-client") {
        return;
    }
    let pki = Pki::new();
    let server = serve_tcp(&pki).await;
    for protocol in [&["--h1"][..], &[][..]] {
        let out = tokio::process::Command::new("h2load")
            .args(protocol)
            .args(["-n", "1000", "-c", "4", "-m", "16"])
            .arg(url(&server, "/plaintext"))
            .output()
            .await
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            report.contains("1000 succeeded, 0 failed, 0 errored"),
            "h2load {protocol:?}:\n{report}"
        );
        let negotiated = if protocol.is_empty() {
            "h2"
        } else {
            "http/1.1"
        };
        assert!(
            report.contains(&format!("Application protocol: {negotiated}")),
            "h2load {protocol:?} agreed on another protocol:\n{report}"
        );
    }
    server.shutdown().await;
}

fn load_error(cert: &Path, key: &Path) -> String {
    config_from_pem(cert, key).unwrap_err().to_string()
}

#[test]
fn config_from_pem_names_the_file_and_the_problem() {
    let pki = Pki::new();
    let missing = pki.dir.join("missing.pem");
    let message = load_error(&missing, &pki.key());
    assert!(
        message.starts_with(&format!("cannot read {}: ", missing.display())),
        "{message}"
    );

    let empty = pki.file("empty.pem", "");
    let message = load_error(&empty, &pki.key());
    assert!(
        message.starts_with(&format!("no certificate in {}", empty.display())),
        "{message}"
    );
    let message = load_error(&pki.cert(), &empty);
    assert!(
        message.starts_with(&format!("no private key in {}", empty.display())),
        "{message}"
    );

    // The key where the certificate should be.
    let message = load_error(&pki.key(), &pki.key());
    assert!(
        message.starts_with(&format!("no certificate in {}", pki.key().display())),
        "{message}"
    );

    let other = pki.file(
        "other.pem",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    let message = load_error(&pki.cert(), &other);
    assert_eq!(
        message,
        format!(
            "the private key in {} does not match the certificate in {}",
            other.display(),
            pki.cert().display()
        )
    );

    let broken = pki.file("broken.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let message = load_error(&broken, &pki.key());
    assert!(
        message.starts_with(&format!("{} is not valid PEM: ", broken.display())),
        "{message}"
    );

    let config = config_from_pem(pki.cert(), pki.key()).unwrap();
    assert_eq!(config.alpn_protocols, [&b"h2"[..], b"http/1.1"]);
}
