//! An axum app over HTTPS: pipelined HTTP/1.1 on the ordered engine and HTTP/2 on hyper's, on
//! one port, the client's ALPN choosing which.
//!
//! ```text
//! # a certificate for localhost, valid for a week
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
//!     -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
//!     -keyout key.pem -out cert.pem
//! cargo run --example tls --features tls-ring -- cert.pem key.pem            # https://127.0.0.1:3443
//! PIPELINED_TLS_CERT=cert.pem PIPELINED_TLS_KEY=key.pem cargo run --example tls --features tls-ring
//!
//! curl --cacert cert.pem https://localhost:3443/             # HTTP/2 (ALPN h2)
//! curl --cacert cert.pem --http1.1 https://localhost:3443/   # HTTP/1.1, the ordered engine
//! # a 300 ms request and an instant one, pipelined over TLS: both answers after ~300 ms, in order
//! printf 'GET /delay/300 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
//!     | openssl s_client -quiet -alpn http/1.1 -connect 127.0.0.1:3443
//! ```
//!
//! Ctrl-C stops accepting, answers the requests already read, and exits.

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{self, ConnectInfo};
use axum::http::{StatusCode, Version};
use axum::routing::get;
use axum::Router;
use pipelined::tls::{config_from_pem, TlsListener};
use pipelined::Listener;

const USAGE: &str = "usage: cargo run --example tls --features tls-ring -- CERT.pem KEY.pem [ADDR]
  (or set PIPELINED_TLS_CERT and PIPELINED_TLS_KEY; ADDR defaults to 127.0.0.1:3443)
make a test certificate with:
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \\
      -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \\
      -keyout key.pem -out cert.pem";

/// Says which engine answered: HTTP/2 is hyper's, HTTP/1.1 the ordered pipelining engine.
async fn hello(version: Version) -> String {
    format!("hello over TLS, {version:?}\n")
}

/// Waits `ms` milliseconds (at most 10 s): pipeline a few and watch them overlap.
async fn delay(extract::Path(ms): extract::Path<u64>) -> Result<String, StatusCode> {
    if ms > 10_000 {
        return Err(StatusCode::BAD_REQUEST);
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(format!("waited {ms} ms\n"))
}

async fn whoami(ConnectInfo(peer): ConnectInfo<SocketAddr>) -> String {
    format!("you are {peer}\n")
}

/// The certificate chain, the key and the address, from the arguments or the environment.
fn arguments() -> Option<(PathBuf, PathBuf, SocketAddr)> {
    let mut args = std::env::args_os().skip(1);
    let cert = args
        .next()
        .or_else(|| std::env::var_os("PIPELINED_TLS_CERT"))?;
    let key = args
        .next()
        .or_else(|| std::env::var_os("PIPELINED_TLS_KEY"))?;
    let addr = match args.next() {
        Some(addr) => addr.to_str()?.parse().ok()?,
        None => SocketAddr::from(([127, 0, 0, 1], 3443)),
    };
    Some((cert.into(), key.into(), addr))
}

#[tokio::main]
async fn main() {
    let Some((cert, key, addr)) = arguments() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    // Display, not Debug: the message names the file and what is wrong with it.
    if let Err(e) = run(&cert, &key, addr).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cert: &Path, key: &Path, addr: SocketAddr) -> Result<(), Box<dyn Error>> {
    let config = config_from_pem(cert, key)?;
    let app = Router::new()
        .route("/", get(hello))
        .route("/delay/{ms}", get(delay))
        .route("/whoami", get(whoami));

    let tcp = tokio::net::TcpListener::bind(addr).await?;
    let listener = TlsListener::new(tcp, Arc::new(config));
    println!("listening on https://{}", listener.local_addr()?);
    pipelined::serve(listener, app)
        .connect_info(ConnectInfo::<SocketAddr>)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}
