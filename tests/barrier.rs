//! Invariant 2: an unsafe method (POST, PUT, PATCH, DELETE, …) is a barrier. It starts only
//! after every earlier request on the connection has finished, and nothing after it starts
//! before it has finished (RFC 9112 §9.3.2). Safe methods (GET, HEAD, OPTIONS, TRACE) still run
//! concurrently, before and after a barrier.
//!
//! Everything here is synchronised by the handlers themselves: each records its start and end
//! in a shared log and tells the test through a channel when it has started; the test releases
//! blocked handlers only after inspecting the log. No sleeps.
//!
//! Why a missing barrier cannot slip through: all requests arrive in one write, and these tests
//! run on a single-threaded runtime, so an engine without the barrier would dispatch the unsafe
//! request in the same reader pass as the request before it — before the test task runs again
//! and inspects the log.

mod common;

use std::sync::{Arc, Mutex};

use common::{get, serve, with_body, Client, HANG};
use http::Method;
use http_body_util::BodyExt;
use pipelined::{Body, MethodRouter, Router};
use tokio::sync::{mpsc, Notify};

/// The order in which handlers started and finished.
type Log = Arc<Mutex<Vec<&'static str>>>;

fn snapshot(log: &Log) -> Vec<&'static str> {
    log.lock().unwrap().clone()
}

/// The next handler that reports it started; a handler that never starts fails the test
/// instead of hanging it.
async fn next_start(started: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    tokio::time::timeout(HANG, started.recv())
        .await
        .expect("hung: the expected handler never started")
        .expect("every handler is gone")
}

/// `GET /slow`, `<method> /mark`, `GET /after`: the slow GET and the unsafe request each block
/// until the test releases them.
struct Scenario {
    app: Router,
    log: Log,
    started: mpsc::UnboundedReceiver<&'static str>,
    release_get: Arc<Notify>,
    release_mark: Arc<Notify>,
}

fn scenario(method: Method) -> Scenario {
    let log: Log = Arc::default();
    let (started_tx, started) = mpsc::unbounded_channel();
    let release_get = Arc::new(Notify::new());
    let release_mark = Arc::new(Notify::new());

    let slow = {
        let (log, started, release) = (log.clone(), started_tx.clone(), release_get.clone());
        move |_req: http::Request<Body>| {
            let (log, started, release) = (log.clone(), started.clone(), release.clone());
            async move {
                log.lock().unwrap().push("get-start");
                started.send("get").unwrap();
                release.notified().await;
                log.lock().unwrap().push("get-end");
                "slow\n"
            }
        }
    };
    let mark = {
        let (log, started, release) = (log.clone(), started_tx, release_mark.clone());
        move |req: http::Request<Body>| {
            let (log, started, release) = (log.clone(), started.clone(), release.clone());
            async move {
                log.lock().unwrap().push("post-start");
                started.send("post").unwrap();
                let body = req.into_body().collect().await.unwrap().to_bytes();
                release.notified().await;
                log.lock().unwrap().push("post-end");
                format!("marked {}\n", String::from_utf8_lossy(&body))
            }
        }
    };
    let after = {
        let log = log.clone();
        move |_req: http::Request<Body>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push("after-start");
                "after\n"
            }
        }
    };
    let app = Router::new()
        .route("/slow", pipelined::get(slow))
        .route("/mark", MethodRouter::default().on(method, mark))
        .route("/after", pipelined::get(after));
    Scenario {
        app,
        log,
        started,
        release_get,
        release_mark,
    }
}

/// Runs the scenario for `method` and checks the barrier on both sides.
async fn barrier_holds_for(method: Method) {
    let Scenario {
        app,
        log,
        mut started,
        release_get,
        release_mark,
    } = scenario(method.clone());
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let mut wire = get("/slow").into_bytes();
    wire.extend(with_body(method.as_str(), "/mark", b"x=1"));
    wire.extend(get("/after").into_bytes());
    client.send(wire).await;

    assert_eq!(next_start(&mut started).await, "get");
    // The unsafe request is parsed and waiting, but must not start while the GET runs.
    assert_eq!(snapshot(&log), ["get-start"], "{method} started early");
    release_get.notify_one();

    assert_eq!(next_start(&mut started).await, "post");
    // The request after the barrier must not start while the barrier runs.
    assert_eq!(
        snapshot(&log),
        ["get-start", "get-end", "post-start"],
        "{method} overtook the GET, or GET /after overtook {method}"
    );
    release_mark.notify_one();

    let responses = client.responses(3).await;
    let texts: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(texts, ["slow\n", "marked x=1\n", "after\n"]);
    assert_eq!(
        snapshot(&log),
        [
            "get-start",
            "get-end",
            "post-start",
            "post-end",
            "after-start"
        ]
    );
    drop(client);
    server.shutdown().await;
}

#[tokio::test]
async fn post_waits_for_earlier_get_and_holds_back_later_get() {
    barrier_holds_for(Method::POST).await;
}

#[tokio::test]
async fn put_is_a_barrier() {
    barrier_holds_for(Method::PUT).await;
}

#[tokio::test]
async fn patch_is_a_barrier() {
    barrier_holds_for(Method::PATCH).await;
}

#[tokio::test]
async fn delete_is_a_barrier() {
    barrier_holds_for(Method::DELETE).await;
}

/// A barrier waits for *every* earlier request, not just the one right before it: two GETs run
/// concurrently (both have started before either is released) and finish in reverse order
/// (the test releases `b`, and `b` releases `a` as it ends); the POST starts only after `a`,
/// the last to finish, has ended.
#[tokio::test]
async fn barrier_waits_for_all_earlier_requests() {
    let log: Log = Arc::default();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release_a = Arc::new(Notify::new());
    let release_b = Arc::new(Notify::new());
    let blocked =
        |name: &'static str, end: &'static str, release: Arc<Notify>, then: Option<Arc<Notify>>| {
            let (log, started) = (log.clone(), started_tx.clone());
            pipelined::get(move |_req: http::Request<Body>| {
                let (log, started, release, then) =
                    (log.clone(), started.clone(), release.clone(), then.clone());
                async move {
                    log.lock().unwrap().push(name);
                    started.send(name).unwrap();
                    release.notified().await;
                    log.lock().unwrap().push(end);
                    if let Some(then) = then {
                        then.notify_one();
                    }
                    name
                }
            })
        };
    let post = {
        let log = log.clone();
        pipelined::post(move |_req: http::Request<Body>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push("post-start");
                "post"
            }
        })
    };
    let app = Router::new()
        .route("/a", blocked("a-start", "a-end", release_a.clone(), None))
        .route(
            "/b",
            blocked("b-start", "b-end", release_b.clone(), Some(release_a)),
        )
        .route("/p", post);
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let mut wire = format!("{}{}", get("/a"), get("/b")).into_bytes();
    wire.extend(with_body("POST", "/p", b""));
    client.send(wire).await;

    assert_eq!(next_start(&mut started).await, "a-start");
    assert_eq!(next_start(&mut started).await, "b-start");
    assert_eq!(snapshot(&log), ["a-start", "b-start"], "POST started early");
    release_b.notify_one();
    let texts: Vec<String> = client.responses(3).await.iter().map(|r| r.text()).collect();
    assert_eq!(texts, ["a-start", "b-start", "post"]);
    assert_eq!(
        snapshot(&log),
        ["a-start", "b-start", "b-end", "a-end", "post-start"]
    );
    drop(client);
    server.shutdown().await;
}

/// HEAD, OPTIONS and TRACE are safe: each of these handlers can only finish once the *next*
/// one has started, so a chain of three would hang (and fail on the hang guard) if any of them
/// were treated as a barrier.
#[tokio::test]
async fn head_options_and_trace_run_concurrently() {
    let options_started = Arc::new(Notify::new());
    let trace_started = Arc::new(Notify::new());
    let head = {
        let wait = options_started.clone();
        move |_req: http::Request<Body>| {
            let wait = wait.clone();
            async move {
                wait.notified().await;
                "head body is never sent"
            }
        }
    };
    let options = {
        let (signal, wait) = (options_started.clone(), trace_started.clone());
        move |_req: http::Request<Body>| {
            let (signal, wait) = (signal.clone(), wait.clone());
            async move {
                signal.notify_one();
                wait.notified().await;
                "options\n"
            }
        }
    };
    let trace = {
        let signal = trace_started.clone();
        move |_req: http::Request<Body>| {
            let signal = signal.clone();
            async move {
                signal.notify_one();
                "trace\n"
            }
        }
    };
    let app = Router::new()
        .route("/a", pipelined::get(head))
        .route("/b", pipelined::options(options))
        .route("/c", MethodRouter::default().on(Method::TRACE, trace));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(concat!(
            "HEAD /a HTTP/1.1\r\nHost: test\r\n\r\n",
            "OPTIONS /b HTTP/1.1\r\nHost: test\r\n\r\n",
            "TRACE /c HTTP/1.1\r\nHost: test\r\n\r\n",
        ))
        .await;
    let head = client.head_response().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("23"));
    assert_eq!(client.response().await.text(), "options\n");
    assert_eq!(client.response().await.text(), "trace\n");
    drop(client);
    server.shutdown().await;
}

/// The barrier ends with the unsafe request: two GETs after a finished POST overlap again (the
/// first can only finish once the second has started).
#[tokio::test]
async fn safe_requests_after_a_barrier_run_concurrently() {
    let signal = Arc::new(Notify::new());
    let first = {
        let wait = signal.clone();
        move |_req: http::Request<Body>| {
            let wait = wait.clone();
            async move {
                wait.notified().await;
                "first\n"
            }
        }
    };
    let second = move |_req: http::Request<Body>| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            "second\n"
        }
    };
    let app = Router::new()
        .route("/p", pipelined::post(|_req| async { "posted\n" }))
        .route("/first", pipelined::get(first))
        .route("/second", pipelined::get(second));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let mut wire = with_body("POST", "/p", b"data");
    wire.extend(format!("{}{}", get("/first"), get("/second")).into_bytes());
    client.send(wire).await;
    let texts: Vec<String> = client.responses(3).await.iter().map(|r| r.text()).collect();
    assert_eq!(texts, ["posted\n", "first\n", "second\n"]);
    drop(client);
    server.shutdown().await;
}
