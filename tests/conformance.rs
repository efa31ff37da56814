//! HTTP/1.1 conformance: the RFC 9112 / RFC 9110 rules the engine owns (docs/ARCHITECTURE.md,
//! "Rules from RFC 9112 / 9110"), as tables of raw-byte requests with the status each must get
//! and whether the connection must close after it. One table per concern, each a test of its own.
//!
//! Every row runs twice (see `conformance/runner.rs`): alone on a fresh connection, and
//! pipelined in one write behind a valid `GET` and ahead of a sentinel `GET`. The pipelined run
//! proves the answer lands *after* the earlier response (which is intact), that a closing answer
//! carries `connection: close` and is followed by EOF, and — through the handlers' log — that
//! the sentinel behind a closing row is never processed, while the sentinel behind an accepted
//! row is answered (so the row's framing was exact: no desync, no smuggling).
//!
//! And every row runs against two apps (issue #19): one whose GETs a Service fallback answers,
//! and one whose GETs inline handlers (`get_inline`) answer, from the parsed head where the
//! engine can (the engine's inline path skips the `http::Request` and the Service call, so it
//! must still apply every rule above). Both must answer every row as the row says, and the same
//! as each other; `the_inline_app_answers_a_plain_get_inline` pins that the inline app's plain
//! GETs really take the inline path, and answer as the same router on the Service path does.
//!
//! Where the RFC leaves a choice, the row follows the one the engine makes and says so. Choices
//! that hold throughout:
//! - every request the engine refuses (4xx/5xx from `src/proto/request.rs` or a broken body)
//!   closes the connection (RFC 9112 §9.5 lets a server close at any time; for framing errors
//!   §6.3 requires it);
//! - a single LF is accepted as a line terminator in the request line, header and trailer
//!   sections (RFC 9112 §2.2: a recipient MAY), but not inside chunked framing;
//! - the request line is split on single SPs only (§3 MAY allow other whitespace; we don't).
//!
//! Rows where the engine contradicts a MUST of the RFC (or a limit it documents) carry the
//! RFC's (or the limit's) answer, and fail until the engine is fixed; the runner collects every
//! mismatch so one never hides another.

mod common;
#[path = "conformance/runner.rs"]
mod runner;
#[path = "conformance/table.rs"]
mod table;

use std::collections::HashSet;
use std::net::SocketAddr;

use common::{serve_with, Client, RawResponse};
use runner::{App, Log, Taken};
use table::all;
use tower::layer::util::Identity;

/// The battery covers at least 90 cases, and no two rows share a name or an input (a copied row
/// that tests nothing new would inflate the count).
#[test]
fn table_is_large_and_distinct() {
    let cases = all();
    assert!(cases.len() >= 90, "only {} cases", cases.len());
    let mut names = HashSet::new();
    let mut inputs = HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "duplicate name {:?}", case.name);
        assert!(
            inputs.insert(&case.input),
            "duplicate input in {:?}",
            case.name
        );
    }
}

/// What must be the same in the two paths' answers: status, content type and length, body, and
/// whether the connection closes.
fn essentials(response: &RawResponse) -> (u16, Option<&str>, Option<&str>, String, bool) {
    (
        response.status,
        response.header("content-type"),
        response.header("content-length"),
        response.text(),
        response.closes(),
    )
}

/// `GET /probe?q=1`, `HEAD /probe` and `GET /`, plain, pipelined in one write; then a GET with
/// a one-byte body (which the engine leaves to the Service path whatever the router): their
/// answers, in order.
async fn probe(addr: SocketAddr) -> Vec<RawResponse> {
    let mut client = Client::connect(addr).await;
    client
        .send(
            "GET /probe?q=1 HTTP/1.1\r\nHost: probe.test\r\n\r\n\
             HEAD /probe HTTP/1.1\r\nHost: probe.test\r\n\r\n\
             GET / HTTP/1.1\r\nHost: probe.test\r\n\r\n",
        )
        .await;
    let get = client.response().await;
    let head = client.head_response().await;
    let root = client.response().await;
    client
        .send("GET /probe-body HTTP/1.1\r\nHost: probe.test\r\nContent-Length: 1\r\n\r\nx")
        .await;
    let with_body = client.response().await;
    vec![get, head, root, with_body]
}

/// The inline app answers a plain GET (and HEAD) on the engine's inline path, its handler
/// seeing the head's `Host`; and its answers are those of the same router wrapped in a layer
/// (`Identity`), which takes the Service path for every request. The way each call came is
/// read from the handler's call stack, and the layered router is the control that this tells
/// the two paths apart: its calls must read as the Service path, and so must the unlayered
/// router's GET with a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inline_app_answers_a_plain_get_inline() {
    let log = Log::default();
    let server = serve_with(App::Inline.router(&log), runner::config()).await;
    let layered_log = Log::default();
    let layered_app = App::Inline.router(&layered_log).layer(Identity::new());
    let layered = serve_with(layered_app, runner::config()).await;

    let inline = probe(server.addr).await;
    let service = probe(layered.addr).await;

    let paths = ["/probe", "/probe", "/", "/probe-body"];
    for (i, path) in paths.into_iter().enumerate() {
        assert_eq!(inline[i].status, 200, "{path}: {:?}", inline[i]);
        assert_eq!(
            essentials(&inline[i]),
            essentials(&service[i]),
            "request {i} ({path}): the inline path answers as the Service path does"
        );
    }
    assert_eq!(inline[0].text(), "/probe");
    assert_eq!(inline[1].text(), "", "no body for HEAD");
    assert_eq!(inline[1].header("content-length"), Some("6"));
    assert_eq!(inline[2].text(), "/");
    assert_eq!(inline[3].text(), "/probe-body");

    let taken = [Taken::Inline, Taken::Inline, Taken::Inline, Taken::Service];
    for (log, taken) in [(&log, taken), (&layered_log, [Taken::Service; 4])] {
        let calls = log.take_calls();
        let seen: Vec<_> = calls.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            seen, paths,
            "the handler was called once per request, in order"
        );
        for (call, taken) in calls.iter().zip(taken) {
            assert_eq!(
                call.host.as_deref(),
                Some(&b"probe.test"[..]),
                "{}: the handler sees the head's Host",
                call.path
            );
            assert_eq!(
                call.taken(),
                Some(taken),
                "{}: the way the handler was called; its stack:\n{}",
                call.path,
                call.stack
            );
        }
    }
    server.shutdown().await;
    layered.shutdown().await;
}

macro_rules! table_tests {
    ($($group:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $group() {
            runner::assert_table(stringify!($group), table::$group()).await;
        }
    )*};
}

/// One test per group, each against its own server, alone and behind a pipelined GET.
mod rfc {
    use super::{runner, table};

    table_tests!(
        request_line,
        request_target,
        version,
        header_syntax,
        host,
        content_length,
        transfer_encoding,
        chunked,
        limits,
        expect,
    );
}
