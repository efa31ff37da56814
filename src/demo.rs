//! The demo routes: the interface other tools (load tests, the walkthrough) drive.

use std::time::Duration;

use http::{header, HeaderValue, Request, Response, StatusCode};
use pipelined::{get, post, Body, IntoResponse, PathParams, ResponseBody, Router};

/// Longest `/delay/{ms}`: a minute is plenty to watch head-of-line behaviour, and a bound
/// keeps one request from parking a connection for ever.
const MAX_DELAY_MS: u64 = 60_000;

const INDEX: &str = "\
pipelined: pipelined HTTP/1.1 requests run concurrently, answers leave in request order.

GET  /             this index
GET  /plaintext    200 text/plain \"Hello, World!\"
GET  /delay/{ms}   waits ms milliseconds (0-60000), then answers with the path
POST /echo         answers with the request body, streamed back byte for byte
GET  /healthz      200 when the server is up
";

/// The demo application.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|_req| async { INDEX }))
        .route("/plaintext", get(plaintext))
        .route("/delay/{ms}", get(delay))
        .route("/echo", post(echo))
        .route("/healthz", get(|_req| async { "ok\n" }))
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
