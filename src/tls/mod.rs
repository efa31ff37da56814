//! HTTPS (feature `tls-ring`): a [`Listener`](crate::Listener) that does the TLS handshake through
//! rustls, and lets the protocol agreed by ALPN pick the engine.
//!
//! ALPN `h2` goes to hyper's HTTP/2 server, `http/1.1` to the ordered pipelining engine, and a
//! client that offers no ALPN is sniffed as on plain TCP (the HTTP/2 preface, else HTTP/1.1).
//! Pipelining gains most over TLS: a batch of finished responses leaves in one write, so it is
//! encrypted into as few records as it fills (16 KiB each), not one record per response.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use pipelined::tls::{config_from_pem, TlsListener};
//! use pipelined::{get, Router};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let app = Router::new().route("/", get(|_req| async { "hello over TLS\n" }));
//!     let config = config_from_pem("cert.pem", "key.pem")?;
//!     let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//!     pipelined::serve(TlsListener::new(tcp, Arc::new(config)), app).await?;
//!     Ok(())
//! }
//! ```

mod listener;
mod pem;

pub use listener::TlsListener;
pub use pem::{config_from_pem, TlsError};
/// The rustls this crate is built with, so a [`rustls::ServerConfig`] made by hand is the one
/// [`TlsListener::new`] takes.
pub use rustls;
/// A connection [`TlsListener`] accepted: the handshake is done, and
/// `get_ref().1.alpn_protocol()` says what was agreed.
pub use tokio_rustls::server::TlsStream;

/// The ALPN protocols offered when a config names none, in the server's order of preference:
/// HTTP/2 first (feature `http2`), since a client that offers both is best served multiplexed.
pub(crate) fn default_alpn() -> Vec<Vec<u8>> {
    let mut protocols = Vec::with_capacity(2);
    if cfg!(feature = "http2") {
        protocols.push(b"h2".to_vec());
    }
    protocols.push(b"http/1.1".to_vec());
    protocols
}
