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
