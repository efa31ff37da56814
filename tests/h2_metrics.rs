//! HTTP/2 streams record the engine's metrics under the names HTTP/1.1 uses, where they make
//! sense: `pipelined_handler_seconds`, `pipelined_in_flight_requests` and
//! `pipelined_open_connections`; not the head-of-line wait or the pipeline depth, which
//! HTTP/2 does not have. Alone in its file: it installs the process-wide metrics recorder.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{eventually, get, serve_with, Client, HANG};
use metrics::{
    Counter, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use pipelined::{get as route, Config, Router};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// A gauge's value (as f64 bits), or a histogram's sample count.
#[derive(Default)]
struct Value(AtomicU64);

impl GaugeFn for Value {
    fn increment(&self, by: f64) {
        self.update(|v| v + by);
    }
    fn decrement(&self, by: f64) {
        self.update(|v| v - by);
    }
    fn set(&self, to: f64) {
        self.update(|_| to);
    }
}

impl HistogramFn for Value {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl Value {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

/// Gauges and histograms by name; counters are not looked at here.
#[derive(Default, Clone)]
struct Metrics {
    gauges: Arc<Mutex<HashMap<String, Arc<Value>>>>,
    histograms: Arc<Mutex<HashMap<String, Arc<Value>>>>,
}

impl Metrics {
    fn gauge(&self, name: &str) -> f64 {
        let gauges = self.gauges.lock().unwrap();
        gauges
            .get(name)
            .map_or(0.0, |v| f64::from_bits(v.0.load(Ordering::Acquire)))
    }

    fn samples(&self, name: &str) -> u64 {
        let histograms = self.histograms.lock().unwrap();
        histograms
            .get(name)
            .map_or(0, |v| v.0.load(Ordering::Acquire))
    }
}

impl Recorder for Metrics {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        Gauge::from_arc(Arc::clone(gauges.entry(key.name().to_owned()).or_default()))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        Histogram::from_arc(Arc::clone(
            histograms.entry(key.name().to_owned()).or_default(),
        ))
    }
}

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
