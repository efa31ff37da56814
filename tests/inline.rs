//! Inline handlers (`get_inline`, issue #19) over a real HTTP/1.1 connection: an answer made
//! from the parsed head, with no `http::Request` and no future, must still behave like any
//! other response on the wire. These tests pin what a client can see:
//!
//! - it keeps its place in the response order behind a slower earlier request, while its
//!   handler runs concurrently with that request (proved with a signal only it sends);
//! - `HEAD` gets the `GET` headers without the body; other methods get `405`/`204` with `Allow`;
//! - the Service path (a body, `Router::layer`, `Answer::pass`) gives the same answer from the
//!   same handler, and a request body does not desynchronise the pipeline;
//! - path params, query and headers reach the `HeadView`;
//! - a panicking handler costs its own request a `500` and nothing else;
//! - `Connection: close` and HTTP/1.0 end the connection after the answer;
//! - the engine owns `Content-Length`, and a handler's `Server` replaces the engine's.
//!
//! Where the inline path and the Service path cannot be told apart by the answer (they are
//! meant to give the same one), a handler that passes is the witness: on the inline path it is
//! called twice for one request (inline, then on the Service path), on the Service path once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{get, quiet_expected_panics, serve, with_body, Client, RawResponse, EXPECTED};
use http::header::{CONTENT_LENGTH, LOCATION, SERVER};
use http::{HeaderValue, Response, StatusCode};
use pipelined::{get_inline, Answer, HeadView, ResponseBody, Router};
use tokio::sync::Notify;

/// A shared call counter.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// `HEAD path`.
fn head(path: &str) -> String {
    format!("HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// `method path` with no body.
fn request(method: &str, path: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Every value of header `name` in `response`.
fn all<'r>(response: &'r RawResponse, name: &str) -> Vec<&'r str> {
    let values = response.headers.iter().filter(|(n, _)| n == name);
    values.map(|(_, v)| v.as_str()).collect()
}

/// `responses` as an array, to name each.
fn array<const N: usize>(responses: Vec<RawResponse>) -> [RawResponse; N] {
    let len = responses.len();
    responses
        .try_into()
        .unwrap_or_else(|_| panic!("{len} responses, not {N}"))
}

/// Checks the framing: exactly one `Content-Length`, equal to the body's length.
fn assert_framed(response: &RawResponse, what: &str) {
    let lengths = all(response, "content-length");
    assert_eq!(
        lengths,
        [response.body.len().to_string()],
        "{what}: one content-length, the body's"
    );
}

#[tokio::test]
async fn an_inline_answer_waits_behind_a_slower_earlier_request_yet_runs_concurrently() {
    let signal = Arc::new(Notify::new());
    let events = Arc::new(Mutex::new(Vec::new()));
    let (slow_signal, slow_events) = (signal.clone(), events.clone());
    let (fast_signal, fast_events) = (signal.clone(), events.clone());
    let app = Router::new()
        .route(
            "/slow",
            pipelined::get(move |_req| {
                let (signal, events) = (slow_signal.clone(), slow_events.clone());
                async move {
                    events.lock().unwrap().push("slow started");
                    // Only the inline handler of the next request can wake this one: were the
                    // inline request held until this one finished, the test would hang.
                    signal.notified().await;
                    events.lock().unwrap().push("slow finished");
                    "slow\n"
                }
            }),
        )
        .route(
            "/fast/{n}",
            get_inline(move |head| {
                fast_events.lock().unwrap().push("inline ran");
                fast_signal.notify_one();
                Answer::text(format!("fast {}\n", head.param("n").unwrap()))
            }),
        );
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!(
            "{}{}{}",
            get("/slow"),
            get("/fast/1"),
            get("/fast/2")
        ))
        .await;
    let bodies: Vec<String> = client.responses(3).await.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["slow\n", "fast 1\n", "fast 2\n"], "request order");
    let events = events.lock().unwrap().clone();
    let position = |e: &str| events.iter().position(|x| *x == e).unwrap();
    assert!(
        position("inline ran") < position("slow finished"),
        "the inline handler ran while the slow request was pending: {events:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn head_on_an_inline_get_route_gets_the_get_headers_and_no_body() {
    let app = Router::new().route("/page", get_inline(|_| Answer::text("hello, page\n")));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}{}", get("/page"), head("/page"), get("/page")))
        .await;
    let got = client.response().await;
    // Read as a HEAD response: no body is expected; a body sent anyway would be parsed as the
    // next response's head and fail it.
    let headed = client.head_response().await;
    let after = client.response().await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "hello, page\n");
    assert_eq!(headed.status, 200);
    assert_eq!(
        headed.header("content-length"),
        Some("12"),
        "the GET body's length"
    );
    assert_eq!(
        headed.header("content-type"),
        got.header("content-type"),
        "the GET's content-type"
    );
    assert_eq!(after.status, 200, "the request after the HEAD, intact");
    assert_eq!(after.text(), "hello, page\n");
    server.shutdown().await;
}

#[tokio::test]
async fn a_method_not_routed_on_an_inline_route_is_405_and_options_lists_the_methods() {
    let app = Router::new().route("/page", get_inline(|_| Answer::text("page\n")));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let mut wire = with_body("POST", "/page", b"x");
    for next in [
        request("DELETE", "/page"),
        request("OPTIONS", "/page"),
        get("/page"),
    ] {
        wire.extend_from_slice(next.as_bytes());
    }
    client.send(wire).await;
    let [post, delete, options, after] = array(client.responses(4).await);
    for (response, what) in [(&post, "POST"), (&delete, "DELETE")] {
        assert_eq!(response.status, 405, "{what}");
        assert_eq!(
            response.header("allow"),
            Some("GET, HEAD, OPTIONS"),
            "{what}"
        );
    }
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(after.text(), "page\n", "the connection goes on");
    server.shutdown().await;
}

#[tokio::test]
async fn a_get_with_a_body_gets_the_same_answer_through_the_service_path_and_stays_in_sync() {
    let calls = Calls::default();
    let counted = calls.clone();
    let app = Router::new().route(
        "/page",
        get_inline(move |head| {
            counted.hit();
            Answer::text(format!("{} {}\n", head.method(), head.path()))
        }),
    );
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    // The body is "GET": left unread, it would prefix the next request line and break it.
    let mut wire = with_body("GET", "/page", b"GET");
    wire.extend_from_slice(get("/page").as_bytes());
    client.send(wire).await;
    let [with, without] = array(client.responses(2).await);
    assert_eq!(with.status, 200);
    assert_eq!(with.text(), "GET /page\n");
    assert_eq!(
        with.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(without.status, 200, "the request after the body, in sync");
    assert_eq!(without.text(), with.text(), "the same answer either way");
    assert_eq!(without.header("content-type"), with.header("content-type"));
    assert_eq!(calls.get(), 2, "one call each: the handler answered both");
    server.shutdown().await;
}

/// `/items/{id}`: declines id 0 ([`Answer::pass`]), answers the others; `calls` counts its
/// calls. With `service`, a Service `get` handler on the same route answers what it passes.
fn passing_app(calls: &Calls, service: bool) -> Router {
    let counted = calls.clone();
    let methods = get_inline(move |head| {
        counted.hit();
        match head.param("id") {
            Some("0") => Answer::pass(),
            Some(id) => Answer::text(format!("inline {id}\n")),
            None => Answer::new(StatusCode::INTERNAL_SERVER_ERROR),
        }
    });
    let methods = match service {
        true => methods.get(|_req| async { "service\n" }),
        false => methods,
    };
    Router::new().route("/items/{id}", methods)
}

#[tokio::test]
async fn a_passed_request_goes_to_the_service_handler_of_the_route_else_404() {
    let with_service = Calls::default();
    let server = serve(passing_app(&with_service, true)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/items/0"), get("/items/7")))
        .await;
    let [passed, answered] = array(client.responses(2).await);
    assert_eq!((passed.status, passed.text().as_str()), (200, "service\n"));
    assert_eq!(
        (answered.status, answered.text().as_str()),
        (200, "inline 7\n")
    );
    // The passed request was offered inline first, then on the Service path: the sign that
    // the inline path took it at all.
    assert_eq!(
        with_service.get(),
        3,
        "passed: inline + Service path; answered: once"
    );
    server.shutdown().await;

    let alone = Calls::default();
    let server = serve(passing_app(&alone, false)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/items/0"), get("/items/7")))
        .await;
    let [passed, answered] = array(client.responses(2).await);
    assert_eq!(passed.status, 404, "no Service handler to pass to");
    assert_eq!(answered.text(), "inline 7\n", "the connection goes on");
    server.shutdown().await;
}

/// Marks a response with `x-layered: yes`.
fn mark(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    headers.insert("x-layered", HeaderValue::from_static("yes"));
    response
}

/// `app` with every route wrapped in a layer that [`mark`]s the responses.
fn marked(app: Router) -> Router {
    app.layer(tower::layer::layer_fn(|route| {
        tower::util::MapResponse::new(route, mark)
    }))
}

#[tokio::test]
async fn router_layer_wraps_inline_routes_through_the_service_path() {
    let calls = Calls::default();
    let server = serve(marked(passing_app(&calls, true))).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/items/7"), get("/items/0")))
        .await;
    let [answered, passed] = array(client.responses(2).await);
    assert_eq!(answered.text(), "inline 7\n");
    assert_eq!(
        answered.header("x-layered"),
        Some("yes"),
        "the inline answer"
    );
    assert_eq!(passed.text(), "service\n");
    assert_eq!(passed.header("x-layered"), Some("yes"), "the passed one");
    // Once each: no inline attempt before the Service path (compare the test above, where the
    // passed request costs two calls).
    assert_eq!(calls.get(), 2, "the layered router has no inline path");
    server.shutdown().await;

    // Control: the same router without the layer has no such header, so it came from the layer.
    let server = serve(passing_app(&Calls::default(), true)).await;
    let mut client = Client::connect(server.addr).await;
    client.send(get("/items/7")).await;
    let unlayered = client.response().await;
    assert_eq!(unlayered.text(), "inline 7\n");
    assert_eq!(unlayered.header("x-layered"), None);
    server.shutdown().await;
}

/// Echoes what the handler sees of the request.
fn echo(head: &HeadView<'_>) -> Answer {
    let header = head.header("X-Test").map(String::from_utf8_lossy);
    Answer::text(format!(
        "{} {} {:?} {:?} id={:?} x-test={:?}\n",
        head.method(),
        head.path(),
        head.query(),
        head.version(),
        head.param("id"),
        header.as_deref(),
    ))
}

#[tokio::test]
async fn params_query_and_headers_reach_the_head_view_on_both_paths() {
    let app = Router::new().route("/items/{id}", get_inline(echo));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    // Sent in lower case, asked for in mixed case: matched case-insensitively on both paths.
    let inline = "GET /items/42?q=1 HTTP/1.1\r\nHost: test\r\nx-test: a\r\n\r\n";
    let service = "GET /items/42?q=1 HTTP/1.1\r\nHost: test\r\nx-test: a\r\n\
                   Content-Length: 3\r\n\r\nabc";
    client.send(format!("{inline}{service}")).await;
    let [inline, service] = array(client.responses(2).await);
    let expected = "GET /items/42 Some(\"q=1\") HTTP/1.1 id=Some(\"42\") x-test=Some(\"a\")\n";
    assert_eq!(inline.text(), expected, "the inline path");
    assert_eq!(service.text(), expected, "the Service path");
    server.shutdown().await;
}

#[tokio::test]
async fn an_inline_handler_that_panics_costs_its_request_a_500_and_nothing_else() {
    quiet_expected_panics();
    let app = Router::new()
        .route("/panic", get_inline(|_| panic!("{EXPECTED} inline")))
        .route("/ok", get_inline(|_| Answer::text("ok\n")));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}{}", get("/ok"), get("/panic"), get("/ok")))
        .await;
    let [before, panicked, after] = array(client.responses(3).await);
    assert_eq!((before.status, before.text().as_str()), (200, "ok\n"));
    assert_eq!(panicked.status, 500);
    assert!(!panicked.closes(), "the connection goes on");
    assert_eq!((after.status, after.text().as_str()), (200, "ok\n"));
    // And a new request on the same connection, after the pipeline drained.
    client.send(get("/ok")).await;
    assert_eq!(client.response().await.text(), "ok\n");
    server.shutdown().await;
}

#[tokio::test]
async fn connection_close_on_an_inline_request_ends_the_connection_after_its_answer() {
    let behind = Calls::default();
    let counted = behind.clone();
    let app = Router::new()
        .route("/bye", get_inline(|_| Answer::text("bye\n")))
        .route(
            "/behind",
            get_inline(move |_| {
                counted.hit();
                Answer::text("behind\n")
            }),
        );
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!(
            "GET /bye HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n{}",
            get("/behind")
        ))
        .await;
    let bye = client.response().await;
    assert_eq!(bye.text(), "bye\n");
    assert!(
        bye.closes(),
        "connection: close on the answer: {:?}",
        bye.headers
    );
    assert!(client.is_closed().await, "EOF after the answer");
    // Our side closes too, or the server lingers (up to 2 s) before shutting down.
    drop(client);
    assert_eq!(behind.get(), 0, "the request behind it was not processed");
    server.shutdown().await;
}

/// `/old`: a redirect whose handler sets `Location`, its own `Server`, and a wrong
/// `Content-Length` (the engine's to write, per `Answer::header`).
fn redirect_app() -> Router {
    Router::new().route(
        "/old",
        get_inline(|_| {
            Answer::new(StatusCode::MOVED_PERMANENTLY)
                .header(LOCATION, HeaderValue::from_static("/new"))
                .header(SERVER, HeaderValue::from_static("mine"))
                .header(CONTENT_LENGTH, HeaderValue::from_static("999"))
                .body(HeaderValue::from_static("text/plain"), "moved\n")
        }),
    )
}

#[tokio::test]
async fn answer_headers_are_written_and_the_engine_owns_the_framing() {
    let server = serve(redirect_app()).await;
    let mut client = Client::connect(server.addr).await;
    // The inline path, then the same handler on the Service path (a body), then a HEAD.
    let mut wire = get("/old").into_bytes();
    wire.extend_from_slice(&with_body("GET", "/old", b"abc"));
    wire.extend_from_slice(head("/old").as_bytes());
    client.send(wire).await;
    let inline = client.response().await;
    let service = client.response().await;
    let headed = client.head_response().await;
    for (response, what) in [(&inline, "inline"), (&service, "Service path")] {
        assert_eq!(response.status, 301, "{what}");
        assert_eq!(response.text(), "moved\n", "{what}");
        assert_eq!(all(response, "location"), ["/new"], "{what}");
        let server = all(response, "server");
        assert_eq!(server, ["mine"], "{what}: the handler's, alone");
        assert_eq!(all(response, "date").len(), 1, "{what}: the engine's date");
        assert_framed(response, what);
    }
    assert_eq!(headed.status, 301, "HEAD");
    assert_eq!(all(&headed, "location"), ["/new"], "HEAD");
    assert_eq!(all(&headed, "server"), ["mine"], "HEAD");
    // HEAD's content-length: see the test below. Nothing stray follows the HEAD
    // answer: a last request is answered intact.
    client.send(get("/old")).await;
    let last = client.response().await;
    assert_eq!(last.text(), "moved\n");
    assert_framed(&last, "after HEAD");
    server.shutdown().await;
}

/// `Answer::header` ignores `Content-Length`: the body's length is the one written, for a HEAD
/// answer too (it describes the GET's body).
#[tokio::test]
async fn a_head_answer_ignores_a_content_length_the_handler_set() {
    let server = serve(redirect_app()).await;
    let mut client = Client::connect(server.addr).await;
    // Inline, and on the Service path (a body).
    let mut wire = head("/old").into_bytes();
    wire.extend_from_slice(&with_body("HEAD", "/old", b"abc"));
    client.send(wire).await;
    for what in ["inline", "Service path"] {
        let headed = client.head_response().await;
        let length = all(&headed, "content-length");
        assert_eq!(
            length,
            ["6"],
            "{what}: the GET body's length, as a GET gets"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_http_1_0_request_without_keep_alive_is_answered_then_closed() {
    let app = Router::new().route("/page", get_inline(|_| Answer::text("page\n")));
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send("GET /page HTTP/1.0\r\nHost: test\r\n\r\n")
        .await;
    let response = client.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "page\n");
    assert_framed(&response, "HTTP/1.0");
    assert!(client.is_closed().await, "EOF after the answer");
    // Our side closes too, or the server lingers (up to 2 s) before shutting down.
    drop(client);
    server.shutdown().await;
}

/// A Service route answering `text`.
fn says(text: &'static str) -> pipelined::MethodRouter {
    pipelined::get(move |_req| async move { text })
}

/// The Service path reuses the route the inline path matched for the same path
/// (`Router::hint`, `src/router/last.rs`): every request must still reach its own route, on a
/// connection that matched others before it, with another method, and through a router
/// served inside a route (which must not take the outer router's route for its own).
#[tokio::test]
async fn a_service_request_reaches_its_own_route_whatever_the_connection_matched_before() {
    let inner = Router::new().route("/inner", says("inner\n"));
    let app = Router::new()
        .route("/inline", get_inline(|_head| Answer::text("inline\n")))
        .route("/a", says("a\n").post(|_req| async { "post a\n" }))
        .route("/b", says("b\n"))
        .route_service("/inner", inner);
    let server = serve(app).await;
    let mut client = Client::connect(server.addr).await;
    let mut wire = Vec::new();
    for path in ["/inline", "/a", "/a", "/b", "/a?q=1"] {
        wire.extend_from_slice(get(path).as_bytes());
    }
    wire.extend_from_slice(&with_body("POST", "/a", b"x"));
    for path in ["/b", "/inner", "/inner", "/a/", "/a"] {
        wire.extend_from_slice(get(path).as_bytes());
    }
    client.send(wire).await;
    let answers: Vec<(u16, String)> = client
        .responses(11)
        .await
        .iter()
        .map(|r| (r.status, r.text()))
        .collect();
    let expected = [
        (200, "inline\n"),
        (200, "a\n"),
        (200, "a\n"),
        (200, "b\n"),
        (200, "a\n"),
        (200, "post a\n"),
        (200, "b\n"),
        (200, "inner\n"),
        (200, "inner\n"),
        (404, "Not Found\n"),
        (200, "a\n"),
    ];
    let expected: Vec<(u16, String)> = expected.iter().map(|(s, t)| (*s, t.to_string())).collect();
    assert_eq!(answers, expected);
    server.shutdown().await;
}
