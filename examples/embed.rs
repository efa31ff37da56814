//! Embedding `pipelined`: your own routes on [`pipelined::Router`], served with ordered
//! concurrent pipelining.
//!
//! ```text
//! cargo run --example embed                  # listens on 127.0.0.1:3000
//! cargo run --example embed -- 127.0.0.1:0   # any free port; the address is printed
//!
//! curl http://127.0.0.1:3000/hello/ada
//! curl http://127.0.0.1:3000/health          # answered inline, from the parsed head
//! curl --data-binary @Cargo.toml http://127.0.0.1:3000/upload
//! printf 'GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
//!     | curl -s telnet://127.0.0.1:3000      # two pipelined requests, two answers in order
//! ```
//!
//! Ctrl-C stops accepting, answers the requests already read, and exits.

use std::net::SocketAddr;

use http::Request;
use http_body_util::BodyExt;
use pipelined::{get, get_inline, post, Answer, Body, BodyError, Config, PathParams, Router};

/// `GET /hello/{name}`: a path parameter.
async fn hello(req: Request<Body>) -> String {
    let params = req.extensions().get::<PathParams>();
    let name = params.and_then(|p| p.get("name")).unwrap_or("stranger");
    format!("hello, {name}\n")
}

/// `POST /upload`: reads the whole body (it streams in from the connection as it arrives).
/// A body that fails to arrive answers with its status (413, 400) through `?`.
async fn upload(req: Request<Body>) -> Result<String, BodyError> {
    let bytes = req.into_body().collect().await?.to_bytes();
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    Ok(format!("received {} bytes, {lines} lines\n", bytes.len()))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .expect("the first argument must be an address like 127.0.0.1:3000"),
        None => SocketAddr::from(([127, 0, 0, 1], 3000)),
    };
    let app = Router::new()
        .route(
            "/",
            get(|_req| async { "try /hello/{name}, /health or POST /upload\n" }),
        )
        // An inline handler: answered from the parsed head, no request built, no future.
        .route("/health", get_inline(|_head| Answer::text("ok\n")))
        .route("/hello/{name}", get(hello))
        .route("/upload", post(upload));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    pipelined::serve(listener, app)
        .config(Config::default().max_pipeline_depth(64))
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await
}
