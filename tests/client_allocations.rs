//! Issue #20 point 6, measured: in steady state, a pipelined request costs the client no
//! allocation beyond the response's own.
//!
//! **The response's own allocations** are those of the one thing the client hands over and
//! cannot keep: the response's `HeaderMap` (`http::response::Parts::headers`). The head parser
//! builds it with `HeaderMap::with_capacity(fields)` and appends each field
//! (`proto/response_head.rs`), which allocates the map's index table and its entries vector:
//! [`response_parts`] measures that the way the parser does it, for this response's one field.
//! Everything else a response is made of allocates nothing per request:
//! - its head and body are `Bytes` carved out of the connection's read buffer (`split_to`,
//!   `slice`: a reference count, no copy; the buffer is reclaimed in place once the caller
//!   has dropped them, which [`BATCHES`] is long enough to cross);
//! - its field names are `http`'s standard names (no allocation), its values slices of the
//!   head (a name `http` does not know would add one allocation per such field, its lowercased
//!   copy: the response's own too, not exercised here);
//! - its `Extensions` are empty (allocated only when one is inserted);
//! - the body (`Incoming`) arrived whole with the head: one frame, no hand-off.
//!
//! And the client's own per-request state lives in storage made once per connection: the
//! request's slot (`pipeline_depth` of them, `client/slots.rs`), the wakers kept in it
//! (reference counts), the `Arc` the response future holds (a clone), the write buffer the
//! head is encoded into and the read buffer (kept and reused), the in-flight queue (sized to
//! the depth). So a request costs exactly [`response_parts`].
//!
//! `allocation_counter` (this test binary's global allocator) counts the allocations made on
//! one thread inside a closure. The runtime is a current-thread one driven by that thread, so
//! the connection's task, the scripted server and the caller all run there and nothing else
//! is counted; the scripted server reuses its buffers, and the requests are built from a
//! static `Uri` (checked to allocate nothing), so what is counted is the client's.

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use pipelined::client::{self, ResponseFuture, SendRequest};
use tower::Service;

#[path = "common/canned.rs"]
mod canned;

/// Requests per pipelined batch: the client's default depth, wrk's pipelining script.
const PER_BATCH: usize = 16;

/// Batches counted after the warm-up: 40 × 16 responses of 52 bytes are 33 KiB, so the
/// client's 16 KiB read buffer is reclaimed (its start reused) at least once while counted.
const BATCHES: usize = 40;

/// Batches before counting: the write buffer and the head parser's field list sized, the
/// runtime's queues grown.
const WARM: usize = 2;

/// The answer to every request: one header field, as little as a response can carry and still
/// say where it ends.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";

const BODY: &[u8] = b"Hello, World!";

/// A request the client can send, built without allocating: its `Uri` is static bytes.
fn request() -> Request<Empty<Bytes>> {
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = Uri::from_static("http://bench/plaintext");
    request
}

/// One pipelined batch: [`PER_BATCH`] calls before any answer is awaited, then each response
/// awaited in order and its body read to the end. `pending` is the caller's, reused.
async fn batch(send: &mut SendRequest<Empty<Bytes>>, pending: &mut Vec<ResponseFuture>) {
    for _ in 0..PER_BATCH {
        send.ready().await.unwrap();
        pending.push(send.call(request()));
    }
    for response in pending.drain(..) {
        let response = response.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            let data = frame.data_ref().expect("no trailers");
            assert_eq!(data, &BODY[read..read + data.len()]);
            read += data.len();
        }
        assert_eq!(read, BODY.len());
    }
}

/// The allocations a response's own parts cost: its `HeaderMap`, made and filled as the head
/// parser makes it (`HeaderMap::with_capacity` for the fields parsed, each value a slice of
/// the head's `Bytes`), for [`RESPONSE`]'s one field.
fn response_parts() -> u64 {
    let head = Bytes::from_static(RESPONSE);
    let counted = allocation_counter::measure(|| {
        let mut headers = HeaderMap::with_capacity(1);
        let value = HeaderValue::from_maybe_shared(head.slice(33..35)).unwrap();
        headers.append(CONTENT_LENGTH, value);
        std::hint::black_box(headers);
    });
    counted.count_total
}

/// Allocations per batch of [`PER_BATCH`] requests, [`BATCHES`] batches after [`WARM`].
fn allocations_per_batch() -> Vec<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let server = runtime.spawn(canned::serve(theirs, RESPONSE));
    let (mut send, connection) = client::handshake::<_, Empty<Bytes>>(ours);
    let connection = runtime.spawn(connection);
    let mut pending = Vec::with_capacity(PER_BATCH);
    for _ in 0..WARM {
        runtime.block_on(batch(&mut send, &mut pending));
    }
    let mut per_batch = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let counted = allocation_counter::measure(|| {
            runtime.block_on(batch(&mut send, &mut pending));
        });
        per_batch.push(counted.count_total);
    }
    drop(send);
    runtime.block_on(connection).unwrap().unwrap();
    runtime.block_on(server).unwrap();

    let boxed = allocation_counter::measure(|| drop(std::hint::black_box(Box::new(0u8))));
    assert_eq!(boxed.count_total, 1, "allocations are not being counted");
    per_batch
}

#[test]
fn building_a_request_from_a_static_uri_allocates_nothing() {
    let counted = allocation_counter::measure(|| drop(std::hint::black_box(request())));
    assert_eq!(counted.count_total, 0);
}

#[test]
fn a_pipelined_request_costs_the_client_only_its_responses_header_map() {
    let per_batch = allocations_per_batch();
    let parts = response_parts();
    assert!(parts > 0, "a HeaderMap with one field allocates");
    let expected = PER_BATCH as u64 * parts;
    assert!(
        per_batch.iter().all(|&n| n == expected),
        "{PER_BATCH} requests should cost {parts} allocations each (their response's \
         HeaderMap), none of the client's own; counted per batch: {per_batch:?}"
    );
}
