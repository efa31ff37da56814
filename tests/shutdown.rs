//! Shutdown is prompt: once every connection has had its last response, the server returns
//! within [`PROMPT`], whether the clients closed or sit idle on keep-alive connections;
//! lingering after a closing response never outlasts the drain deadline. (The binary's SIGTERM
//! exit is timed in cli/tests/binary.rs.)
//!
//! What each test waits for before shutting down is an event (a response read, a connection
//! count); the durations asserted are the bounds under test, far below the 2 s a lingering
//! connection used to hold a shutdown up.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, serve_with, Client, TestServer};
use pipelined::{get, Config, Router};

/// How long a shutdown may take once nothing is owed (issue 12, item 6).
const PROMPT: Duration = Duration::from_millis(500);

/// A server answering `GET /` with `config`.
async fn start(config: Config) -> TestServer {
    let app = Router::new().route("/", get(|_req| async { "hi\n" }));
    serve_with(app, config).await
}

/// Starts the shutdown and returns how long the server took to return.
async fn shut_down(server: TestServer) -> Duration {
    let began = Instant::now();
    server.shutdown().await;
    began.elapsed()
}

/// `n` keep-alive connections, each with one request answered.
async fn answered_connections(addr: std::net::SocketAddr, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut client = Client::connect(addr).await;
        client.send(common::get("/")).await;
        let response = client.response().await;
        assert_eq!(response.status, 200);
        assert!(!response.closes());
        clients.push(client);
    }
    clients
}

/// Clients that read their answers and stay connected, idle, without ever closing: the drain
/// closes their connections at once instead of lingering on each.
#[tokio::test]
async fn idle_keep_alive_clients_do_not_hold_up_shutdown() {
    let running = start(Config::default()).await;
    let mut clients = answered_connections(running.addr, 4).await;
    assert_eq!(running.stats.open_connections(), 4);
    let took = shut_down(running).await;
    assert!(took < PROMPT, "shutdown took {took:?}");
    for client in &mut clients {
        assert!(client.is_closed().await, "the drain left a connection open");
    }
}

/// The case: every client had its last answer and closed.
#[tokio::test]
async fn shutdown_is_prompt_once_the_clients_have_closed() {
    let running = start(Config::default()).await;
    let clients = answered_connections(running.addr, 4).await;
    drop(clients);
    let stats = running.stats.clone();
    eventually("the closed connections are gone", || {
        stats.open_connections() == 0
    })
    .await;
    let took = shut_down(running).await;
    assert!(took < PROMPT, "shutdown took {took:?}");
}

/// A connection lingering after a `Connection: close` answer (its client neither closes nor
/// sends) is dropped at the drain deadline rather than lingering on past it.
#[tokio::test]
async fn lingering_never_outlasts_the_drain_deadline() {
    let deadline = Duration::from_millis(100);
    let running = start(Config::default().shutdown_timeout(Some(deadline))).await;
    let mut client = Client::connect(running.addr).await;
    client
        .send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let response = client.response().await;
    assert!(response.closes());
    assert!(client.is_closed().await, "the server's FIN comes first");
    // Still counted: the server lingers, reading until the client closes too.
    assert_eq!(running.stats.open_connections(), 1);
    let took = shut_down(running).await;
    assert!(took >= deadline, "the linger was cut before the deadline");
    assert!(took < deadline + PROMPT, "shutdown took {took:?}");
}
