//! HTTP/2 streams record the engine's metrics under the names HTTP/1.1 uses, where they make
//! sense: `pipelined_handler_seconds`, `pipelined_in_flight_requests` and
//! `pipelined_open_connections`; not the head-of-line wait or the pipeline depth, which
//! HTTP/2 does not have. Alone in its file: it installs the process-wide metrics recorder.

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, get, serve_with, Client, HANG};
use http_body_util::BodyExt;
use pipelined::{get as route, Config, Router};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Notify};

use recorder::Metrics;

const HANDLER: &str = "pipelined_handler_seconds";
const IN_FLIGHT: &str = "pipelined_in_flight_requests";
const CONNECTIONS: &str = "pipelined_open_connections";
const HEAD_OF_LINE: &str = "pipelined_head_of_line_wait_seconds";
const DEPTH: &str = "pipelined_pipeline_depth";
const REQUESTS: &str = "pipelined_requests_total";

/// Held by each test: every one reads the same process-wide gauges and counters.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// `GET path` on an `h2` client connection; its status.
async fn h2_get(client: &mut h2::client::SendRequest<Bytes>, addr: SocketAddr, path: &str) -> u16 {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::time::timeout(HANG, response).await.unwrap().unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_record_handler_time_in_flight_and_connections() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let release = Arc::new(Notify::new());
    let wait = Arc::clone(&release);
    let app = Router::new()
        .route("/fast", route(|_req| async { "fast\n" }))
        .route(
            "/hold",
            route(move |_req| {
                let wait = Arc::clone(&wait);
                async move {
                    wait.notified().await;
                    "released\n"
                }
            }),
        );
    let server = serve_with(app, Config::default().metrics(true)).await;
    // Samples other tests of this binary recorded.
    let (handler, head_of_line, depth) = (
        metrics.samples(HANDLER),
        metrics.samples(HEAD_OF_LINE),
        metrics.samples(DEPTH),
    );

    // HTTP/2: the connection is counted while open, a held stream is in flight while its
    // handler runs, and each answered stream is a handler-time sample.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    assert_eq!(h2_get(&mut client, server.addr, "/fast").await, 200);
    assert_eq!(metrics.gauge(CONNECTIONS), 1.0);
    assert_eq!(metrics.samples(HANDLER), handler + 1);
    let mut held = client.clone();
    let addr = server.addr;
    let holding = tokio::spawn(async move { h2_get(&mut held, addr, "/hold").await });
    let m = metrics.clone();
    eventually("the held stream is in flight", move || {
        m.gauge(IN_FLIGHT) == 1.0
    })
    .await;
    release.notify_waiters();
    assert_eq!(holding.await.unwrap(), 200);
    assert_eq!(metrics.gauge(IN_FLIGHT), 0.0);
    assert_eq!(metrics.samples(HANDLER), handler + 2);
    // Not measured on HTTP/2: no stream waits for another, and nothing is pipelined.
    assert_eq!(metrics.samples(HEAD_OF_LINE), head_of_line);
    assert_eq!(metrics.samples(DEPTH), depth);
    drop(client);
    tokio::time::timeout(HANG, connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let m = metrics.clone();
    eventually("the HTTP/2 connection is uncounted", move || {
        m.gauge(CONNECTIONS) == 0.0
    })
    .await;

    // HTTP/1.1, the same names: two pipelined requests, two handler-time samples, and the
    // HTTP/1.1-only figures besides.
    let mut client = Client::connect(server.addr).await;
    client.send(get("/fast").repeat(2)).await;
    assert_eq!(client.responses(2).await.len(), 2);
    drop(client);
    let m = metrics.clone();
    eventually("the HTTP/1.1 requests are recorded", move || {
        m.samples(HANDLER) == handler + 4
            && m.samples(HEAD_OF_LINE) == head_of_line + 2
            && m.samples(DEPTH) > depth
    })
    .await;
    let m = metrics.clone();
    eventually("nothing open or in flight", move || {
        m.gauge(CONNECTIONS) == 0.0 && m.gauge(IN_FLIGHT) == 0.0
    })
    .await;
    server.shutdown().await;
}

/// Every HTTP/2 answer is counted with the status sent, the server's own included: a request
/// timeout (503), a body announced too large (413, refused before routing: `unmatched`) and
/// one that grows too large (413, the handler's error), too many headers (431) and an unknown
/// expectation (417), beside the service's 200 and 404. (A header block over
/// `max_header_bytes` is refused by hyper itself, below the service: not counted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http2_answer_is_counted_with_the_status_sent() {
    let _serial = SERIAL.lock().await;
    let metrics = Metrics::install();
    let collect = tower::service_fn(|req: http::Request<pipelined::Body>| async move {
        req.into_body().collect().await?;
        Ok::<_, pipelined::BoxError>("read\n")
    });
    let app = Router::new()
        .route("/fast", route(|_req| async { "fast\n" }))
        .route("/never", route(|_req| std::future::pending::<&str>()))
        .route_service("/collect", collect);
    let config = Config::default()
        .metrics(true)
        .request_timeout(Some(Duration::from_millis(100)))
        .max_body_bytes(8)
        .max_headers(10);
    let server = serve_with(app, config).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let uri = |path: &str| format!("http://{}{path}", server.addr);

    let get = |path: &str| http::Request::get(uri(path)).body(()).unwrap();
    let mut many_headers = get("/fast");
    for i in 0..20 {
        let name = http::HeaderName::try_from(format!("x-{i}")).unwrap();
        many_headers
            .headers_mut()
            .insert(name, "v".parse().unwrap());
    }
    let mut expect = get("/fast");
    expect
        .headers_mut()
        .insert("expect", "later".parse().unwrap());
    let announced = http::Request::post(uri("/collect"))
        .header("content-length", "100")
        .body(())
        .unwrap();
    let streamed = http::Request::post(uri("/collect")).body(()).unwrap();
    // (request, a body to stream, status, method, route)
    let cases = [
        (get("/fast"), None, 200, "GET", "/fast"),
        (get("/nope"), None, 404, "GET", "unmatched"),
        (get("/never"), None, 503, "GET", "/never"),
        (announced, None, 413, "POST", "unmatched"),
        (
            streamed,
            Some(&b"0123456789abcdef"[..]),
            413,
            "POST",
            "/collect",
        ),
        (many_headers, None, 431, "GET", "unmatched"),
        (expect, None, 417, "GET", "unmatched"),
    ];
    for (request, body, status, method, route) in cases {
        let labels = [
            ("method", method),
            ("route", route),
            ("status", &status.to_string()),
        ];
        let before = metrics.counter(REQUESTS, &labels);
        let announced = request.headers().contains_key("content-length");
        let (response, mut send) = client
            .send_request(request, body.is_none() && !announced)
            .unwrap();
        if let Some(body) = body {
            send.send_data(Bytes::from_static(body), true).unwrap();
        }
        let response = tokio::time::timeout(HANG, response).await.unwrap().unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {route}");
        let m = metrics.clone();
        let what = format!("{status} counted once as {method} {route}");
        let labels = labels.map(|(k, v)| (k, v.to_owned()));
        eventually(&what, move || {
            let labels = labels.each_ref().map(|(k, v)| (*k, v.as_str()));
            m.counter(REQUESTS, &labels) == before + 1
        })
        .await;
    }
    drop(client);
    tokio::time::timeout(HANG, connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    server.shutdown().await;
}
