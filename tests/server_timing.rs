//! `Server-Timing` tells a client how long each handler ran and how long its finished response
//! then waited for earlier ones (the head-of-line wait). Durations are only checked against
//! lower bounds that a sleep guarantees; nothing asserts that anything was fast.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{get, serve, serve_with, Client, RawResponse};
use pipelined::{get as route, Config, Router};
use tokio::sync::Notify;

/// The first handler waits until the second has finished, then works 50 ms; so the second's
/// finished response waits at least 50 ms for the first.
fn app() -> Router {
    let second_done = Arc::new(Notify::new());
    let signal = Arc::clone(&second_done);
    Router::new()
        .route(
            "/first",
            route(move |_req| {
                let second_done = Arc::clone(&second_done);
                async move {
                    second_done.notified().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    "first\n"
                }
            }),
        )
        .route(
            "/second",
            route(move |_req| {
                let signal = Arc::clone(&signal);
                async move {
                    signal.notify_one();
                    "second\n"
                }
            }),
        )
}

/// (handler ms, queue ms) from a response's `server-timing` header.
fn timing(response: &RawResponse) -> (f64, f64) {
    let value = response
        .header("server-timing")
        .expect("server-timing header");
    let mut handler = None;
    let mut queue = None;
    for metric in value.split(',') {
        let (name, dur) = metric.trim().split_once(";dur=").expect("name;dur=value");
        let ms: f64 = dur.parse().expect("milliseconds");
        match name {
            "handler" => handler = Some(ms),
            "queue" => queue = Some(ms),
            other => panic!("unexpected metric {other}"),
        }
    }
    (
        handler.expect("handler metric"),
        queue.expect("queue metric"),
    )
}

#[tokio::test]
async fn responses_report_handler_time_and_head_of_line_wait() {
    let server = serve(app()).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/first"), get("/second")))
        .await;
    let responses = client.responses(2).await;
    let (first_handler, _) = timing(&responses[0]);
    let (_, second_queue) = timing(&responses[1]);
    assert!(
        first_handler >= 50.0,
        "first handler ran {first_handler} ms"
    );
    assert!(
        second_queue >= 50.0,
        "the second response waited {second_queue} ms behind the first"
    );
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn server_timing_can_be_turned_off() {
    let server = serve_with(app(), Config::default().server_timing(false)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/first"), get("/second")))
        .await;
    for response in client.responses(2).await {
        assert_eq!(response.header("server-timing"), None);
    }
    drop(client);
    server.shutdown().await;
}
