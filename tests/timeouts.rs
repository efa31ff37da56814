//! Time limits: a slow or silent client, or a stuck handler, cannot hold a connection for ever,
//! and no limit ever costs an earlier response.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{get, serve_with, Client};
use http_body_util::BodyExt;
use pipelined::{get as route_get, post, Body, BodyError, Config, Router};
use tokio::sync::Notify;

const SHORT: Duration = Duration::from_millis(200);

fn app(release: Arc<Notify>) -> Router {
    Router::new()
        .route("/fast", route_get(|_req| async { "fast\n" }))
        .route(
            "/never",
            route_get(|_req| async {
                std::future::pending::<()>().await;
                "unreachable\n"
            }),
        )
        .route(
            "/held",
            route_get(move |_req| {
                let release = Arc::clone(&release);
                async move {
                    release.notified().await;
                    "held\n"
                }
            }),
        )
        .route(
            "/upload",
            post(|req: http::Request<Body>| async move {
                let bytes = req.into_body().collect().await?.to_bytes();
                Ok::<_, BodyError>(format!("{} bytes\n", bytes.len()))
            }),
        )
}

#[tokio::test]
async fn a_head_that_never_finishes_gets_408_after_earlier_responses() {
    let config = Config::default().header_read_timeout(SHORT);
    let server = serve_with(app(Arc::default()), config).await;
    let mut client = Client::connect(server.addr).await;
    // One whole request, then half a head that never completes.
    client
        .send(format!("{}GET /fast HTTP/1.1\r\nHost: te", get("/fast")))
        .await;
    let first = client.response().await;
    assert_eq!((first.status, first.text().as_str()), (200, "fast\n"));
    let timed_out = client.response().await;
    assert_eq!(timed_out.status, 408);
    assert!(timed_out.closes());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn a_slowloris_trickle_does_not_extend_the_header_deadline() {
    let config = Config::default().header_read_timeout(SHORT);
    let server = serve_with(app(Arc::default()), config).await;
    let mut client = Client::connect(server.addr).await;
    let head = b"GET /fast HTTP/1.1\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    // A byte every 20 ms: each byte arrives well within the limit, the head never does.
    let mut sent = 0;
    let status = loop {
        if sent < head.len() {
            let _ =
                tokio::io::AsyncWriteExt::write_all(&mut client.stream, &head[sent..=sent]).await;
            sent += 1;
        }
        let peek = tokio::time::timeout(Duration::from_millis(20), client.try_response(false));
        if let Ok(Some(response)) = peek.await {
            break response.status;
        }
        assert!(
            sent < head.len(),
            "the whole trickle went through without a 408"
        );
    };
    assert_eq!(status, 408);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_but_in_flight_answers_are_written_first() {
    let release = Arc::new(Notify::new());
    let config = Config::default().idle_timeout(SHORT);
    let server = serve_with(app(Arc::clone(&release)), config).await;
    let mut client = Client::connect(server.addr).await;
    client.send(get("/held")).await;
    // The client now sends nothing. Let the idle limit pass (with a wide margin) while the
    // handler is held: this sleep lets a timer expire, it orders nothing. The held answer
    // must still arrive, then the connection closes.
    tokio::time::sleep(SHORT * 3).await;
    release.notify_one();
    let held = client.response().await;
    assert_eq!(held.text(), "held\n");
    assert!(
        held.closes(),
        "the last answer before an idle close says so"
    );
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn an_overdue_handler_becomes_an_in_order_503_and_the_connection_goes_on() {
    let config = Config::default().request_timeout(Some(SHORT));
    let server = serve_with(app(Arc::default()), config).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}{}", get("/fast"), get("/never"), get("/fast")))
        .await;
    let statuses: Vec<u16> = client.responses(3).await.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 200]);
    client.send(get("/fast")).await;
    assert_eq!(
        client.response().await.status,
        200,
        "connection still usable"
    );
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_body_fails_the_handler_with_408_and_closes() {
    let config = Config::default().body_read_timeout(SHORT);
    let server = serve_with(app(Arc::default()), config).await;
    let mut client = Client::connect(server.addr).await;
    // Ten bytes announced, four sent, then silence.
    client
        .send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabcd")
        .await;
    let response = client.response().await;
    assert_eq!(response.status, 408);
    assert!(response.text().contains("stalled"), "{}", response.text());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
}
