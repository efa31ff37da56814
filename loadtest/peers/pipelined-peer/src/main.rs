// pipelined-peer: hyper-peer's service, served by `pipelined::serve` with the default `Config`
// (issue #19 point 2: the Service path, engine against engine). Same routes as hyper-peer:
// /plaintext ("Hello, World!") and /delay/{ms}; same `Full<Bytes>` body, no Router.
// usage: pipelined-peer [127.0.0.1:PORT]   (stop it with SIGTERM or SIGINT)

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use pipelined::bytes::Bytes;
use pipelined::http::{Request, Response};
use pipelined::Body;
use tokio::net::TcpListener;

async fn handle(req: Request<Body>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if let Some(ms) = path.strip_prefix("/delay/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let body = Full::new(Bytes::from(format!("{path}\n")));
        return Ok(Response::builder().header("content-type", "text/plain").body(body).unwrap());
    }
    let body = Full::new(Bytes::from_static(b"Hello, World!"));
    Ok(Response::builder().header("content-type", "text/plain").body(body).unwrap())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9004".into());
    let listener = TcpListener::bind(&addr).await.unwrap();
    eprintln!("pipelined-peer on {addr}");
    let server = pipelined::serve(listener, tower::service_fn(handle));
    tokio::select! {
        result = server => result.unwrap(),
        _ = tokio::signal::ctrl_c() => {}
    }
}
