//! An HTTP/1.1 client that pipelines: many requests written on one connection without waiting,
//! each response handed to its own request, and correct when the server is not.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use http_body_util::{BodyExt, Empty};
//! use pipelined::bytes::Bytes;
//! use pipelined::client;
//!
//! let tcp = tokio::net::TcpStream::connect("127.0.0.1:3000").await?;
//! let (mut send, connection) = client::handshake::<_, Empty<Bytes>>(tcp);
//! tokio::spawn(connection);
//! // Ten requests on the wire before the first answer arrives.
//! let mut answers = Vec::new();
//! for i in 0..10 {
//!     let request = http::Request::get(format!("http://127.0.0.1:3000/{i}")).body(Empty::new())?;
//!     send.ready().await?;
//!     answers.push(tower::Service::call(&mut send, request));
//! }
//! for answer in answers {
//!     let body = answer.await?.into_body().collect().await?.to_bytes();
//!     println!("{body:?}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Two levels: [`handshake`] over a stream you connected ([`SendRequest`], a
//! `tower::Service`, and the [`Connection`] future that does the I/O, in the style of hyper's
//! `client::conn::http1`); and [`Client`], a pool over it (per authority, N connections ×
//! depth D, plain TCP or TLS with feature `tls-ring`) that sends a request again on a new
//! connection when the RFC allows it.
//!
//! # Guarantees
//!
//! - **Order.** Requests are written in the order they are called, and each response goes to
//!   the oldest written request still owed one: a response is never given to the wrong request
//!   and a request never gets two.
//! - **Back pressure.** At most [`Builder::pipeline_depth`] requests are outstanding per
//!   connection; `poll_ready` waits for a place. A place comes back when the response has been
//!   read to its end (or dropped).
//! - **RFC 9112 §9.3.2.** A request whose method is not idempotent (POST, PATCH, …) is
//!   written only when no response is owed, and nothing is written behind it until its final
//!   status has arrived; so a connection lost mid-pipeline never leaves a non-idempotent
//!   request in doubt that could have been held back. [`Builder::pipeline_unsafe`] turns this
//!   off. A request carrying `Connection: close` is the last one written.
//! - **§9.3.1, a connection that ends early.** Each request still owed then fails with an
//!   [`Error`] whose [`ErrorKind`] says what is known: [`NotSent`](ErrorKind::NotSent) (never
//!   written; always safe to send again; the request comes back), or
//!   [`NotAnswered`](ErrorKind::NotAnswered) ("not answered: may or may not have been
//!   processed"; the request comes back when its body was empty, so an idempotent one can be
//!   sent again). The response the connection was reading fails with
//!   [`Incomplete`](ErrorKind::Incomplete) or [`Protocol`](ErrorKind::Protocol).
//! - **Every framing** (RFC 9112 §6.3): Content-Length, chunked with extensions and trailers
//!   (the server's own decoder, `proto::decode`), a body delimited by the close, HEAD, 1xx
//!   before the final answer (skipped), 204 and 304. A malformed head or body, a head over
//!   [`Builder::max_head_bytes`], or an answer nobody asked for ends the connection as above.
//! - **Cancellation.** Dropping a response future before its request was written means it is
//!   never written. Dropping a response future or a body later never desyncs the
//!   connection: the rest of that response is read and thrown away (up to
//!   [`Builder::max_discard`] bytes; past that the connection closes and the requests behind it
//!   fail `NotAnswered`).
//! - **Bounded memory.** A response body the caller has not read yet holds at most
//!   [`Builder::max_body_buffer`] bytes before the connection stops reading.

mod body;
mod connection;
mod encode;
mod error;
mod pool;
mod send;
mod slots;

pub use body::{Incoming, ReasonPhrase, RequestBody};
pub use connection::Connection;
pub use encode::is_idempotent;
pub use error::{Error, ErrorKind};
pub use pool::{Client, ClientBuilder};
pub use send::{handshake, Builder, ResponseFuture, SendRequest};
