// axum-peer: one axum hello app, served by `axum::serve` or by `pipelined::serve` (issue #19
// point 2: an axum app through pipelined against the same app through axum's own server).
// Routes: /plaintext ("Hello, World!", text/plain) and /delay/{ms} (answers after ms
// milliseconds), as the other peers.
// usage: axum-peer axum|pipelined [127.0.0.1:PORT]   (stop it with SIGTERM or SIGINT)

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

fn app() -> Router {
    Router::new()
        .route("/plaintext", get(|| async { "Hello, World!" }))
        .route(
            "/delay/{ms}",
            get(|Path(ms): Path<u64>| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("/delay/{ms}\n")
            }),
        )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let engine = args.next().unwrap_or_default();
    let addr = args.next().unwrap_or("127.0.0.1:9005".into());
    let listener = TcpListener::bind(&addr).await.unwrap();
    eprintln!("axum-peer ({engine}) on {addr}");
    match engine.as_str() {
        "axum" => {
            let server = axum::serve(listener, app());
            tokio::select! {
                result = server => result.unwrap(),
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        "pipelined" => {
            let server = pipelined::serve(listener, app());
            tokio::select! {
                result = server => result.unwrap(),
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        other => {
            eprintln!("usage: axum-peer axum|pipelined [ADDR] (got {other:?})");
            std::process::exit(2);
        }
    }
}
