//! Invariant 1: responses leave in exactly the order requests arrived, whatever order the
//! handlers finish in.
//!
//! - A randomised stress: hundreds of connections, each pipelining a random number of requests
//!   whose handlers sleep a random time (or finish inline, without awaiting), mixed with HEAD
//!   requests; every connection must read back exactly its own tags, in the order it sent them.
//! - A deterministic worst case: sixteen handlers that can only finish in reverse order (each
//!   waits for a signal the next one sends when it finishes); the answers still come in order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{get, serve, serve_with, Client};
use pipelined::{Body, Config, PathParams, Router};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// A tiny seeded xorshift64 generator: reproducible randomness without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform enough in `lo..=hi` for a test.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The seed: `ORDERING_SEED` when set (to replay a failure), else a fixed default.
fn seed() -> u64 {
    std::env::var("ORDERING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0042)
}

/// `GET|HEAD /d/{ms}/{tag}`: sleeps `ms` milliseconds (none at all for 0, so the handler is
/// ready on its first poll and takes the engine's inline path) and echoes `tag`.
fn delay_app() -> Router {
    Router::new().route(
        "/d/{ms}/{tag}",
        pipelined::get(|req: http::Request<Body>| async move {
            let params = req.extensions().get::<PathParams>().expect("path params");
            let ms: u64 = params.get("ms").unwrap().parse().unwrap();
            let tag = params.get("tag").unwrap().to_owned();
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            tag
        }),
    )
}

/// One planned request: HEAD or GET, and the tag it must be answered with.
struct Planned {
    head: bool,
    tag: String,
    bytes: String,
}

/// Plans `depth` requests for connection `conn` from `rng`.
fn plan(rng: &mut XorShift, conn: usize, depth: u64) -> Vec<Planned> {
    (0..depth)
        .map(|seq| {
            let ms = rng.range(0, 20);
            // One request in ten is a HEAD: its response has a Content-Length but no body, so
            // a stray body would desynchronise every response after it.
            let head = rng.range(0, 9) == 0;
            let tag = format!("c{conn}.s{seq}");
            let path = format!("/d/{ms}/{tag}");
            let bytes = if head {
                format!("HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n")
            } else {
                get(&path)
            };
            Planned { head, tag, bytes }
        })
        .collect()
}

/// Runs `connections` connections against `config`, at most `parallel` at a time; each sends
/// its whole pipeline in one write and checks every answer against its plan, in order.
async fn stress(config: Config, connections: usize, parallel: usize) {
    let seed = seed();
    let server = serve_with(delay_app(), config).await;
    let addr = server.addr;
    let mut rng = XorShift::new(seed);
    let mut tasks = JoinSet::new();
    for conn in 0..connections {
        if tasks.len() >= parallel {
            tasks.join_next().await.unwrap().unwrap();
        }
        let depth = rng.range(1, 64);
        let planned = plan(&mut rng, conn, depth);
        tasks.spawn(async move {
            let mut client = Client::connect(addr).await;
            let wire: String = planned.iter().map(|p| p.bytes.as_str()).collect();
            client.send(wire).await;
            for (seq, p) in planned.iter().enumerate() {
                let res = if p.head {
                    client.head_response().await
                } else {
                    client.response().await
                };
                assert_eq!(res.status, 200, "seed {seed}: conn {conn} request {seq}");
                if p.head {
                    assert!(res.body.is_empty());
                    let len = p.tag.len().to_string();
                    assert_eq!(
                        res.header("content-length"),
                        Some(len.as_str()),
                        "seed {seed}: conn {conn} HEAD {seq} out of place"
                    );
                } else {
                    assert_eq!(
                        res.text(),
                        p.tag,
                        "seed {seed}: conn {conn} request {seq} out of order"
                    );
                }
            }
            // Nothing extra after the last answer: close our side and expect a clean EOF.
            client.shutdown_write().await;
            assert!(
                client.is_closed().await,
                "seed {seed}: conn {conn} extra bytes"
            );
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    server.shutdown().await;
}

/// 200 connections with the default depth (32): pipelines of up to 64 requests also exercise
/// the full-pipeline path, where the reader stops until the writer frees a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_delays_and_depths_answer_in_order() {
    stress(Config::default(), 200, 50).await;
}

/// The same with the smallest depth (16), so most connections hit the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_delays_at_minimum_depth_answer_in_order() {
    stress(Config::default().max_pipeline_depth(16), 100, 50).await;
}

/// Request `i` can only finish after request `i + 1` has finished: handlers complete in exactly
/// reverse order (recorded and checked), yet responses come back in request order.
#[tokio::test]
async fn handlers_finishing_in_reverse_order_answer_in_order() {
    const N: usize = 16;
    // `released[i]` is notified by handler `i + 1` when it finishes; `notify_one` keeps a
    // permit, so it does not matter whether handler `i` is already waiting.
    let released: Arc<Vec<Notify>> = Arc::new((0..N).map(|_| Notify::new()).collect());
    let finished = Arc::new(Mutex::new(Vec::new()));
    let app = {
        let finished = Arc::clone(&finished);
        Router::new().route(
            "/r/{i}",
            pipelined::get(move |req: http::Request<Body>| {
                let released = Arc::clone(&released);
                let finished = Arc::clone(&finished);
                async move {
                    let params = req.extensions().get::<PathParams>().unwrap();
                    let i: usize = params.get("i").unwrap().parse().unwrap();
                    if i + 1 < N {
                        released[i].notified().await;
                    }
                    finished.lock().unwrap().push(i);
                    if i > 0 {
                        released[i - 1].notify_one();
                    }
                    format!("r{i}")
                }
            }),
        )
    };
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let wire: String = (0..N).map(|i| get(&format!("/r/{i}"))).collect();
    client.send(wire).await;
    let responses = client.responses(N).await;
    let texts: Vec<String> = responses.iter().map(|r| r.text()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("r{i}")).collect();
    assert_eq!(texts, expected, "responses must follow request order");
    // The premise: the handlers really did finish last-to-first.
    let order = finished.lock().unwrap().clone();
    assert_eq!(order, (0..N).rev().collect::<Vec<_>>());
    drop(client);
    server.shutdown().await;
}
