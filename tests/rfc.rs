//! The RFC 9112 / 9110 rules the engine owns (DESIGN.md, "Rules from RFC 9112 / 9110"), as one
//! table of raw-byte requests with the status each must get and whether the connection must
//! close after it.
//!
//! Every row runs twice: alone on a fresh connection, and pipelined in one write behind a valid
//! `GET` and ahead of a sentinel `GET`. The pipelined run proves the refusal lands *after* the
//! earlier response (which is intact), that a closing answer carries `connection: close` and is
//! followed by EOF, and — through the handlers' log — that the sentinel behind a closing row is
//! never processed, while the sentinel behind an accepted row is (so its framing was right).
//!
//! Where the RFC leaves a choice, the row states the one `src/proto/request.rs` makes (e.g. `501`
//! for an unknown transfer coding, identical duplicate `Content-Length`s accepted, every refusal
//! closes). Rows where the engine contradicts a MUST/SHOULD of the RFC carry the RFC's answer;
//! the test collects every mismatch and fails with the whole list, so one deviation never hides
//! another.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{serve_with, Client};
use http::{Request, Response};
use http_body_util::BodyExt;
use pipelined::{post, Body, BodyError, Config, ResponseBody, Router};

/// Largest request head the test server accepts (the smallest the engine allows is 256).
const MAX_HEADER_BYTES: usize = 1024;
/// Most header fields the test server accepts.
const MAX_HEADERS: usize = 16;
/// Largest request body the test server accepts.
const MAX_BODY_BYTES: u64 = 64;

/// Paths the GET handler saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// `GET <any path>` answers with the path (and logs it); `POST /sink` collects its body and
/// answers with it, or with the body's error (`413`/`400`).
fn app(log: &Log) -> Router {
    let log = Arc::clone(log);
    Router::new()
        .route("/sink", post(sink))
        .fallback(move |req: Request<Body>| {
            let log = Arc::clone(&log);
            async move {
                let path = req.uri().path().to_owned();
                log.lock().unwrap().push(path.clone());
                path
            }
        })
}

async fn sink(req: Request<Body>) -> Result<Response<ResponseBody>, BodyError> {
    let bytes = req.into_body().collect().await?.to_bytes();
    Ok(Response::new(ResponseBody::from(bytes)))
}

/// The connection must close after the answer.
const CLOSE: bool = true;
/// The connection must stay open after the answer.
const KEEP: bool = false;

/// One row of the table.
#[derive(Clone, Debug)]
struct Case {
    name: &'static str,
    input: Vec<u8>,
    status: u16,
    /// The connection must close after this response.
    close: bool,
    /// The input is an unfinished head (the 408 row): nothing may follow it in the same write.
    partial: bool,
}

fn row(name: &'static str, input: impl AsRef<[u8]>, status: u16, close: bool) -> Case {
    Case {
        name,
        input: input.as_ref().to_vec(),
        status,
        close,
        partial: false,
    }
}

/// A `POST /sink` with the given extra header lines (each ending in CRLF) and raw body bytes.
fn post_sink(headers: &str, body: &str) -> String {
    format!("POST /sink HTTP/1.1\r\nHost: t\r\n{headers}\r\n{body}")
}

/// A chunked `POST /sink` whose body is `body` verbatim (chunk framing included).
fn chunked_sink(body: &str) -> String {
    post_sink("Transfer-Encoding: chunked\r\n", body)
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(MAX_HEADER_BYTES + 100)
    );
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(MAX_HEADER_BYTES + 100)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..MAX_HEADERS + 1)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let body_over = "x".repeat(MAX_BODY_BYTES as usize + 1);
    let body_at_limit = "y".repeat(MAX_BODY_BYTES as usize);
    let mut rows = vec![
        // --- request line / header syntax: 400, close ---
        row("request line without version", "GET /\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("request line of one token", "HELLO\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("request line with two spaces", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("lowercase version", "GET / http/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("whitespace before colon", "GET / HTTP/1.1\r\nHost: t\r\nX-A : b\r\n\r\n", 400, CLOSE),
        row("whitespace before colon (TE)", "POST /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, CLOSE),
        row("whitespace line after request line", "GET / HTTP/1.1\r\n Host: t\r\n\r\n", 400, CLOSE),
        row("obs-fold continuation line", "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n", 400, CLOSE),
        row("bare CR inside a header value", "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\rc\r\n\r\n", 400, CLOSE),
        row("bare CR ending the request line", "GET / HTTP/1.1\rHost: t\r\n\r\n", 400, CLOSE),
        row("NUL in a header value", "GET / HTTP/1.1\r\nHost: t\r\nX-A: b\0c\r\n\r\n", 400, CLOSE),
        row("NUL in a header name", "GET / HTTP/1.1\r\nHost: t\r\nX-\0A: b\r\n\r\n", 400, CLOSE),
        row("invalid token char in method", "GE(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        row("invalid token char in header name", "GET / HTTP/1.1\r\nHost: t\r\nX(A): b\r\n\r\n", 400, CLOSE),
        row("asterisk target on GET", "GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400, CLOSE),
        // --- Host (RFC 9112 §3.2) ---
        row("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400, CLOSE),
        row("two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, CLOSE),
        row("Host with a space", "GET / HTTP/1.1\r\nHost: exa mple\r\n\r\n", 400, CLOSE),
        row("HTTP/1.0 without Host is fine", "GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, KEEP),
        // --- Content-Length (RFC 9112 §6.3, RFC 9110 §8.6) ---
        row("Content-Length +5", post_sink("Content-Length: +5\r\n", "hello"), 400, CLOSE),
        row("Content-Length 0x5", post_sink("Content-Length: 0x5\r\n", "hello"), 400, CLOSE),
        row("Content-Length '5 5'", post_sink("Content-Length: 5 5\r\n", "hello"), 400, CLOSE),
        row("Content-Length -1", post_sink("Content-Length: -1\r\n", "hello"), 400, CLOSE),
        row("Content-Length empty", post_sink("Content-Length: \r\n", "hello"), 400, CLOSE),
        row("Content-Length overflowing u64", post_sink("Content-Length: 99999999999999999999999\r\n", "hello"), 400, CLOSE),
        row("conflicting Content-Length headers", post_sink("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400, CLOSE),
        row("conflicting Content-Length list", post_sink("Content-Length: 5, 6\r\n", "hello!"), 400, CLOSE),
        // The engine's choice (RFC 9110 §8.6 allows it): identical duplicates are one length.
        row("identical Content-Length list accepted", post_sink("Content-Length: 5, 5\r\n", "hello"), 200, KEEP),
        row("identical Content-Length headers accepted", post_sink("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 200, KEEP),
        // --- Transfer-Encoding (RFC 9112 §6.1, §6.3) ---
        row("Content-Length and Transfer-Encoding", post_sink("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("Transfer-Encoding and Content-Length", post_sink("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("TE chunked, gzip (chunked not last)", post_sink("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), 400, CLOSE),
        row("TE gzip (no chunked)", post_sink("Transfer-Encoding: gzip\r\n", "hello"), 400, CLOSE),
        row("TE chunked twice", post_sink("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 400, CLOSE),
        row("TE xchunked", post_sink("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400, CLOSE),
        row("TE empty", post_sink("Transfer-Encoding: \r\n", "0\r\n\r\n"), 400, CLOSE),
        row("unknown coding: gzip, chunked", post_sink("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501, CLOSE),
        row("unknown coding in two headers", post_sink("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 501, CLOSE),
        row("HTTP/1.0 with Transfer-Encoding", "POST /sink HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400, CLOSE),
        row("chunked accepted (control)", chunked_sink("5\r\nhello\r\n0\r\n\r\n"), 200, KEEP),
        row("chunked, case-insensitive", post_sink("Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 200, KEEP),
        // --- chunked framing (RFC 9112 §7.1) ---
        row("chunk size not hex", chunked_sink("zz\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size with a leading space", chunked_sink(" 5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size 0x-prefixed", chunked_sink("0x5\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size overflowing (17 hex digits)", chunked_sink("10000000000000000\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("chunk size u64::MAX is over the body limit", chunked_sink("ffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 413, CLOSE),
        row("missing CRLF after chunk data", chunked_sink("5\r\nhelloXX\r\n0\r\n\r\n"), 400, CLOSE),
        row("bare LF after chunk data", chunked_sink("5\r\nhello\n0\r\n\r\n"), 400, CLOSE),
        row("NUL in a chunk extension", chunked_sink("5;a=\0\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("bare LF in a chunk extension", chunked_sink("5;a\nb\r\nhello\r\n0\r\n\r\n"), 400, CLOSE),
        row("invalid trailer field", chunked_sink("5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n"), 400, CLOSE),
        // --- limits ---
        row("request line over the header limit", long_target, 414, CLOSE),
        row("header section over the limit", big_header, 431, CLOSE),
        row("too many headers", many_headers, 431, CLOSE),
        row("Content-Length over the body limit", post_sink(&format!("Content-Length: {}\r\n", body_over.len()), &body_over), 413, CLOSE),
        row("chunked body over the body limit", chunked_sink(&format!("{:x}\r\n{body_over}\r\n0\r\n\r\n", body_over.len())), 413, CLOSE),
        row("Content-Length at the body limit", post_sink(&format!("Content-Length: {}\r\n", body_at_limit.len()), &body_at_limit), 200, KEEP),
        // --- Expect (RFC 9110 §10.1.1) ---
        row("unknown expectation", post_sink("Content-Length: 5\r\nExpect: teapot\r\n", "hello"), 417, CLOSE),
        row("100-continue among other expectations", post_sink("Content-Length: 5\r\nExpect: 100-continue, x\r\n", "hello"), 417, CLOSE),
        // --- version (RFC 9112 §2.3, RFC 9110 §2.5) ---
        row("HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, CLOSE),
        row("HTTP/3.0 request line", "GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505, CLOSE),
        row("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, CLOSE),
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        row("empty line before the request line", "\r\nGET /lead HTTP/1.1\r\nHost: t\r\n\r\n", 200, KEEP),
    ];
    // Headers not complete within the header-read timeout: 408, close.
    rows.push(Case {
        partial: true,
        ..row("head not finished within the header-read timeout", "GET /slow HTTP/1.1\r\nHost: t\r\n", 408, CLOSE)
    });
    rows.extend([
        // RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
        // HTTP/1.1 request message that lacks a Host header field" — absolute-form included.
        row("HTTP/1.1 absolute-form without Host", "GET http://example.com/ HTTP/1.1\r\n\r\n", 400, CLOSE),
        // RFC 9110 §7.2: Host = uri-host [ ":" port ]; userinfo is not part of it, so the field
        // value is invalid and RFC 9112 §3.2 requires 400.
        row("Host with userinfo", "GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400, CLOSE),
        // RFC 9110 §2.5: a higher minor version of a major version we implement "SHOULD" be
        // processed as the highest minor version we conform to, i.e. as HTTP/1.1.
        row("HTTP/1.2 served as HTTP/1.1", "GET /twelve HTTP/1.2\r\nHost: t\r\n\r\n", 200, KEEP),
        ]);
    rows
}

/// What follows the row's request on its connection.
enum Next<'a> {
    /// Nothing (the row must close, or its head is unfinished).
    Nothing,
    /// This GET was pipelined behind it, in the same write.
    Pipelined(&'a str),
    /// This GET is to be sent once the row's answer has been read.
    SendAfter(&'a str),
}

/// Checks one response against the row; returns what was wrong, if anything.
async fn check_answer(client: &mut Client, case: &Case, next: Next<'_>) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some(response) = client.try_response(false).await else {
        wrong.push(format!("closed without an answer (want {})", case.status));
        return wrong;
    };
    if response.status != case.status {
        wrong.push(format!(
            "status {} (want {}), body {:?}",
            response.status,
            case.status,
            response.text()
        ));
    }
    if case.close {
        if !response.closes() {
            // Waiting for an EOF that was not announced would only hit the hang guard.
            wrong.push("the answer lacks `connection: close`".into());
        } else if !client.is_closed().await {
            wrong.push("the connection stayed open (or sent more) after the answer".into());
        }
    } else {
        if response.closes() {
            wrong.push("the answer closes the connection (want it kept open)".into());
            return wrong;
        }
        let path = match next {
            Next::Nothing => return wrong,
            Next::Pipelined(path) => path,
            Next::SendAfter(path) => {
                client.send(common::get(path)).await;
                path
            }
        };
        match client.try_response(false).await {
            Some(next) if next.status == 200 && next.text() == path => {}
            Some(next) => wrong.push(format!(
                "the request behind it got {} {:?} (want 200 {path:?}): framing desync",
                next.status,
                next.text()
            )),
            None => wrong.push("the request behind it was never answered".into()),
        }
    }
    wrong
}

/// The row on a fresh connection, alone; a kept-open connection must then serve one more GET.
async fn alone(addr: std::net::SocketAddr, case: Case, sentinel: String) -> Vec<String> {
    let mut client = Client::connect(addr).await;
    client.send(&case.input).await;
    let next = if case.close || case.partial {
        Next::Nothing
    } else {
        Next::SendAfter(&sentinel)
    };
    check_answer(&mut client, &case, next).await
}

/// The row pipelined in one write between a valid GET and a sentinel GET.
async fn pipelined(addr: std::net::SocketAddr, case: Case, sentinel: String) -> Vec<String> {
    let before = sentinel.replace("/after-", "/before-");
    let mut batch = common::get(&before).into_bytes();
    batch.extend_from_slice(&case.input);
    if !case.partial {
        batch.extend_from_slice(common::get(&sentinel).as_bytes());
    }
    let mut client = Client::connect(addr).await;
    client.send(&batch).await;
    let mut wrong = Vec::new();
    match client.try_response(false).await {
        Some(first) if first.status == 200 && first.text() == before && !first.closes() => {}
        Some(first) => wrong.push(format!(
            "the valid GET before it got {} {:?} (closes: {})",
            first.status,
            first.text(),
            first.closes()
        )),
        None => {
            wrong.push("closed before answering the valid GET in front of it".into());
            return wrong;
        }
    }
    let next = if case.partial {
        Next::Nothing
    } else {
        Next::Pipelined(&sentinel)
    };
    wrong.extend(check_answer(&mut client, &case, next).await);
    wrong
}

/// Runs every row both ways against one server; returns every mismatch, named by row.
async fn run_table(cases: Vec<Case>) -> Vec<String> {
    let log = Log::default();
    let config = Config::default()
        .max_header_bytes(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .max_body_bytes(MAX_BODY_BYTES)
        .header_read_timeout(Duration::from_millis(500));
    let server = serve_with(app(&log), config).await;
    let mut failures = Vec::new();
    let mut names = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in cases.iter().enumerate() {
        for variant in ["alone", "pipelined"] {
            let label = format!("row {i} {:?} ({variant})", case.name);
            let case = case.clone();
            let sentinel = format!("/after-{i}-{variant}");
            let addr = server.addr;
            let task = tasks.spawn(async move {
                match variant {
                    "alone" => alone(addr, case, sentinel).await,
                    _ => pipelined(addr, case, sentinel).await,
                }
            });
            names.insert(task.id(), label);
        }
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((id, wrong)) => {
                for w in wrong {
                    failures.push(format!("{}: {w}", names[&id]));
                }
            }
            Err(e) => failures.push(format!("{}: panicked: {e}", names[&e.id()])),
        }
    }

    // Behind a closing row nothing is processed (the accepted rows' sentinels were checked by
    // their answers).
    let seen = log.lock().unwrap().clone();
    for (i, case) in cases.iter().enumerate() {
        for variant in ["alone", "pipelined"] {
            if case.close && seen.contains(&format!("/after-{i}-{variant}")) {
                failures.push(format!(
                    "row {i} {:?} ({variant}): the request behind a closing answer was processed",
                    case.name
                ));
            }
        }
    }
    server.shutdown().await;
    failures.sort();
    failures
}

/// Every rule the engine implements as the RFC (or DESIGN.md's stated choice) says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc_rules_alone_and_behind_a_pipelined_get() {
    let failures = run_table(cases()).await;
    assert!(
        failures.is_empty(),
        "{} RFC mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
