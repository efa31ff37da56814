//! `Config::half_close`: whether a client's EOF (a clean FIN) leaves it answered (on, the
//! default) or means it is gone (off: the connection ends and its running handlers are
//! cancelled). Each test waits on the server's running-handler and connection counts and on the
//! engine's own report that it stopped reading (its EOF), never on time: the handlers are
//! released only once the engine has seen the FIN, so an engine that took every EOF for a
//! gone client could not answer first and pass.

mod common;

use std::sync::Arc;

use common::reading_stopped::ReadingStopped;
use common::{eventually, serve_with, Client, TestServer, HANG};
use pipelined::{get, Config, Router, ServerStats};
use tokio::sync::Notify;

/// A server whose `GET /wait` answers only once `release` is notified.
async fn start(config: Config, release: Arc<Notify>) -> TestServer {
    let app = Router::new().route(
        "/wait",
        get(move |_req| {
            let release = Arc::clone(&release);
            async move {
                release.notified().await;
                "released\n"
            }
        }),
    );
    serve_with(app, config).await
}

/// A client with `n` pipelined `GET /wait` running on the server, then its FIN, once the
/// engine has read it (`stopped` reports it; the watch must have begun before the server ran).
async fn waiting_then_fin(
    addr: std::net::SocketAddr,
    stats: &ServerStats,
    n: usize,
    stopped: &ReadingStopped,
) -> Client {
    let mut client = Client::connect(addr).await;
    client.send(common::get("/wait").repeat(n)).await;
    eventually("the handlers are running", || stats.running_handlers() == n).await;
    assert_eq!(stopped.why(), None, "reading stopped before the FIN");
    client.shutdown_write().await;
    eventually("the engine has read the FIN", || stopped.why().is_some()).await;
    client
}

/// Off: the FIN cancels every handler still running for the connection and closes it, with
/// nothing written.
#[tokio::test]
async fn half_close_off_cancels_running_handlers_on_eof() {
    let stopped = ReadingStopped::watch();
    let release = Arc::new(Notify::new());
    let server = start(Config::default().half_close(false), release).await;
    let (addr, stats) = (server.addr, &server.stats);
    let mut client = waiting_then_fin(addr, stats, 3, &stopped).await;
    eventually("the handlers are cancelled", || {
        stats.running_handlers() == 0
    })
    .await;
    eventually("the connection is closed", || stats.open_connections() == 0).await;
    assert!(
        client.is_closed().await,
        "an answer was written to a gone client"
    );
}

/// On (the default): after the FIN the handlers keep running and their answers arrive.
#[tokio::test]
async fn half_close_on_answers_after_eof() {
    let stopped = ReadingStopped::watch();
    let release = Arc::new(Notify::new());
    let server = start(Config::default(), Arc::clone(&release)).await;
    let (addr, stats) = (server.addr, &server.stats);
    let mut client = waiting_then_fin(addr, stats, 3, &stopped).await;
    assert_eq!(stats.open_connections(), 1, "the FIN ended the connection");
    release.notify_waiters();
    let answers = tokio::time::timeout(HANG, client.responses(3))
        .await
        .unwrap();
    assert!(answers
        .iter()
        .all(|r| r.status == 200 && r.text() == "released\n"));
    assert!(client.is_closed().await);
    assert_eq!(stats.running_handlers(), 0);
}
