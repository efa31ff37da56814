//! The whole HTTP/1.1 path minus the kernel: one connection of the real engine and `Router`
//! over `tokio::io::duplex`, driven with 16-deep pipelined `/plaintext` batches, beside the same
//! bytes through hyper's `http1` connection serving the same router. Reports time per batch of
//! 16 (divan divides by the item count: ns per request).
//!
//! Run with `cargo bench --bench engine`.

use std::future::{Future, IntoFuture};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use pipelined::{get, Body, Config, ResponseBody, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tower::ServiceBuilder;

fn main() {
    divan::main();
}

/// Requests per write, as in the TechEmpower plaintext benchmark.
const DEPTH: usize = 16;

/// What wrk's pipeline script sends for each request.
const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

const BODY: &[u8] = b"Hello, World!";

/// The demo binary's `/plaintext` (same headers), on a router with the demo's other shapes.
fn app() -> Router {
    async fn plaintext(_req: Request<Body>) -> Response<ResponseBody> {
        let mut res = Response::new(ResponseBody::from(Bytes::from_static(BODY)));
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        res
    }
    Router::new()
        .route("/", get(|_req| async { "index\n" }))
        .route("/plaintext", get(plaintext))
        .route("/delay/{ms}", get(|_req| async { "delay\n" }))
        .route("/healthz", get(|_req| async { "ok\n" }))
}

/// A client end of one served connection, and the reusable batch it sends.
struct Client {
    io: DuplexStream,
    batch: Vec<u8>,
    scratch: Vec<u8>,
}

impl Client {
    fn new(io: DuplexStream) -> Self {
        Client {
            io,
            batch: REQUEST.repeat(DEPTH),
            scratch: vec![0; 64 * 1024],
        }
    }

    /// Sends one pipelined batch and reads until all its responses' bodies have arrived.
    ///
    /// Counts the `!` that ends each body: no response head contains one, and a byte count
    /// keeps the client's share of the measurement small.
    async fn round_trip(&mut self) {
        self.io.write_all(&self.batch).await.unwrap();
        let mut seen = 0;
        while seen < DEPTH {
            let n = self.io.read(&mut self.scratch).await.unwrap();
            assert!(n > 0, "the server closed the connection");
            seen += self.scratch[..n].iter().filter(|&&b| b == b'!').count();
        }
        assert_eq!(seen, DEPTH, "more responses than requests");
    }
}

/// Runs `serve` on the server end of a duplex pipe and benchmarks batches through it.
fn bench_with<F, Fut>(bencher: divan::Bencher, serve: F)
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (client, server) = tokio::io::duplex(256 * 1024);
    let local = tokio::task::LocalSet::new();
    local.spawn_local(serve(server));
    let mut client = Client::new(client);
    // The body's marker byte must be unique for `round_trip`'s count.
    assert_eq!(BODY.iter().filter(|&&b| b == b'!').count(), 1);
    // Warm up: buffers grown, the Date cache filled.
    local.block_on(&rt, client.round_trip());
    bencher
        .counter(divan::counter::ItemsCount::new(DEPTH))
        .bench_local(|| local.block_on(&rt, client.round_trip()));
}

/// The ordered engine with the library's defaults (`Server-Timing` on).
#[divan::bench(sample_count = 400, sample_size = 8)]
fn ordered_defaults(bencher: divan::Bencher) {
    bench_with(bencher, |io| {
        pipelined::serve_connection(io, app()).into_future()
    });
}

/// The ordered engine with `Server-Timing` off.
#[divan::bench(sample_count = 400, sample_size = 8)]
fn ordered_bare(bencher: divan::Bencher) {
    bench_with(bencher, |io| {
        pipelined::serve_connection(io, app())
            .config(Config::default().server_timing(false))
            .into_future()
    });
}

/// hyper's HTTP/1.1 connection (`pipeline_flush`, as the hyper peer runs it), same router.
#[divan::bench(sample_count = 400, sample_size = 8)]
fn hyper_http1(bencher: divan::Bencher) {
    bench_with(bencher, |io| async move {
        let service = ServiceBuilder::new()
            .map_request(|req: Request<Incoming>| req.map(Body::new))
            .service(app());
        let _ = hyper::server::conn::http1::Builder::new()
            .pipeline_flush(true)
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .await;
    });
}
