//! A tower-http middleware stack in front of [`pipelined::Router`]: trace, request id,
//! catch-panic, timeout and compression. Each layer sees every pipelined request, and the
//! answers — including the ones the layers make up (408, 500) — leave in request order.
//!
//! ```text
//! cargo run --example layers                  # listens on 127.0.0.1:3000
//! cargo run --example layers -- 127.0.0.1:0   # any free port; the address is printed
//!
//! curl -i http://127.0.0.1:3000/                        # x-request-id in the answer
//! curl -i -H 'accept-encoding: gzip' http://127.0.0.1:3000/big --output -
//! curl -i http://127.0.0.1:3000/sleep/5000              # 408 from the timeout layer
//! curl -i http://127.0.0.1:3000/panic                   # 500 from the catch-panic layer
//! printf 'GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET /sleep/3000 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
//!     | curl -s telnet://127.0.0.1:3000                 # 500, 408, 200, in that order
//! ```
//!
//! The trace layer logs each request and response (`RUST_LOG=tower_http=debug` for more).
//! Ctrl-C stops accepting, answers the requests already read, and exits.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, StatusCode};
use pipelined::{get, Body, PathParams, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

/// How long a handler may take before the timeout layer answers `408` for it.
const TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /sleep/{ms}`: sleeps (at most a minute), so the timeout layer has something to cut.
async fn sleep(req: Request<Body>) -> Result<String, StatusCode> {
    let ms = req
        .extensions()
        .get::<PathParams>()
        .and_then(|p| p.get("ms"));
    let ms: u64 = ms
        .and_then(|ms| ms.parse().ok())
        .filter(|ms| *ms <= 60_000)
        .ok_or(StatusCode::BAD_REQUEST)?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(format!("slept {ms} ms\n"))
}

/// `GET /panic`: the catch-panic layer turns this into a `500`, in its slot.
async fn panics(_req: Request<Body>) -> &'static str {
    panic!("this handler panics on purpose")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_http=debug")),
        )
        .init();
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .expect("the first argument must be an address like 127.0.0.1:3000"),
        None => SocketAddr::from(([127, 0, 0, 1], 3000)),
    };
    let big = "pipelined answers pipelined requests in order. ".repeat(500);
    let app = Router::new()
        .route(
            "/",
            get(|_req| async { "hello through a tower-http stack\n" }),
        )
        .route("/big", get(move |_req| std::future::ready(big.clone())))
        .route("/sleep/{ms}", get(sleep))
        .route("/panic", get(panics));

    // Outermost first: the request id is set before the trace span opens, and copied onto
    // every answer, including those the inner layers make up.
    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            TIMEOUT,
        ))
        .layer(CompressionLayer::new())
        .service(app);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    pipelined::serve(listener, service)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await
}
