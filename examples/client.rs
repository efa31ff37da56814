//! Pipelines 100 GETs over one connection with `pipelined::client` and prints when each
//! answer arrived. With the demo server running (`cargo run --release`):
//!
//! ```sh
//! cargo run --example client --features client                       # /plaintext x 100
//! cargo run --example client --features client -- http://127.0.0.1:8080/delay/20
//! ```
//!
//! Against this project's server the 100 answers of `/delay/20` arrive in four rounds of
//! ~20 ms (it runs up to 32 requests of a connection at once: measured, the last after 86 ms);
//! against a serial server (`pipelined serve --engine hyper`) they take 100 × 20 ms (2,155 ms).

use std::time::Instant;

use http_body_util::{BodyExt, Empty};
use pipelined::bytes::Bytes;
use pipelined::client::Builder;
use pipelined::http::{Request, Uri};
use tower::Service;

const REQUESTS: usize = 100;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080/plaintext".to_owned());
    let uri: Uri = url.parse()?;
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    // Room for the whole pipeline: all 100 requests go out before the first answer is read.
    let (mut send, connection) = Builder::new()
        .pipeline_depth(REQUESTS)
        .handshake::<_, Empty<Bytes>>(tcp);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection ended: {e}");
        }
    });

    let start = Instant::now();
    let mut answers = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        send.ready().await?;
        answers.push(send.call(Request::get(uri.clone()).body(Empty::new())?));
    }
    println!("{REQUESTS} requests to {uri} on one connection");
    for (i, answer) in answers.into_iter().enumerate() {
        let response = answer.await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        println!("{:>3}  {status}  {ms:>8.2} ms  {} bytes", i + 1, body.len());
    }
    Ok(())
}
