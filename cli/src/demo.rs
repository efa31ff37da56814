//! The demo routes: the interface other tools (load tests, the walkthrough) drive.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use pipelined::{
    get, get_inline, post, Answer, Body, IntoResponse, PathParams, ResponseBody, Router,
};

use crate::fanout::{Fanout, ServedAt};
use crate::prometheus::Registry;
use crate::work::{WorkPool, QUEUE_LEN};

/// Longest `/delay/{ms}`: a minute is plenty to watch head-of-line behaviour, and a bound
/// keeps one request from parking a connection for ever.
const MAX_DELAY_MS: u64 = 60_000;

const INDEX: &str = "\
pipelined: pipelined HTTP/1.1 requests run concurrently, answers leave in request order.

GET  /             this index
GET  /plaintext    200 text/plain \"Hello, World!\", answered inline from the parsed head
GET  /plaintext-service  the same answer through a tower Service handler (compare the paths)
GET  /delay/{ms}   waits ms milliseconds (0-60000), then answers with the path
POST /echo         answers with the request body, streamed back byte for byte
GET  /work/{n}     n rounds of hashing (1-100000000) on a fixed pool of one worker per core;
                   503 when the pool's queue is full (back pressure)
GET  /fanout?n=&ms= n concurrent calls to this server's /delay/{ms} (n 1-100, ms 0-10000),
                   joined: a parallel for-loop, answered after ~ms rather than n*ms
GET  /healthz      200 when the server is up
";

/// The index's line for `/metrics`, listed only when the route exists (not with
/// `--no-metrics`).
const INDEX_METRICS: &str = "\
GET  /metrics      Prometheus text: requests by method/route/status, handler time and
                   head-of-line wait histograms, pipeline depth, open connections, in flight
";

/// Most rounds one `/work/{n}` may ask for (about two seconds of CPU).
const MAX_WORK_ROUNDS: u64 = 100_000_000;

/// The demo application; `own` is where it is served (for `/fanout`), `metrics` renders
/// `/metrics` (absent with `--no-metrics`). Fails only when `/fanout`'s client cannot be set up.
pub fn app(own: ServedAt, metrics: Option<Arc<Registry>>) -> Result<Router, String> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = WorkPool::new(workers, QUEUE_LEN);
    let fanout = Fanout::new(own)?;
    let index = match metrics {
        Some(_) => format!("{INDEX}{INDEX_METRICS}"),
        None => INDEX.to_owned(),
    };
    let app = Router::new()
        .route("/", get(move |_req| std::future::ready(index.clone())))
        .route("/plaintext", get_inline(|_head| plaintext_inline()))
        .route("/plaintext-service", get(plaintext))
        .route("/delay/{ms}", get(delay))
        .route("/echo", post(echo))
        .route(
            "/work/{n}",
            get(move |req| {
                let pool = pool.clone();
                work(pool, req)
            }),
        )
        .route("/fanout", get(move |req| fanout.clone().answer(req)))
        .route("/healthz", get(|_req| async { "ok\n" }))
        // No demo handler reads `MatchedPath`, and the engine's request counter gets the route
        // from the router as it routes: /plaintext-service keeps its extensions empty and unallocated.
        .without_matched_path();
    Ok(match metrics {
        Some(metrics) => app.route("/metrics", get(move |_req| render(metrics.clone()))),
        None => app,
    })
}

/// `/plaintext` on the inline path: no request built, no future, the body static.
fn plaintext_inline() -> Answer {
    Answer::new(StatusCode::OK).body(HeaderValue::from_static("text/plain"), "Hello, World!")
}

async fn plaintext(_req: Request<Body>) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::from("Hello, World!"));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res
}

async fn delay(req: Request<Body>) -> Response<ResponseBody> {
    let ms = req
        .extensions()
        .get::<PathParams>()
        .and_then(|p| p.get("ms"))
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms <= MAX_DELAY_MS);
    let Some(ms) = ms else {
        let msg =
            format!("delay must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}\n");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("{} waited {ms} ms\n", req.uri().path()).into_response()
}

/// The Prometheus text exposition of everything recorded.
async fn render(metrics: Arc<Registry>) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::from(metrics.render()));
    let exposition = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    res.headers_mut().insert(header::CONTENT_TYPE, exposition);
    res
}

/// Hands `n` rounds of hashing to the worker pool and waits for the digest.
async fn work(pool: WorkPool, req: Request<Body>) -> Response<ResponseBody> {
    let rounds = req
        .extensions()
        .get::<PathParams>()
        .and_then(|p| p.get("n"))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| (1..=MAX_WORK_ROUNDS).contains(n));
    let Some(rounds) = rounds else {
        let msg = format!("work must be a whole number of rounds from 1 to {MAX_WORK_ROUNDS}\n");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    };
    let Ok(result) = pool.submit(rounds) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "work queue full, try again\n",
        )
            .into_response();
    };
    match result.await {
        Ok(digest) => format!("{rounds} rounds: {digest:016x}\n").into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "worker lost\n").into_response(),
    }
}

/// Streams the request body straight back: nothing is buffered beyond the body channel.
async fn echo(req: Request<Body>) -> Response<Body> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut res = Response::new(req.into_body());
    res.headers_mut().insert(header::CONTENT_TYPE, content_type);
    res
}
