//! Pipelined safe requests run concurrently, yet answers leave in request order.

mod common;

use std::sync::Arc;

use common::{get, serve, Client};
use pipelined::Router;
use tokio::sync::Notify;

/// Handler 1 can only finish after handler 2 has started: a serial engine would wait for
/// handler 1 for ever (and the test's hang guard would fail it).
#[tokio::test]
async fn first_handler_waits_for_a_signal_only_the_second_sends() {
    let signal = Arc::new(Notify::new());
    let (wait, send) = (Arc::clone(&signal), Arc::clone(&signal));
    let app = Router::new()
        .route(
            "/first",
            pipelined::get(move |_req| {
                let signal = Arc::clone(&wait);
                async move {
                    signal.notified().await;
                    "first\n"
                }
            }),
        )
        .route(
            "/second",
            pipelined::get(move |_req| {
                let signal = Arc::clone(&send);
                async move {
                    // notify_one stores a permit if the first handler is not waiting yet.
                    signal.notify_one();
                    "second\n"
                }
            }),
        );
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/first"), get("/second")))
        .await;
    let responses = client.responses(2).await;
    assert_eq!(responses[0].text(), "first\n");
    assert_eq!(responses[1].text(), "second\n");
    drop(client);
    server.shutdown().await;
}

/// A handler that is ready on its first poll runs inline on the connection's own task (no
/// spawn, no oneshot); one that is still pending moves to a task of its own.
#[tokio::test]
async fn ready_handlers_run_inline_and_pending_ones_get_a_task() {
    let app = Router::new()
        .route(
            "/ready",
            pipelined::get(|_req| async { format!("{:?}\n", tokio::task::try_id()) }),
        )
        .route(
            "/pending",
            pipelined::get(|_req| async {
                tokio::task::yield_now().await;
                format!("{:?}\n", tokio::task::try_id())
            }),
        );
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!(
            "{}{}{}{}",
            get("/ready"),
            get("/pending"),
            get("/ready"),
            get("/pending")
        ))
        .await;
    let ids: Vec<String> = client.responses(4).await.iter().map(|r| r.text()).collect();
    assert!(ids.iter().all(|id| id.starts_with("Some(")), "{ids:?}");
    assert_eq!(ids[0], ids[2], "ready handlers share the connection's task");
    assert_ne!(ids[1], ids[0], "a pending handler runs on its own task");
    assert_ne!(ids[3], ids[0], "a pending handler runs on its own task");
    assert_ne!(ids[1], ids[3], "each pending handler gets its own task");
    drop(client);
    server.shutdown().await;
}
