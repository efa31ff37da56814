//! HTTP/2 streams record the engine's metrics under the names HTTP/1.1 uses, where they make
//! sense: `pipelined_handler_seconds`, `pipelined_in_flight_requests` and
//! `pipelined_open_connections`; not the head-of-line wait or the pipeline depth, which
//! HTTP/2 does not have. Alone in its file: it installs the process-wide metrics recorder.

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{eventually, get, serve_with, Client, HANG};
use pipelined::{get as route, Config, Router};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use recorder::Metrics;

const HANDLER: &str = "pipelined_handler_seconds";
const IN_FLIGHT: &str = "pipelined_in_flight_requests";
const CONNECTIONS: &str = "pipelined_open_connections";
const HEAD_OF_LINE: &str = "pipelined_head_of_line_wait_seconds";
const DEPTH: &str = "pipelined_pipeline_depth";

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
    let metrics = Metrics::default();
    metrics::set_global_recorder(metrics.clone()).expect("the only recorder of this test binary");
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

    // HTTP/2: the connection is counted while open, a held stream is in flight while its
    // handler runs, and each answered stream is a handler-time sample.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    assert_eq!(h2_get(&mut client, server.addr, "/fast").await, 200);
    assert_eq!(metrics.gauge(CONNECTIONS), 1.0);
    assert_eq!(metrics.samples(HANDLER), 1);
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
    assert_eq!(metrics.samples(HANDLER), 2);
    // Not measured on HTTP/2: no stream waits for another, and nothing is pipelined.
    assert_eq!(metrics.samples(HEAD_OF_LINE), 0);
    assert_eq!(metrics.samples(DEPTH), 0);
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
        m.samples(HANDLER) == 4 && m.samples(HEAD_OF_LINE) == 2 && m.samples(DEPTH) >= 1
    })
    .await;
    let m = metrics.clone();
    eventually("nothing open or in flight", move || {
        m.gauge(CONNECTIONS) == 0.0 && m.gauge(IN_FLIGHT) == 0.0
    })
    .await;
    server.shutdown().await;
}
