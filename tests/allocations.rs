//! Invariant 8 of docs/ARCHITECTURE.md, measured: on the steady-state pipelined path, a
//! finished in-order response costs no allocation of the engine's own.
//!
//! `allocation_counter` (this test binary's global allocator) counts the allocations made on
//! one thread inside a closure. The runtime is a current-thread one driven by that thread, so
//! the connection's task, its handler and the client all run there and nothing else is
//! counted. The connection is warmed with one pipelined batch (buffers sized, the spare handler
//! box kept, the task spawned), then [`BATCHES`] more batches are counted one by one.
//!
//! What a request may still cost is its own parts, which the engine hands to the handler and
//! cannot keep: the parser fills the request's `HeaderMap` with `HeaderMap::reserve`, which
//! allocates the map's tables ([`request_parts`] measures that, the way the parser builds it),
//! unless the last response had a map of its own: that one, emptied, is the next request's
//! (`recycle_headers` in `src/conn/write.rs`), and a request then costs only what its handler
//! allocates for its response.
//! The target, the header values and the method share the read buffer's bytes; the handler
//! here is ready on its first poll with an empty body, so neither its future nor its response
//! allocates. The handler's future goes into the box kept from the last handler that finished
//! inline (`Dispatcher::spare` in `src/conn/dispatch.rs`), and the response is encoded straight
//! into the reused write buffer, so the engine adds nothing: dropping that box reuse adds one
//! allocation per request and fails this test.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Empty;
use pipelined::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Requests per pipelined batch: the engine's default depth floor, a typical pipelining burst.
const PER_BATCH: usize = 16;

/// Batches counted after the warm-up one.
const BATCHES: usize = 8;

/// Sends one pipelined batch and reads its answers, `answer.len()` bytes, into `answer`.
async fn round_trip(client: &mut DuplexStream, batch: &[u8], answer: &mut [u8]) {
    client.write_all(batch).await.unwrap();
    client.read_exact(answer).await.unwrap();
}

/// The answers of one batch, read until every response head has arrived (an empty body has
/// nothing after its head), to learn a batch's answer length.
async fn first_answers(client: &mut DuplexStream, batch: &[u8]) -> Vec<u8> {
    client.write_all(batch).await.unwrap();
    let mut answers = Vec::new();
    while count(&answers, b"\r\n\r\n") < PER_BATCH {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-batch");
        answers.extend_from_slice(&chunk[..n]);
    }
    answers
}

/// Allocations a parsed request's own parts cost: its `HeaderMap`, reserved for its one
/// header and filled with a value that shares the head's bytes, as `proto/request.rs` does.
fn request_parts() -> u64 {
    let head = Bytes::from_static(b"bench");
    let counted = allocation_counter::measure(|| {
        let mut request = Request::new(Body::empty());
        let headers = request.headers_mut();
        headers.reserve(1);
        let value = HeaderValue::from_maybe_shared(head.clone()).unwrap();
        headers.append(header::HOST, value);
        std::hint::black_box(request);
    });
    counted.count_total
}

/// Allocations a response with one header costs its handler: its `HeaderMap`'s tables.
fn response_parts() -> u64 {
    let counted = allocation_counter::measure(|| {
        std::hint::black_box(typed_response());
    });
    counted.count_total
}

/// An empty response with a `Content-Type`, as most handlers answer.
fn typed_response() -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::<Bytes>::new());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// How often `needle` occurs in `haystack`.
fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Serves one connection with `service` on a current-thread runtime (so the per-thread count
/// sees the connection, its handlers and the client, and nothing else), warms it with `warm`
/// pipelined batches of `GET /plaintext`, then counts the allocations of [`BATCHES`] more,
/// one by one. Each batch's answers must hold `marker` once per request.
fn allocations_per_batch(
    service: impl pipelined::HttpService,
    warm: usize,
    marker: &[u8],
) -> Vec<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = pipelined::serve_connection(server, service);
    let shutdown = connection.shutdown_handle();
    let served = runtime.spawn(std::future::IntoFuture::into_future(connection));

    let batch = "GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n"
        .repeat(PER_BATCH)
        .into_bytes();
    let first = runtime.block_on(first_answers(&mut client, &batch));
    assert_eq!(count(&first, marker), PER_BATCH);
    let mut answer = vec![0u8; first.len()];
    for _ in 1..warm {
        runtime.block_on(round_trip(&mut client, &batch, &mut answer));
    }
    let mut per_batch = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let counted = allocation_counter::measure(|| {
            runtime.block_on(round_trip(&mut client, &batch, &mut answer));
        });
        per_batch.push(counted.count_total);
        assert_eq!(count(&answer, marker), PER_BATCH);
    }
    shutdown.graceful_shutdown();
    drop(client);
    runtime.block_on(served).unwrap();

    let boxed = allocation_counter::measure(|| drop(std::hint::black_box(Box::new(0u8))));
    assert_eq!(boxed.count_total, 1, "allocations are not being counted");
    per_batch
}

#[test]
fn a_finished_in_order_response_costs_no_allocation_of_the_engines_own() {
    let service = tower::service_fn(|_req: Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new())))
    });
    // One warm-up batch: buffers sized, the spare handler box kept, the task spawned.
    let per_batch = allocations_per_batch(service, 1, b"HTTP/1.1 200 OK\r\n");
    let parts = request_parts();
    let expected = PER_BATCH as u64 * parts;
    // The `Date` line is formatted again (one `String`) when the wall clock's second ticks
    // over during a batch: at most one of these short batches can see that.
    let fewest = *per_batch.iter().min().unwrap();
    let most = *per_batch.iter().max().unwrap();
    assert_eq!(
        fewest, expected,
        "{PER_BATCH} requests should cost {parts} allocations each (their HeaderMap), none of \
         the engine's own; counted per batch: {per_batch:?}"
    );
    assert!(
        most <= expected + 1,
        "a batch allocated more than its requests' parts and one Date line: {per_batch:?}"
    );
}

/// A response's header map, written, becomes the next request's: a request whose handler
/// answers with headers costs the allocations of that answer and nothing for its own map.
/// Fails when the map is dropped instead (each request then costs `request_parts` more).
#[test]
fn a_written_responses_header_map_is_the_next_requests() {
    let service = tower::service_fn(|_req: Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(typed_response()))
    });
    // Two warm-up batches: the first request of the first has no map to inherit.
    let per_batch = allocations_per_batch(service, 2, b"content-type: text/plain\r\n");
    let (request, response) = (request_parts(), response_parts());
    assert!(
        request > 0 && response > 0,
        "maps allocate: {request}, {response}"
    );
    let expected = PER_BATCH as u64 * response;
    let fewest = *per_batch.iter().min().unwrap();
    let most = *per_batch.iter().max().unwrap();
    assert_eq!(
        fewest, expected,
        "{PER_BATCH} requests should cost their responses' {response} allocations each, and \
         none for their own map ({request} when it is not recycled); per batch: {per_batch:?}"
    );
    assert!(
        most <= expected + 1,
        "a batch allocated more than its responses and one Date line: {per_batch:?}"
    );
}

/// The inline path (`get_inline`, issue #19): no `http::Request` is built, so a request costs
/// no allocation at all in steady state, not even its own parts: its head is read where it was
/// parsed and its answer (a static body) encoded straight into the reused write buffer.
#[test]
fn an_inline_answer_costs_no_allocation_at_all() {
    let app = pipelined::Router::new().route(
        "/plaintext",
        pipelined::get_inline(|_head| pipelined::Answer::text("Hello, World!")),
    );
    // Two warm-up batches: the second is the first whose target the connection has seen twice
    // in a row, which is when its `Uri` is cached (`proto/target.rs`).
    let per_batch = allocations_per_batch(app, 2, b"Hello, World!");
    // As above, a batch may see the `Date` line formatted again when the second ticks over.
    let fewest = *per_batch.iter().min().unwrap();
    let most = *per_batch.iter().max().unwrap();
    assert_eq!(
        fewest, 0,
        "inline answers allocated, per batch: {per_batch:?}"
    );
    assert!(
        most <= 1,
        "more than one Date line per batch: {per_batch:?}"
    );
}
