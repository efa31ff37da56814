//! `pipelined`: an HTTP/1.1 server that runs pipelined requests **concurrently** and writes
//! their responses **strictly in request order**.
//!
//! HTTP/1.1 lets a client send requests back to back on one connection without waiting for
//! answers (pipelining). Mainstream servers then handle them one at a time, so one slow request
//! delays every request behind it (head-of-line blocking): 16 pipelined requests of 20 ms each
//! take 320 ms. Here each request is started as soon as it is parsed and the 16 take about
//! 20 ms; each connection is one task that keeps a place in the response order for every
//! request it started (Go's `chan chan *http.Response`, without the channels), so responses
//! still leave in order, as RFC 9112 requires.
//!
//! Where a newcomer finds each rule of the HTTP/1.1 engine (`src/conn/`; its module doc has the
//! full map, and `docs/ARCHITECTURE.md` the numbered invariants): a request is **parsed** in
//! `proto/request.rs` (httparse, then RFC 9112's rules), **started** in
//! `conn/connection/start.rs` (barrier, readiness, then the handler's first poll inline in
//! `conn/dispatch.rs`), kept **in order** by `conn/order.rs` alone, and the decision to
//! **close** is `conn/keep_alive.rs`'s alone. HTTP/2 is hyper's engine under the same
//! [`Config`] (`src/h2/`); `src/protocol.rs` picks one per connection.
//!
//! What pipelining still costs, and what the engine does about it:
//! - a finished response waits for every earlier one (ordering is the protocol's rule); the
//!   work itself no longer waits;
//! - unsafe methods (POST, PUT, DELETE, …) are barriers: one starts after every earlier request
//!   finished, and nothing after it starts before it finished (RFC 9112 §9.3.2);
//! - requests in flight per connection are bounded ([`Config::max_pipeline_depth`]); when the
//!   bound is hit the connection stops reading and TCP pushes back on the client;
//! - every request gets a response in its slot: a handler that fails or panics becomes a `500`
//!   and the connection goes on.
//!
//! ```no_run
//! use pipelined::{get, Router};
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let app = Router::new().route("/plaintext", get(|_req| async { "Hello, World!" }));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     pipelined::serve(listener, app).await
//! }
//! ```
//!
//! Features (so an embedder builds only what it serves):
//! - `http2` (default): the same port also speaks HTTP/2 (cleartext, prior knowledge) through
//!   hyper's HTTP/2 server, and `Config::http2` can turn it off. Without it the library is an
//!   HTTP/1.1 engine and hyper is not in the build.
//! - `metrics`: the engine's metrics through the [`metrics`](https://docs.rs/metrics) facade,
//!   turned on per server with `Config::metrics`.
//! - `tls-ring`: HTTPS through rustls with its ring provider: `tls::TlsListener` does each
//!   handshake off the accept loop and lets ALPN pick the engine (`h2`: HTTP/2, `http/1.1`: the
//!   pipelining engine); `tls::config_from_pem` loads a certificate and key.
//! - `client`: `pipelined::client`, an HTTP/1.1 client that pipelines (a `tower::Service` per
//!   connection, and a pool), on the same wire code as the server; no added dependency.
//!
//! [`http`], [`http_body`] and [`bytes`] are re-exported, so an application needs no dependency
//! of its own on them to write a handler or a `Service` (and never two versions of them).
// `unsafe` is denied everywhere but in `proto::trusted`, the one module allowed it (its docs
// say why and what makes it sound).
#![deny(unsafe_code)]
#![deny(missing_docs)]
// docs.rs (`--cfg docsrs`, Cargo.toml's `package.metadata.docs.rs`) marks every feature-gated
// item with the feature it needs; rustdoc's `doc_cfg` reads the `cfg`s itself.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench;
mod body;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod conn;
mod drain;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "http2")]
mod h2;
mod inline;
mod linger;
mod listener;
#[cfg(feature = "metrics")]
mod meter;
mod proto;
mod protocol;
mod response;
mod router;
mod serve_connection;
mod server;
mod service;
mod shared;
mod shutdown;
mod stats;
mod timing;
#[cfg(feature = "tls-ring")]
pub mod tls;

/// The `bytes` crate this one is built with: [`bytes::Bytes`] is what bodies carry.
pub use bytes;
/// The `http` crate this one is built with: [`http::Request`], [`http::Response`],
/// [`http::StatusCode`], … as handlers and services take and return them.
pub use http;
/// The `http-body` crate this one is built with: the [`http_body::Body`] trait a response body
/// implements.
pub use http_body;

pub use body::{Body, BodyError};
pub use config::{Config, MIN_PIPELINE_DEPTH};
#[cfg(feature = "metrics")]
pub use conn::meter::{DEPTH_BUCKETS, SECONDS_BUCKETS};
pub use inline::{Answer, HeadView};
pub use listener::{Listener, Protocol};
pub use response::{IntoResponse, ResponseBody};
pub use router::{
    delete, get, get_inline, head, options, patch, post, put, MatchedPath, MethodRouter,
    PathParams, Route, RouteFuture, Router,
};
pub use serve_connection::{serve_connection, ConnectionFuture, ConnectionHandle, ServeConnection};
pub use server::{serve, Serve, WithGracefulShutdown};
pub use service::HttpService;
pub use stats::ServerStats;

/// The error type services may return; the engine answers `500` for it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Compiles the README's Rust examples as doc tests, so the embedding example stays true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
