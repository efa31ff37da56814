//! The engine's HTTP/1.1 metrics hold: the gauges reconcile (after the whole conformance table,
//! every row alone and pipelined, refused requests, resets with answers still owed,
//! half-closed clients and timed-out heads, `pipelined_in_flight_requests` and
//! `pipelined_open_connections` are back to exactly zero), the in-flight gauge counts requests
//! while they run, and `pipelined_requests_total` counts every answer with the status written,
//! the engine's own included. The tests share the process-wide recorder and run one at a time.

mod common;
#[path = "common/recorder.rs"]
mod recorder;
// Shared with tests/conformance.rs, which uses the rest of it (assert_table).
#[allow(dead_code)]
#[path = "conformance/runner.rs"]
mod runner;
#[path = "conformance/table.rs"]
mod table;

use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{eventually, get, serve_with, Client};
use pipelined::{get as route_get, get_inline, post as route_post, Answer, Config, Router};
use recorder::Metrics;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

const IN_FLIGHT: &str = "pipelined_in_flight_requests";
const CONNECTIONS: &str = "pipelined_open_connections";
const REQUESTS: &str = "pipelined_requests_total";
const DEPTH: &str = "pipelined_pipeline_depth";

/// Held by each test: every one reads the same process-wide gauges and counters.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn app() -> Router {
    Router::new()
        .route("/fast", route_get(|_req| async { "fast\n" }))
        .route(
            "/never",
            route_get(|_req| std::future::pending::<&'static str>()),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_return_to_zero_after_conformance_refusals_resets_half_closes_and_timeouts() {
    let _serial = SERIAL.lock().await;
    let gauges = Metrics::install();

    // Every conformance row, alone and pipelined, on a metered server of its own (the rows'
    // answers are tests/conformance.rs's business; here only what they leave behind counts).
    let cases = table::all();
    assert!(!cases.is_empty());
    // Metered: the gauges below are the engine's, counted through the whole table.
    runner::run_table(&cases, |config| config.metrics(true)).await;
    assert!(
        gauges.registered("pipelined_open_connections"),
        "the conformance server was metered"
    );
    let g = gauges.clone();
    eventually(
        "the conformance table left nothing open or in flight",
        move || {
            g.gauge("pipelined_open_connections") == 0.0
                && g.gauge("pipelined_in_flight_requests") == 0.0
        },
    )
    .await;
    let config = Config::default()
        .metrics(true)
        .header_read_timeout(Duration::from_millis(200));
    let server = serve_with(app(), config).await;

    // Refused: two answered, then a malformed request (400, close).
    for _ in 0..10 {
        let mut client = Client::connect(server.addr).await;
        let bad = "GET /fast HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n";
        client
            .send(format!("{}{}{bad}", get("/fast"), get("/fast")))
            .await;
        let statuses: Vec<u16> = client.responses(3).await.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 400]);
    }

    // Reset with answers still owed: one answered, five never.
    let mut owing = Vec::new();
    for _ in 0..20 {
        let mut client = Client::connect(server.addr).await;
        client
            .send(format!("{}{}", get("/fast"), get("/never").repeat(5)))
            .await;
        assert_eq!(client.response().await.status, 200);
        owing.push(client);
    }
    let g = gauges.clone();
    eventually("the owed requests are counted in flight", move || {
        g.gauge("pipelined_in_flight_requests") == 100.0
    })
    .await;
    for client in owing {
        client.stream.set_zero_linger().unwrap();
        drop(client);
    }

    // Half-closed: every answer still arrives.
    let mut client = Client::connect(server.addr).await;
    client.send(get("/fast").repeat(4)).await;
    client.shutdown_write().await;
    assert_eq!(client.responses(4).await.len(), 4);
    drop(client);

    // A head that never finishes: 408.
    let mut client = Client::connect(server.addr).await;
    client.send("GET /fast HTTP/1.1\r\nHo").await;
    assert_eq!(client.response().await.status, 408);
    drop(client);

    let g = gauges.clone();
    eventually("every connection closed and nothing in flight", move || {
        g.gauge("pipelined_open_connections") == 0.0
            && g.gauge("pipelined_in_flight_requests") == 0.0
    })
    .await;
    server.shutdown().await;
}

/// A route whose handlers run until `release` says so.
fn held(release: &watch::Receiver<bool>) -> Router {
    let release = release.clone();
    Router::new().route(
        "/hold",
        route_get(move |_req| {
            let mut release = release.clone();
            async move {
                let _ = release.wait_for(|go| *go).await;
                "released\n"
            }
        }),
    )
}

/// Requests that run with nothing written yet are in flight: one per connection on 30
/// connections, and 5 pipelined on one more. Then all are answered and the gauge is back at
/// zero, each counted once as a `200` of `/hold`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_requests_are_in_flight_while_they_run() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let hold = [("method", "GET"), ("route", "/hold"), ("status", "200")];
    let answered = metrics.counter(REQUESTS, &hold);
    let (release, waiting) = watch::channel(false);
    let server = serve_with(held(&waiting), Config::default().metrics(true)).await;
    let mut clients = Vec::new();
    for _ in 0..30 {
        let mut client = Client::connect(server.addr).await;
        client.send(get("/hold")).await;
        clients.push((client, 1));
    }
    let mut pipelining = Client::connect(server.addr).await;
    pipelining.send(get("/hold").repeat(5)).await;
    clients.push((pipelining, 5));

    let m = metrics.clone();
    eventually("35 running requests in flight", move || {
        m.gauge(IN_FLIGHT) == 35.0
    })
    .await;
    release.send(true).unwrap();
    for (client, n) in &mut clients {
        let statuses: Vec<u16> = client
            .responses(*n)
            .await
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, vec![200; *n]);
    }
    drop(clients);
    let m = metrics.clone();
    eventually("every request answered, counted once", move || {
        m.gauge(IN_FLIGHT) == 0.0 && m.counter(REQUESTS, &hold) == answered + 35
    })
    .await;
    server.shutdown().await;
}

/// Each answer the engine makes itself is counted with the status it wrote, beside the
/// service's: a request timeout (503), a body announced too large (413) and one that grows too
/// large (413: not the handler's 200, which was never written), too many headers (431), a
/// head too slow (408), an unknown expectation (417) and a malformed head (400).
///
/// A request refused before its head was accepted has no trusted method and reached no route
/// (`other`, `unmatched`); one refused after routing keeps its labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http1_answer_is_counted_with_the_status_written() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let app = app().route("/upload", route_post(|_req| async { "not read\n" }));
    let config = Config::default()
        .metrics(true)
        .request_timeout(Some(Duration::from_millis(100)))
        .max_body_bytes(8)
        .max_headers(10)
        .header_read_timeout(Duration::from_millis(200));
    let server = serve_with(app, config).await;
    let many_headers: String = (0..20).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(String, u16, [&'static str; 2])> = vec![
        (get("/fast"), 200, ["GET", "/fast"]),
        (get("/nope"), 404, ["GET", "unmatched"]),
        (get("/never"), 503, ["GET", "/never"]),
        (
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n".into(),
            413,
            ["other", "unmatched"],
        ),
        (
            "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             10\r\n0123456789abcdef\r\n0\r\n\r\n"
                .into(),
            413,
            ["POST", "/upload"],
        ),
        (
            format!("GET /fast HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n"),
            431,
            ["other", "unmatched"],
        ),
        (
            "GET /fast HTTP/1.1\r\nHo".into(),
            408,
            ["other", "unmatched"],
        ),
        (
            "GET /fast HTTP/1.1\r\nHost: t\r\nExpect: later\r\n\r\n".into(),
            417,
            ["other", "unmatched"],
        ),
        (
            "GET /fast HTTP/1.1\r\nHost: t\r\nbad header\r\n\r\n".into(),
            400,
            ["other", "unmatched"],
        ),
    ];
    let labels = |status: u16, [method, route]: [&'static str; 2]| {
        let status = status.to_string();
        move |m: &Metrics| {
            let labels = [("method", method), ("route", route), ("status", &status)];
            m.counter(REQUESTS, &labels)
        }
    };
    let before: Vec<u64> = cases
        .iter()
        .map(|(_, status, l)| labels(*status, *l)(&metrics))
        .collect();
    let upload_200 = labels(200, ["POST", "/upload"]);
    assert_eq!(upload_200(&metrics), 0);
    for (request, status, _) in &cases {
        let mut client = Client::connect(server.addr).await;
        client.send(request).await;
        assert_eq!(client.response().await.status, *status, "{request:?}");
    }
    for ((_, status, l), before) in cases.iter().zip(before) {
        let count = labels(*status, *l);
        let m = metrics.clone();
        let what = format!("{status} counted once as {l:?}");
        eventually(&what, move || count(&m) == before + 1).await;
    }
    assert_eq!(
        upload_200(&metrics),
        0,
        "a refused body's request counted as 200"
    );
    let m = metrics.clone();
    eventually("nothing open or in flight", move || {
        m.gauge(CONNECTIONS) == 0.0 && m.gauge(IN_FLIGHT) == 0.0
    })
    .await;
    server.shutdown().await;
}

/// A connection whose write side holds every flush until it is released: the engine has
/// written a batch (the client can read it) and is not past its flush yet.
struct HeldFlush {
    io: tokio::io::DuplexStream,
    gate: Arc<Gate>,
}

/// What holds a [`HeldFlush`]'s flushes, and lets them through.
#[derive(Default)]
struct Gate {
    released: AtomicBool,
    waiting: StdMutex<Option<Waker>>,
}

impl Gate {
    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        if let Some(waker) = self.waiting.lock().unwrap().take() {
            waker.wake();
        }
    }
}

/// A metered connection to `app()` over a [`HeldFlush`] (held: its flushes wait for the gate),
/// served on a task of its own: the client's end, the gate and the task.
fn metered_connection(held: bool) -> (DuplexStream, Arc<Gate>, JoinHandle<()>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let gate = Arc::new(Gate::default());
    if !held {
        gate.release();
    }
    let io = HeldFlush {
        io: server,
        gate: gate.clone(),
    };
    let connection = pipelined::serve_connection(io, app()).config(Config::default().metrics(true));
    (client, gate, tokio::spawn(connection.into_future()))
}

impl AsyncRead for HeldFlush {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for HeldFlush {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        *self.gate.waiting.lock().unwrap() = Some(cx.waker().clone());
        if !self.gate.released.load(Ordering::SeqCst) {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The answers a client has read are counted already: a connection hands a batch's counts to
/// the recorder before it writes the batch, so a scrape made after reading them sees them.
/// Deterministic: the server's flush after the write is held until the counts were read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_client_has_read_are_counted_already() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let fast = [("route", "/fast"), ("status", "200")];
    let before = metrics.counter(REQUESTS, &fast);
    let (mut client, gate, connection) = metered_connection(true);
    client
        .write_all(get("/fast").repeat(3).as_bytes())
        .await
        .unwrap();
    read_answers(&mut client, 3).await;
    assert_eq!(
        metrics.counter(REQUESTS, &fast),
        before + 3,
        "the three answers read, counted"
    );
    gate.release();
    drop(client);
    connection.await.unwrap();
}

/// `pipelined_pipeline_depth` gets one sample per written batch: the requests read since the
/// batch before (3, then 2 here), and none for a batch that read nothing (the connection's
/// last, when it ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_records_the_requests_it_read() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let (samples, sum) = (metrics.samples(DEPTH), metrics.sum(DEPTH));
    let (mut client, _gate, connection) = metered_connection(false);
    for n in [3, 2] {
        // One write: the engine reads the whole batch at once.
        client
            .write_all(get("/fast").repeat(n).as_bytes())
            .await
            .unwrap();
        read_answers(&mut client, n).await;
    }
    drop(client);
    connection.await.unwrap();
    assert_eq!(metrics.samples(DEPTH), samples + 2);
    assert_eq!(metrics.sum(DEPTH), sum + 5.0);
}

/// Reads from `client` until `n` `/fast` answers are in.
async fn read_answers(client: &mut DuplexStream, n: usize) {
    let mut read = Vec::new();
    while read.windows(5).filter(|w| w == b"fast\n").count() < n {
        let mut chunk = [0; 4096];
        let got = client.read(&mut chunk).await.unwrap();
        assert!(got > 0, "the connection closed early");
        read.extend_from_slice(&chunk[..got]);
    }
}

/// An inline handler's answers are counted under its route, as a Service handler's are, and
/// a client that has read them finds them counted (the batch's counts go out before it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_answers_are_counted_under_their_route() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let inline = [
        ("method", "GET"),
        ("route", "/inline/{n}"),
        ("status", "200"),
    ];
    let before = metrics.counter(REQUESTS, &inline);
    let service = [("method", "GET"), ("route", "/fast"), ("status", "200")];
    let before_service = metrics.counter(REQUESTS, &service);
    let app = Router::new()
        .route("/inline/{n}", get_inline(|_head| Answer::text("i\n")))
        .route("/fast", route_get(|_req| async { "fast\n" }));
    let server = serve_with(app, Config::default().metrics(true)).await;
    let mut client = Client::connect(server.addr).await;
    // One batch, two routes in turn: each answer counted under its own.
    let batch = [
        get("/inline/1"),
        get("/fast"),
        get("/inline/2"),
        get("/fast"),
    ]
    .concat();
    client.send(batch).await;
    for response in client.responses(4).await {
        assert_eq!(response.status, 200);
    }
    assert_eq!(metrics.counter(REQUESTS, &inline), before + 2);
    assert_eq!(metrics.counter(REQUESTS, &service), before_service + 2);
    drop(client);
    server.shutdown().await;
}

/// A request refused once its head was parsed (a `Content-Length` that is no number: 400) is
/// one request read, like any other: the batch it came in records a depth of 2 here, the
/// request before it and itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_after_parsing_is_read_once() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let (samples, sum) = (metrics.samples(DEPTH), metrics.sum(DEPTH));
    let (mut client, _gate, connection) = metered_connection(false);
    let bad = "POST /fast HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n";
    client
        .write_all([get("/fast").as_str(), bad].concat().as_bytes())
        .await
        .unwrap();
    let mut read = Vec::new();
    client.read_to_end(&mut read).await.unwrap();
    let text = String::from_utf8_lossy(&read);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("HTTP/1.1 400"), "{text}");
    connection.await.unwrap();
    assert_eq!(metrics.samples(DEPTH), samples + 1);
    assert_eq!(metrics.sum(DEPTH), sum + 2.0);
}
