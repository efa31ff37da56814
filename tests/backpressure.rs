//! Invariant 3: in-flight requests per connection are bounded. When the pipeline is full the
//! connection stops reading, TCP pushes back on the client, and nothing is lost or reordered.
//!
//! - 10,000 pipelined requests on one connection, written by one task while another reads:
//!   all answered, in order.
//! - The same 10,000 written in full before the client reads a single response.
//! - The bound itself, exactly: with handlers that block until released, the number of
//!   handlers started is `depth + 2` and not one more (see [`started_bound`]).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{get, serve, serve_with, Client, HANG};
use pipelined::{Body, Config, PathParams, Router};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

const REQUESTS: usize = 10_000;

/// `GET /p/{i}` answers `i`: plaintext-sized, and each answer names its request.
fn echo_app() -> Router {
    Router::new().route(
        "/p/{i}",
        pipelined::get(|req: http::Request<Body>| async move {
            let params = req.extensions().get::<PathParams>().unwrap();
            params.get("i").unwrap().to_owned()
        }),
    )
}

fn pipeline(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| get(&format!("/p/{i}")))
        .collect::<String>()
        .into_bytes()
}

/// A client whose socket is duplicated: the [`Client`] reads responses while the returned
/// stream, a second handle on the same socket, writes requests from another task.
async fn split_client(addr: std::net::SocketAddr) -> (Client, TcpStream) {
    let mut client = Client::connect(addr).await;
    let socket = client.stream.into_std().unwrap();
    let writer = TcpStream::from_std(socket.try_clone().unwrap()).unwrap();
    client.stream = TcpStream::from_std(socket).unwrap();
    (client, writer)
}

/// Reads `n` responses and checks each one answers its own request, in order.
async fn expect_in_order(client: &mut Client, n: usize) {
    for i in 0..n {
        let res = client.response().await;
        assert_eq!(res.status, 200, "response {i}");
        assert_eq!(res.text(), i.to_string(), "response {i} out of order");
    }
}

/// A writer task and a reader task at once: the honest way to pipeline more than the server
/// will take in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_requests_while_reading() {
    let server = serve(echo_app()).await;
    let (mut client, mut writer) = split_client(server.addr).await;
    let write = tokio::spawn(async move {
        writer.write_all(&pipeline(REQUESTS)).await.unwrap();
        writer
    });
    expect_in_order(&mut client, REQUESTS).await;
    let writer = write.await.unwrap();
    drop((client, writer));
    server.shutdown().await;
}

/// The client writes all 10,000 requests (from its own task) and reads nothing until that
/// write has completed.
///
/// The write can only complete if the kernel's socket buffers hold what the server could not
/// hand over yet: about 1.3 MB of responses (and the requests behind them) while nobody reads.
/// When they fill, the server's writer blocks, its slots fill, its reader stops, and TCP holds
/// the remaining requests back; Linux loopback buffers are large enough that the write still
/// completes (100,000 requests also pass here). What the test proves is that nothing is lost
/// or reordered across those stalls once the client reads. With small fixed socket buffers
/// the write would never complete, and the hang guard would fail the test rather than hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_requests_written_before_reading() {
    let server = serve(echo_app()).await;
    let (mut client, mut writer) = split_client(server.addr).await;
    let write = tokio::spawn(async move {
        writer.write_all(&pipeline(REQUESTS)).await.unwrap();
        writer
    });
    let writer = tokio::time::timeout(HANG, write)
        .await
        .expect("the request write never completed")
        .unwrap();
    expect_in_order(&mut client, REQUESTS).await;
    drop((client, writer));
    server.shutdown().await;
}

/// How many handlers a connection with `depth` can have started while none has finished.
///
/// From `src/conn`: every response not yet encoded holds a slot in the connection's order
/// (`order.rs`), the front one included while its handler runs, and the connection parses no
/// further request while the order holds `depth` slots (`connection.rs`, `next_request`).
fn started_bound(depth: usize) -> usize {
    depth
}

/// Pipelines 100 requests whose handlers block until released; exactly
/// [`started_bound`]`(depth)` of them start (in request order) before the release, and after
/// it all 100 are answered in order.
async fn bound_is_exact(depth: usize) {
    const N: usize = 100;
    let bound = started_bound(depth);
    assert!(bound < N, "the test needs more requests than the bound");
    let started = Arc::new(AtomicUsize::new(0));
    // The highest start count seen while the release had not happened yet.
    let started_while_blocked = Arc::new(AtomicUsize::new(0));
    let (start_tx, mut start_rx) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = watch::channel(false);
    let app = {
        let (started, blocked) = (started.clone(), started_while_blocked.clone());
        Router::new().route(
            "/b/{i}",
            pipelined::get(move |req: http::Request<Body>| {
                let (started, blocked) = (started.clone(), blocked.clone());
                let (start_tx, mut release_rx) = (start_tx.clone(), release_rx.clone());
                async move {
                    let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                    if !*release_rx.borrow() {
                        blocked.fetch_max(n, Ordering::SeqCst);
                    }
                    let params = req.extensions().get::<PathParams>().unwrap();
                    let i: usize = params.get("i").unwrap().parse().unwrap();
                    let _ = start_tx.send(i);
                    release_rx.wait_for(|released| *released).await.unwrap();
                    i.to_string()
                }
            }),
        )
    };
    let server = serve_with(app, Config::default().max_pipeline_depth(depth)).await;
    let mut client = Client::connect(server.addr).await;
    let wire: String = (0..N).map(|i| get(&format!("/b/{i}"))).collect();
    client.send(wire).await;

    // Wait until the bound is reached; handlers start in request order.
    for expected in 0..bound {
        let next = tokio::time::timeout(HANG, start_rx.recv()).await;
        assert_eq!(next.expect("hung: fewer handlers started"), Some(expected));
    }
    assert_eq!(
        started.load(Ordering::SeqCst),
        bound,
        "more handlers started"
    );
    release_tx.send(true).unwrap();

    for i in 0..N {
        let res = client.response().await;
        assert_eq!(res.text(), i.to_string(), "response {i} out of order");
    }
    assert_eq!(started.load(Ordering::SeqCst), N);
    assert_eq!(
        started_while_blocked.load(Ordering::SeqCst),
        bound,
        "handlers started while the pipeline was full and blocked"
    );
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn in_flight_handlers_are_bounded_at_minimum_depth() {
    bound_is_exact(16).await;
}

#[tokio::test]
async fn in_flight_handlers_are_bounded_at_a_larger_depth() {
    bound_is_exact(40).await;
}
