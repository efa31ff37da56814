//! The parity table (issue 11): the `Config` limits and server features a request meets, one
//! row each (the README says why `header_read_timeout` and the metrics differ on HTTP/2), run
//! against every transport the server speaks: HTTP/1.1 and HTTP/2 (prior knowledge) over TCP,
//! and both over TLS (feature `tls-ring`, ALPN `http/1.1` / `h2`). A row is one function taking the
//! transport; the macro at the bottom makes a test of each row for each transport
//! (`http1::body_size`, `h2_tls::body_size`, …), so a failure names both.
//!
//! Every transport is driven by the same client, hyper's pooled one (over hyper-rustls for
//! TLS), so a row cannot pass on one transport because its client differs.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::unannounced::Unannounced;
use common::{eventually, TestServer, HANG};
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use pipelined::{get, post, Body, BodyError, Config, Listener, Router};
use tokio::sync::Notify;

/// Each way a client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// HTTP/1.1 over TCP: the ordered engine.
    Http1,
    /// HTTP/2 with prior knowledge over TCP: hyper's HTTP/2 server.
    H2c,
    /// HTTP/1.1 over TLS, agreed by ALPN `http/1.1`.
    #[cfg(feature = "tls-ring")]
    Http1Tls,
    /// HTTP/2 over TLS, agreed by ALPN `h2`.
    #[cfg(feature = "tls-ring")]
    H2Tls,
}

impl Transport {
    fn http2(self) -> bool {
        match self {
            Transport::Http1 => false,
            Transport::H2c => true,
            #[cfg(feature = "tls-ring")]
            Transport::Http1Tls => false,
            #[cfg(feature = "tls-ring")]
            Transport::H2Tls => true,
        }
    }

    fn tls(self) -> bool {
        !matches!(self, Transport::Http1 | Transport::H2c)
    }

    /// The HTTP version responses come back in.
    fn version(self) -> Version {
        if self.http2() {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        }
    }
}

/// What the client sends: any body, boxed.
type Out = BoxBody<Bytes, Infallible>;

/// A body that is all there at once.
fn full(bytes: impl Into<Bytes>) -> Out {
    Full::new(bytes.into()).boxed()
}

/// A response, its body read to the end.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A server on 127.0.0.1:0 for one row, and a client for its transport.
struct Server {
    transport: Transport,
    server: TestServer,
    client: Client<HttpsConnector<HttpConnector>, Out>,
}

impl Server {
    async fn start(transport: Transport, app: Router, config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        #[cfg(feature = "tls-ring")]
        if transport.tls() {
            let (pki, server) = tls::Pki::new();
            let listener = pipelined::tls::TlsListener::new(listener, server);
            return Server::run(transport, listener, app, config, pki.connector(transport));
        }
        let plain = client_config(rustls::RootCertStore::empty(), Vec::new());
        let connector = HttpsConnector::from((http_connector(), plain));
        Server::run(transport, listener, app, config, connector)
    }

    fn run<L: Listener<Addr = SocketAddr>>(
        transport: Transport,
        listener: L,
        app: Router,
        config: Config,
        connector: HttpsConnector<HttpConnector>,
    ) -> Server {
        let server = common::spawn(
            pipelined::serve(listener, app)
                .config(config)
                .connect_info(|peer: SocketAddr| peer),
        );
        let client = Client::builder(TokioExecutor::new())
            .http2_only(transport.http2())
            .build(connector);
        Server {
            transport,
            client,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.transport.tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.server.addr)
    }

    /// A request for `path` on this server, to finish with a body.
    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder().method(method).uri(self.url(path))
    }

    /// Starts sending `request`; the future can be spawned.
    fn start_sending(&self, request: Request<Out>) -> ResponseFuture {
        self.client.request(request)
    }

    /// Sends `request`, checks the answer came back on this transport, and reads it whole.
    async fn send(&self, request: Request<Out>) -> Answer {
        let answer = async {
            let res = self.start_sending(request).await?;
            assert_eq!(res.version(), self.transport.version(), "wrong transport");
            let (head, body) = res.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answer {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        tokio::time::timeout(HANG, answer)
            .await
            .expect("no answer")
            .unwrap_or_else(|e| panic!("{:?}: request failed: {e:?}", self.transport))
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.request(Method::GET, path).body(full("")).unwrap())
            .await
    }

    async fn post(&self, path: &str, body: Out) -> Answer {
        self.send(self.request(Method::POST, path).body(body).unwrap())
            .await
    }

    /// Starts graceful shutdown; the server's task is awaited by [`Server::stopped`].
    fn begin_shutdown(&mut self) {
        self.server.begin_shutdown();
    }

    /// Waits for the server to return after its shutdown began.
    async fn stopped(self) {
        self.server.stopped().await;
    }
}

/// Plain connections: the connector also accepts `http://`.
fn http_connector() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

/// The rows' routes:
/// - `POST /collect`: collects the body, answering its error (status and reason) if it fails;
/// - `GET /peer`: the connection info the server inserted, or `none`;
/// - `GET /hold`: answers `held` once the test notifies `release` (one waiter);
/// - `GET /forever`: never answers;
/// - `GET /fail`: the service fails (500); `GET /panic`: the handler panics (500).
fn app(release: Arc<Notify>) -> Router {
    Router::new()
        .route(
            "/collect",
            post(|req: Request<Body>| async move {
                let body = req.into_body().collect().await?;
                Ok::<_, BodyError>(body.to_bytes())
            }),
        )
        .route(
            "/peer",
            get(|req: Request<Body>| async move {
                match req.extensions().get::<SocketAddr>() {
                    Some(peer) => peer.to_string(),
                    None => "none".to_string(),
                }
            }),
        )
        .route(
            "/hold",
            get(move |_req| {
                let release = Arc::clone(&release);
                async move {
                    release.notified().await;
                    "held\n"
                }
            }),
        )
        .route(
            "/forever",
            get(|_req| std::future::pending::<&'static str>()),
        )
        .route_service(
            "/fail",
            tower::service_fn(|_req: Request<Body>| async {
                Err::<&'static str, _>(std::io::Error::other("on purpose"))
            }),
        )
        .route(
            "/panic",
            get(|_req| async {
                if true {
                    panic!("[expected panic] parity row");
                }
                "unreachable\n"
            }),
        )
}

async fn start(transport: Transport, config: Config) -> Server {
    Server::start(transport, app(Arc::new(Notify::new())), config).await
}

// ---- the rows ----

/// `max_body_bytes`: an announced body past it is refused 413 before it is read; one that
/// does not announce its length fails `TooLarge` once it grows past it; one under it is read.
async fn body_size(t: Transport) {
    let server = start(t, Config::default().max_body_bytes(1000)).await;
    let res = server.post("/collect", full(vec![b'x'; 1001])).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);

    let res = server
        .post("/collect", Unannounced::new(3, 500).boxed())
        .await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.text(), format!("{}\n", BodyError::TooLarge));

    let res = server
        .post("/collect", Unannounced::new(2, 500).boxed())
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body.len(), 1000);
}

/// `request_timeout`: an overdue handler is cancelled and answered 503.
async fn request_timeout(t: Transport) {
    let timeout = Duration::from_millis(200);
    let server = start(t, Config::default().request_timeout(Some(timeout))).await;
    let started = tokio::time::Instant::now();
    let res = server.get("/forever").await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() >= timeout, "answered before the timeout");
}

/// `max_headers`: one field too many is refused 431; as many as allowed are served.
async fn header_count(t: Transport) {
    let server = start(t, Config::default().max_headers(20)).await;
    let with_fields = |n: usize| {
        (0..n)
            .fold(server.request(Method::GET, "/peer"), |req, i| {
                req.header(format!("x-h{i}"), "v")
            })
            .body(full(""))
            .unwrap()
    };
    // 21 of ours is past 20 whatever the client adds (`host` on HTTP/1.1).
    let res = server.send(with_fields(21)).await;
    assert_eq!(res.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // The same one-line reason on every transport.
    assert_eq!(
        res.text(),
        "Request Header Fields Too Large: too many headers\n"
    );
    let res = server.send(with_fields(5)).await;
    assert_eq!(res.status, StatusCode::OK);
}

/// `max_header_bytes`: a larger head (HTTP/2: header list) is refused 431.
async fn header_size(t: Transport) {
    let server = start(t, Config::default().max_header_bytes(4096)).await;
    let big = server
        .request(Method::GET, "/peer")
        .header("x-big", "b".repeat(8192))
        .body(full(""))
        .unwrap();
    let res = server.send(big).await;
    assert_eq!(res.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // HTTP/1.1 closes after a refused head; either way a new request is served.
    assert_eq!(server.get("/peer").await.status, StatusCode::OK);
}

/// `Expect`: anything but `100-continue` is refused 417; `100-continue` is honoured.
async fn expectation(t: Transport) {
    let server = start(t, Config::default()).await;
    let expecting = |what: &str| {
        server
            .request(Method::POST, "/collect")
            .header("expect", what)
            .body(full("hi"))
            .unwrap()
    };
    let res = server.send(expecting("foo")).await;
    assert_eq!(res.status, StatusCode::EXPECTATION_FAILED);
    assert_eq!(
        res.text(),
        "Expectation Failed: only Expect: 100-continue is supported\n"
    );
    let res = server.send(expecting("100-continue")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "hi");
}

/// `Serve::connect_info`: handlers see the client's address.
async fn connect_info(t: Transport) {
    let server = start(t, Config::default()).await;
    let res = server.get("/peer").await;
    let peer: SocketAddr = res.text().parse().expect("a peer address");
    assert!(peer.ip().is_loopback());
    assert_ne!(
        peer.port(),
        server.server.addr.port(),
        "the client's, not ours"
    );
}

/// `Config::server_timing`: the handler's time (HTTP/2: `queue` is always 0, there is no
/// head-of-line wait); off, no header.
async fn server_timing(t: Transport) {
    let server = start(t, Config::default()).await;
    let res = server.get("/peer").await;
    let timing = res
        .headers
        .get("server-timing")
        .expect("a Server-Timing header")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        timing.starts_with("handler;dur=") && timing.contains(", queue;dur="),
        "{timing}"
    );
    if t.http2() {
        assert!(timing.ends_with("queue;dur=0.000"), "{timing}");
    }
    let server = start(t, Config::default().server_timing(false)).await;
    let res = server.get("/peer").await;
    assert!(res.headers.get("server-timing").is_none());
}

/// `ServerStats::running_handlers`: a handler that waits is counted until it answers.
async fn running_handlers(t: Transport) {
    let release = Arc::new(Notify::new());
    let server = Server::start(t, app(Arc::clone(&release)), Config::default()).await;
    let hold = server.request(Method::GET, "/hold").body(full("")).unwrap();
    let held = tokio::spawn(server.start_sending(hold));
    let stats = server.server.stats.clone();
    eventually("the held handler is counted", || {
        stats.running_handlers() == 1
    })
    .await;
    release.notify_one();
    let res = held.await.unwrap().unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "held\n");
    eventually("the handler is uncounted", || stats.running_handlers() == 0).await;
}

/// A service error and a panicking handler are both answered 500, and the connection goes on.
async fn handler_failure(t: Transport) {
    let server = start(t, Config::default()).await;
    assert_eq!(
        server.get("/fail").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        server.get("/panic").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(server.get("/peer").await.status, StatusCode::OK);
}

/// `body_read_timeout`: a body that stalls fails the handler's read with `TimedOut` (408).
async fn body_read_timeout(t: Transport) {
    let config = Config::default().body_read_timeout(Duration::from_millis(200));
    let server = start(t, config).await;
    let stalled = Unannounced::stalled(b"part");
    let res = server.post("/collect", stalled.boxed()).await;
    assert_eq!(res.status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(res.text(), format!("{}\n", BodyError::TimedOut));
}

/// `idle_timeout`: a connection with nothing in flight is closed by the server.
async fn idle_timeout(t: Transport) {
    let config = Config::default().idle_timeout(Duration::from_millis(300));
    let server = start(t, config).await;
    assert_eq!(server.get("/peer").await.status, StatusCode::OK);
    // The client keeps its connection pooled; only the server can close it.
    let stats = server.server.stats.clone();
    eventually("the idle connection is closed", || {
        stats.open_connections() == 0
    })
    .await;
    // The client notices and connects again.
    assert_eq!(server.get("/peer").await.status, StatusCode::OK);
}

/// Graceful shutdown: a request in flight is answered, then the server returns.
async fn graceful_drain(t: Transport) {
    let release = Arc::new(Notify::new());
    let mut server = Server::start(t, app(Arc::clone(&release)), Config::default()).await;
    let hold = server.request(Method::GET, "/hold").body(full("")).unwrap();
    let held = tokio::spawn(server.start_sending(hold));
    let stats = server.server.stats.clone();
    eventually("the held handler runs", || stats.running_handlers() == 1).await;
    server.begin_shutdown();
    release.notify_one();
    let res = held
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "held\n");
    server.stopped().await;
}

/// `shutdown_timeout`: a handler that never finishes does not hold shutdown past the deadline.
async fn drain_deadline(t: Transport) {
    let deadline = Duration::from_millis(300);
    let mut server = start(t, Config::default().shutdown_timeout(Some(deadline))).await;
    let request = server
        .request(Method::GET, "/forever")
        .body(full(""))
        .unwrap();
    let forever = tokio::spawn(server.start_sending(request));
    let stats = server.server.stats.clone();
    eventually("the endless handler runs", || stats.running_handlers() == 1).await;
    let started = tokio::time::Instant::now();
    server.begin_shutdown();
    server.stopped().await;
    assert!(started.elapsed() >= deadline, "stopped before the deadline");
    assert!(
        forever.await.unwrap().is_err(),
        "the endless request was cut off"
    );
    eventually("the endless handler is cancelled", || {
        stats.running_handlers() == 0
    })
    .await;
}

/// A client's TLS settings trusting `roots` and offering `alpn`. Plain transports get one
/// too (the connector wants one) and never use it.
fn client_config(roots: rustls::RootCertStore, alpn: Vec<Vec<u8>>) -> rustls::ClientConfig {
    // rustls' process-default provider: ring, the only one the build turns on.
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    config
}

/// The servers' and clients' TLS settings: a certificate made for this run.
#[cfg(feature = "tls-ring")]
mod tls {
    use std::sync::Arc;

    use hyper_rustls::HttpsConnector;
    use hyper_util::client::legacy::connect::HttpConnector;
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    use rustls::RootCertStore;

    use super::{client_config, http_connector, Transport};

    /// A self-signed certificate for 127.0.0.1 that clients trust.
    pub struct Pki {
        cert: CertificateDer<'static>,
    }

    impl Pki {
        /// The certificate, and a server's settings with it (ALPN left to `TlsListener`).
        pub fn new() -> (Pki, Arc<rustls::ServerConfig>) {
            let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
            let cert = made.cert.der().clone();
            let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
            let server = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key.into())
                .unwrap();
            (Pki { cert }, Arc::new(server))
        }

        /// A connector trusting the certificate and offering the transport's ALPN protocol.
        pub fn connector(&self, transport: Transport) -> HttpsConnector<HttpConnector> {
            let mut roots = RootCertStore::empty();
            roots.add(self.cert.clone()).unwrap();
            let alpn: &[u8] = if transport.http2() {
                b"h2"
            } else {
                b"http/1.1"
            };
            HttpsConnector::from((http_connector(), client_config(roots, vec![alpn.to_vec()])))
        }
    }
}

/// A test for each row, on one transport.
macro_rules! rows {
    ($variant:expr; ($($row:ident),+ $(,)?)) => {$(
        #[tokio::test]
        async fn $row() {
            super::$row($variant).await;
        }
    )+};
}

/// One test per row and transport, in a module per transport.
macro_rules! parity {
    ($($transport:ident => $variant:expr),+ $(,)?; rows: $rows:tt) => {$(
        mod $transport {
            rows!($variant; $rows);
        }
    )+};
}

/// Every row on every transport this build serves: over TLS only with the `tls-ring` feature.
macro_rules! every_transport {
    ($rows:tt) => {
        parity! {
            http1 => super::Transport::Http1,
            h2c => super::Transport::H2c;
            rows: $rows
        }
        #[cfg(feature = "tls-ring")]
        parity! {
            http1_tls => super::Transport::Http1Tls,
            h2_tls => super::Transport::H2Tls;
            rows: $rows
        }
    };
}

every_transport!((
    body_size,
    request_timeout,
    header_count,
    header_size,
    expectation,
    connect_info,
    server_timing,
    running_handlers,
    handler_failure,
    body_read_timeout,
    idle_timeout,
    graceful_drain,
    drain_deadline,
));
