//! The client's whole HTTP/1.1 path minus the kernel (issue #20 point 6): one
//! `pipelined::client` connection over `tokio::io::duplex` to an in-process scripted server
//! that answers every request head with the same canned response, driven with pipelines of 16
//! GETs (all called, then all awaited and their bodies read to the end), on a current-thread
//! runtime. Reports time per pipeline (divan divides by the item count: ns per request).
//! `loadtest/client.sh` measures the same work against wrk over loopback TCP.
//!
//! Run with `cargo bench --features client --bench client`.

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use pipelined::client::{self, ResponseFuture, SendRequest};
use tower::Service;

#[path = "../tests/common/canned.rs"]
mod canned;

fn main() {
    divan::main();
}

/// Requests per pipeline: the client's default depth, as wrk's pipelining script sends.
const DEPTH: usize = 16;

/// The answer to every request: raw-limit's (loadtest/peers/raw-limit), a /plaintext answer
/// with the header fields TechEmpower's plaintext test requires.
const TECHEMPOWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\
Server: L\r\nDate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\nHello, World!";

/// The least an answer can carry and still say where it ends.
const MINIMAL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

const BODY: &[u8] = b"Hello, World!";

/// A GET built without allocating (a static `Uri`), so the caller's cost stays out of it.
fn request() -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = Uri::from_static("http://127.0.0.1:8080/plaintext");
    request
}

/// One pipeline: [`DEPTH`] calls before any answer is awaited, then each response awaited in
/// order and its body read to the end.
async fn pipeline(send: &mut SendRequest<Empty<Bytes>>, pending: &mut Vec<ResponseFuture>) {
    for _ in 0..DEPTH {
        send.ready().await.unwrap();
        pending.push(send.call(request()));
    }
    for response in pending.drain(..) {
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            read += frame.unwrap().data_ref().map_or(0, Bytes::len);
        }
        assert_eq!(read, BODY.len());
    }
}

/// Runs the scripted server answering `response` and benchmarks pipelines through one
/// connection to it.
fn bench_with(bencher: divan::Bencher, response: &'static [u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    rt.spawn(canned::serve(theirs, response));
    let (mut send, connection) = client::handshake::<_, Empty<Bytes>>(ours);
    rt.spawn(connection);
    let mut pending = Vec::with_capacity(DEPTH);
    // Warm up: buffers sized, the runtime's queues grown.
    rt.block_on(pipeline(&mut send, &mut pending));
    bencher
        .counter(divan::counter::ItemsCount::new(DEPTH))
        .bench_local(|| rt.block_on(pipeline(&mut send, &mut pending)));
}

/// raw-limit's answer (four header fields), as `loadtest/client.sh` measures against wrk.
#[divan::bench(sample_count = 400, sample_size = 8)]
fn pipeline16_techempower_answer(bencher: divan::Bencher) {
    bench_with(bencher, TECHEMPOWER);
}

/// An answer with Content-Length only: the response's `HeaderMap` at its smallest.
#[divan::bench(sample_count = 400, sample_size = 8)]
fn pipeline16_minimal_answer(bencher: divan::Bencher) {
    bench_with(bencher, MINIMAL);
}
