// hyper-peer: the reference the load tests compare `pipelined` against (ratios in
// loadtest/RESULTS.md are "× hyper-peer"). Plain hyper 1.x HTTP/1.1 server with
// `pipeline_flush(true)` (NO_PIPELINE_FLUSH=1 turns it off), multi-threaded tokio runtime.
// Same routes as the demo: /plaintext ("Hello, World!"), /delay/{ms}.
// usage: hyper-peer [127.0.0.1:PORT]   (used by compare.sh, callgrind.sh, extras.sh;
// stop it with SIGTERM or SIGINT: it has no graceful shutdown)
// Vendored from ../shared/bench/peers so loadtest/ needs nothing outside the repository.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use std::{convert::Infallible, time::Duration};
use tokio::net::TcpListener;

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if let Some(ms) = path.strip_prefix("/delay/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Response::builder().header("content-type", "text/plain").body(Full::new(Bytes::from(format!("{path}\n")))).unwrap());
    }
    Ok(Response::builder().header("content-type", "text/plain").body(Full::new(Bytes::from_static(b"Hello, World!"))).unwrap())
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await.unwrap();
    eprintln!("hyper-peer on {addr}");
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new().pipeline_flush(std::env::var_os("NO_PIPELINE_FLUSH").is_none()).serve_connection(TokioIo::new(stream), service_fn(handle)).await;
        });
    }
}
