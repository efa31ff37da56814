//! The engine's gauges reconcile: after the whole conformance table (every row alone and
//! pipelined), refused requests, resets with answers still owed, half-closed clients and
//! timed-out heads, `pipelined_in_flight_requests` and `pipelined_open_connections` are back
//! to exactly zero. Alone in its file: it installs the process-wide metrics recorder.

mod common;
#[path = "common/recorder.rs"]
mod recorder;
// Shared with tests/conformance.rs, which uses the rest of it (assert_table).
#[allow(dead_code)]
#[path = "conformance/runner.rs"]
mod runner;
#[path = "conformance/table.rs"]
mod table;

use std::time::Duration;

use common::{eventually, get, serve_with, Client};
use pipelined::{get as route_get, Config, Router};
use recorder::Metrics;

fn app() -> Router {
    Router::new()
        .route("/fast", route_get(|_req| async { "fast\n" }))
        .route(
            "/never",
            route_get(|_req| std::future::pending::<&'static str>()),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_return_to_zero_after_conformance_refusals_resets_half_closes_and_timeouts() {
    let gauges = Metrics::default();
    metrics::set_global_recorder(gauges.clone()).expect("the only recorder of this test binary");

    // Every conformance row, alone and pipelined, on a metered server of its own (the rows'
    // answers are tests/conformance.rs's business; here only what they leave behind counts).
    let cases = table::all();
    assert!(!cases.is_empty());
    // Metered: the gauges below are the engine's, counted through the whole table.
    runner::run_table(&cases, |config| config.metrics(true)).await;
    assert!(
        gauges.registered("pipelined_open_connections"),
        "the conformance server was metered"
    );
    let g = gauges.clone();
    eventually(
        "the conformance table left nothing open or in flight",
        move || {
            g.gauge("pipelined_open_connections") == 0.0
                && g.gauge("pipelined_in_flight_requests") == 0.0
        },
    )
    .await;
    let config = Config::default()
        .metrics(true)
        .header_read_timeout(Duration::from_millis(200));
    let server = serve_with(app(), config).await;

    // Refused: two answered, then a malformed request (400, close).
    for _ in 0..10 {
        let mut client = Client::connect(server.addr).await;
        let bad = "GET /fast HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n";
        client
            .send(format!("{}{}{bad}", get("/fast"), get("/fast")))
            .await;
        let statuses: Vec<u16> = client.responses(3).await.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 400]);
    }

    // Reset with answers still owed: one answered, five never.
    let mut owing = Vec::new();
    for _ in 0..20 {
        let mut client = Client::connect(server.addr).await;
        client
            .send(format!("{}{}", get("/fast"), get("/never").repeat(5)))
            .await;
        assert_eq!(client.response().await.status, 200);
        owing.push(client);
    }
    let g = gauges.clone();
    eventually("the owed requests are counted in flight", move || {
        g.gauge("pipelined_in_flight_requests") == 100.0
    })
    .await;
    for client in owing {
        client.stream.set_zero_linger().unwrap();
        drop(client);
    }

    // Half-closed: every answer still arrives.
    let mut client = Client::connect(server.addr).await;
    client.send(get("/fast").repeat(4)).await;
    client.shutdown_write().await;
    assert_eq!(client.responses(4).await.len(), 4);
    drop(client);

    // A head that never finishes: 408.
    let mut client = Client::connect(server.addr).await;
    client.send("GET /fast HTTP/1.1\r\nHo").await;
    assert_eq!(client.response().await.status, 408);
    drop(client);

    let g = gauges.clone();
    eventually("every connection closed and nothing in flight", move || {
        g.gauge("pipelined_open_connections") == 0.0
            && g.gauge("pipelined_in_flight_requests") == 0.0
    })
    .await;
    server.shutdown().await;
}
