//! An axum app on the ordered concurrent engine — the one-line switch:
//!
//! ```text
//! axum::serve(listener, app)        // hyper: pipelined requests one at a time
//! pipelined::serve(listener, app)   // pipelined: concurrently, answered in order
//! ```
//!
//! No adapter: axum's `Router` is a `tower::Service` for any request body that is an
//! `http_body::Body<Data = Bytes>`, and `pipelined::Body` is one. Extractors, state,
//! rejections, fallbacks and `ConnectInfo` work unchanged.
//!
//! ```text
//! cargo run --example axum                   # listens on 127.0.0.1:3000
//! cargo run --example axum -- 127.0.0.1:0    # any free port; the address is printed
//!
//! curl http://127.0.0.1:3000/users/7
//! curl -H 'content-type: application/json' -d '{"name":"ada"}' http://127.0.0.1:3000/users
//! # a 300 ms request and an instant one, pipelined: both answers after ~300 ms, in order
//! printf 'GET /delay/300 HTTP/1.1\r\nHost: x\r\n\r\nGET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
//!     | curl -s telnet://127.0.0.1:3000
//! ```
//!
//! Ctrl-C stops accepting, answers the requests already read, and exits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Serialize)]
struct User {
    id: u32,
    name: String,
}

async fn user(Path(id): Path<u32>) -> Json<User> {
    let name = format!("user{id}");
    Json(User { id, name })
}

async fn create_user(Json(new): Json<NewUser>) -> (StatusCode, Json<User>) {
    (
        StatusCode::CREATED,
        Json(User {
            id: 1,
            name: new.name,
        }),
    )
}

/// Waits `ms` milliseconds (at most 10 s): pipeline a few and watch them overlap.
async fn delay(Path(ms): Path<u64>) -> Result<String, StatusCode> {
    if ms > 10_000 {
        return Err(StatusCode::BAD_REQUEST);
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(format!("waited {ms} ms\n"))
}

async fn whoami(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
    format!("you are {peer}\n")
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
        .route("/", get(|| async { "hello from axum on pipelined\n" }))
        .route("/users/{id}", get(user))
        .route("/users", post(create_user))
        .route("/delay/{ms}", get(delay))
        .route("/whoami", get(whoami))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") });

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    pipelined::serve(listener, app)
        // What axum::serve's `into_make_service_with_connect_info::<SocketAddr>()` does.
        .connect_info(ConnectInfo::<SocketAddr>)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await
}
