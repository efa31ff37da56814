//! A client that pipelines without ever reading cannot make the server buffer without bound:
//! the ordered slots fill, the connection stops reading, and TCP pushes back on the client.
//! Alone in its file so that no other test's allocations blur the RSS reading.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{serve_with, Client};
use pipelined::{get, Config, Router};
use tokio::io::AsyncWriteExt;

/// Size of each response body: large enough that buffering even a few hundred of them
/// would show plainly in RSS.
const RESPONSE_BYTES: usize = 256 * 1024;

/// The stated bound on RSS growth while the client refuses to read. Legitimately held:
/// at most `depth + 2` finished responses (16 + 2 = 18 × 256 KiB = 4.5 MiB) plus buffers.
const RSS_BOUND_KIB: u64 = 24 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_holds_bounded_server_memory() {
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    let app = Router::new().route(
        "/big",
        get(move |_req| {
            counter.fetch_add(1, Ordering::SeqCst);
            // A fresh buffer per response, as a real handler would build.
            async { vec![b'x'; RESPONSE_BYTES] }
        }),
    );
    let server = serve_with(app, Config::default().max_pipeline_depth(16)).await;
    let baseline = rss_kib();

    let client = Client::connect(server.addr).await;
    let written = Arc::new(AtomicUsize::new(0));
    let progress = Arc::clone(&written);
    let mut stream = client.stream;
    let batch = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n".repeat(1000);
    let writer = tokio::spawn(async move {
        // 200,000 requests: far more than every socket buffer on the way can hold.
        for _ in 0..200 {
            if stream.write_all(batch.as_bytes()).await.is_err() {
                break;
            }
            progress.fetch_add(1, Ordering::SeqCst);
        }
        stream
    });

    // Wait until the client is stuck: no batch written for several samples in a row.
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = written.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
        assert!(
            !writer.is_finished(),
            "the server read all 200,000 requests"
        );
    }
    let growth = rss_kib().saturating_sub(baseline);
    let started = handled.load(Ordering::SeqCst);
    println!("client stuck: {started} handlers ran, server RSS grew {growth} KiB");
    // Besides the 16 + 2 responses the server holds, the kernel's socket buffers (ours and
    // the client's) absorb a few MiB of written responses; hundreds would mean no bound.
    assert!(
        started < 100,
        "{started} handlers ran for a client that read nothing (pipeline depth 16)"
    );
    assert!(
        growth < RSS_BOUND_KIB,
        "RSS grew by {growth} KiB (bound {RSS_BOUND_KIB} KiB)"
    );
    writer.abort();
    server.shutdown().await;
}
