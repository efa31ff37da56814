//! `Config`'s limits on HTTP/2 (prior knowledge) connections, which hyper serves: each answer
//! is the one the ordered engine gives the same request on HTTP/1.1 (issue 11's parity).

mod common;
#[path = "common/h2frames.rs"]
#[allow(dead_code)]
mod h2frames;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{serve_with, Client, HANG};
use http::{Request, Response};
use pipelined::{get, post, Body, Config, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// - `POST /echo`: streams the body back;
/// - `GET /peer`: the connection info the server inserted, or `none`;
/// - `GET /timed`: answers after [`HANDLER_TIME`], with a `Server-Timing` of its own;
/// - `GET /panic`, `GET /panic-later`: panic on their first poll, or on a later one.
fn app() -> Router {
    Router::new()
        .route(
            "/echo",
            post(|req: Request<Body>| async move { Response::new(req.into_body()) }),
        )
        .route(
            "/peer",
            get(|req: Request<Body>| async move {
                match req.extensions().get::<SocketAddr>() {
                    Some(peer) => peer.to_string(),
                    None => "none".to_string(),
                }
            }),
        )
        .route(
            "/timed",
            get(|_req| async {
                tokio::time::sleep(HANDLER_TIME).await;
                Response::builder()
                    .header("server-timing", OWN_TIMING)
                    .body("timed\n".to_string())
                    .unwrap()
            }),
        )
        .route("/panic", get(|_req| async { explode() }))
        .route(
            "/panic-later",
            get(|_req| async {
                tokio::task::yield_now().await;
                explode()
            }),
        )
}

/// How long `/timed` takes, and the `Server-Timing` it sets itself.
const HANDLER_TIME: Duration = Duration::from_millis(50);
const OWN_TIMING: &str = "app;dur=1";

/// A handler's bug.
fn explode() -> &'static str {
    panic!("the handler panicked, on purpose")
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// Cookies sent one field each (RFC 9113 §8.2.3) are one `Cookie` line on HTTP/1.1: they
/// count as one field against `max_headers` (tests/parity.rs has the plain count).
#[tokio::test]
async fn cookies_sent_one_field_each_count_as_one_header_field() {
    let server = serve_with(app(), Config::default().max_headers(20)).await;
    let client = h2_client();
    let url = format!("http://{}/peer", server.addr);
    let crumbs = (0..30).fold(client.get(&url), |req, i| {
        req.header("cookie", format!("c{i}=v"))
    });
    assert_eq!(crumbs.send().await.unwrap().status(), 200);
    // Other fields still count one each.
    let fields = (0..21).fold(client.get(&url), |req, i| {
        req.header(format!("x-h{i}"), "v")
    });
    assert_eq!(fields.send().await.unwrap().status(), 431);
}

/// The client preface and an empty SETTINGS frame: a valid HTTP/2 connection that opens no
/// stream.
const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Reads (and discards: SETTINGS, GOAWAY, PING) until the server closes; how long that took.
async fn until_closed(stream: &mut TcpStream) -> Duration {
    let started = tokio::time::Instant::now();
    let mut scratch = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(HANG, read_all)
        .await
        .expect("the server never closed the connection");
    started.elapsed()
}

#[tokio::test]
async fn a_client_that_ignores_goaway_does_not_hold_shutdown() {
    let server = serve_with(app(), Config::default()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(PREFACE_AND_SETTINGS).await.unwrap();
    // The server has read the preface once it sends its own SETTINGS.
    let mut first = [0u8; 9];
    stream.read_exact(&mut first).await.unwrap();
    assert_eq!(first[3], 0x4, "a SETTINGS frame");
    let started = tokio::time::Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} on a client that never acknowledged the GOAWAY",
        started.elapsed()
    );
    until_closed(&mut stream).await;
}

#[tokio::test]
async fn no_more_streams_than_http2_max_concurrent_streams_run_at_once() {
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // Two handlers must meet at the barrier: the limit lets two run, and only two.
    let barrier = Arc::new(Barrier::new(2));
    let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
    let app = Router::new().route(
        "/meet",
        get(move |_req| {
            let (running, peak, barrier) = (Arc::clone(&r), Arc::clone(&p), Arc::clone(&barrier));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                barrier.wait().await;
                running.fetch_sub(1, Ordering::SeqCst);
                "met\n"
            }
        }),
    );
    let config = Config::default().http2_max_concurrent_streams(2);
    let server = serve_with(app, config).await;
    let client = h2_client();
    let url = format!("http://{}/meet", server.addr);
    let requests = (0..6).map(|_| {
        let request = client.get(&url).send();
        async move { request.await.unwrap().status() }
    });
    let statuses = tokio::time::timeout(HANG, join_all(requests.collect()))
        .await
        .expect("the streams never all finished");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(peak.load(Ordering::SeqCst), 2);
}

/// Awaits every future, concurrently (one task each).
async fn join_all<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// (handler ms, queue ms) from the engine's value among a response's `server-timing` values.
fn engine_timing(values: &[&str]) -> (f64, f64) {
    let ours = values
        .iter()
        .find(|v| v.starts_with("handler;"))
        .unwrap_or_else(|| panic!("no engine Server-Timing in {values:?}"));
    let mut metrics = ours.split(", ").map(|metric| {
        let (name, ms) = metric.split_once(";dur=").expect("name;dur=ms");
        (name, ms.parse::<f64>().expect("milliseconds"))
    });
    let (handler, queue) = (metrics.next().unwrap(), metrics.next().unwrap());
    assert_eq!(
        (handler.0, queue.0, metrics.next()),
        ("handler", "queue", None)
    );
    (handler.1, queue.1)
}

/// A raw HTTP/1.1 response's `server-timing` values.
fn timing_values(res: &common::RawResponse) -> Vec<&str> {
    res.headers
        .iter()
        .filter(|(name, _)| name == "server-timing")
        .map(|(_, value)| value.as_str())
        .collect()
}

#[tokio::test]
async fn http2_responses_carry_server_timing_with_no_queue() {
    let server = serve_with(app(), Config::default()).await;
    let least = HANDLER_TIME.as_secs_f64() * 1000.0;

    // HTTP/1.1: `/peer`, quick but pipelined behind `/timed`, waits for it (queue > 0).
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", common::get("/timed"), common::get("/peer")))
        .await;
    let res = client.responses(2).await;
    let timed = timing_values(&res[0]);
    assert!(
        timed.contains(&OWN_TIMING),
        "the service's own is kept: {timed:?}"
    );
    assert!(engine_timing(&timed).0 >= least, "{timed:?}");
    let (_, queue) = engine_timing(&timing_values(&res[1]));
    assert!(queue > 0.0, "waited {queue} ms behind /timed");

    // HTTP/2: the handler's time the same way, the service's own beside it; no head-of-line
    // wait, so queue is 0.
    let res = h2_client()
        .get(format!("http://{}/timed", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    let values: Vec<&str> = res
        .headers()
        .get_all("server-timing")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        values.contains(&OWN_TIMING),
        "the service's own is kept: {values:?}"
    );
    let (handler, queue) = engine_timing(&values);
    assert!(handler >= least, "handler {handler} ms");
    assert_eq!(queue, 0.0);
}

/// `GET path` on an `h2` client connection: the status and body.
async fn h2_get(
    client: &mut h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    path: &str,
) -> (u16, String) {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let answer = async {
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.expect("a response, not a reset stream");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        (status, String::from_utf8(bytes).unwrap())
    };
    tokio::time::timeout(HANG, answer)
        .await
        .expect("answered before the hang limit")
}

#[tokio::test]
async fn a_panicking_handler_is_answered_500_and_the_connection_goes_on() {
    let server = serve_with(app(), Config::default()).await;
    let failed = (
        500,
        "Internal Server Error: the handler failed\n".to_string(),
    );

    // HTTP/1.1: the same line, and the next request on the connection is answered.
    let mut client = Client::connect(server.addr).await;
    for path in ["/panic", "/panic-later"] {
        client
            .send(format!("{}{}", common::get(path), common::get("/peer")))
            .await;
        let res = client.responses(2).await;
        assert_eq!((res[0].status, res[0].text()), failed, "{path}");
        assert_eq!(res[1].status, 200);
    }

    // HTTP/2: a 500, not a reset stream, and the connection serves the next stream.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    for path in ["/panic", "/panic-later"] {
        assert_eq!(
            h2_get(&mut client, server.addr, path).await,
            failed,
            "{path}"
        );
        assert_eq!(h2_get(&mut client, server.addr, "/peer").await.0, 200);
    }
}

/// The header block of `POST /echo` announcing `length` body bytes (`:method POST` and
/// `content-length` are static-table entries 3 and 28).
fn post_block(length: usize) -> Vec<u8> {
    let mut block = vec![0x83, 0x86];
    h2frames::literal_indexed_name(&mut block, 1, "test");
    h2frames::literal_indexed_name(&mut block, 4, "/echo");
    h2frames::literal_indexed_name(&mut block, 28, &length.to_string());
    block
}

/// An HTTP/2 DATA frame.
const DATA: u8 = 0x0;

/// HTTP/2 lets a server answer before the upload is over and reset the rest with `NO_ERROR`,
/// but clients such as curl then report a failed transfer instead of the `413`. So a refused
/// upload of up to twice the limit is read to its end (the stream closes with no reset), and a
/// larger one is still reset at once.
#[tokio::test]
async fn a_refused_upload_is_read_to_its_end_unless_it_is_past_twice_the_limit() {
    let server = serve_with(app(), Config::default().max_body_bytes(1000)).await;
    let mut conn = h2frames::Conn::open(server.addr).await;

    // 1,500 bytes: past the limit, within twice it.
    conn.send(&h2frames::headers(
        1,
        h2frames::END_HEADERS,
        &post_block(1500),
    ))
    .await;
    let answer = conn.until(|f| f.kind == h2frames::HEADERS).await;
    assert_eq!(answer.expect("an answer").stream, 1);
    let body = h2frames::frame(DATA, h2frames::END_STREAM, 1, &[b'x'; 1500]);
    conn.send(&[body, h2frames::ping(*b"uploaded")].concat())
        .await;
    // The server answers the PING once it has read the upload before it: any reset of
    // stream 1 would have come by then.
    let mut reset = None;
    let acked = conn
        .until(|f| {
            if f.kind == h2frames::RST_STREAM && f.stream == 1 {
                reset = Some(f.reset_code());
            }
            f.kind == h2frames::PING && f.flags & h2frames::ACK != 0
        })
        .await;
    assert!(acked.is_some(), "the connection ended");
    assert_eq!(
        reset, None,
        "the upload was reset instead of read to its end"
    );

    // 2,001 bytes: more than twice the limit, reset with NO_ERROR before it is sent.
    conn.send(&h2frames::headers(
        3,
        h2frames::END_HEADERS,
        &post_block(2001),
    ))
    .await;
    let reset = conn
        .until(|f| f.kind == h2frames::RST_STREAM && f.stream == 3)
        .await
        .expect("stream 3 reset");
    assert_eq!(reset.reset_code(), 0, "NO_ERROR");
}
