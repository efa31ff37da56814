//! The conformance table's runner: the row type, the test server's routes, and the two ways
//! every row is sent (alone, and pipelined between two valid requests).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use pipelined::{post, Body, BodyError, Config, Router};

use crate::common::{self, serve_with, Client};

/// Largest request head the test server accepts (the smallest the engine allows is 256).
pub const MAX_HEADER_BYTES: usize = 1024;
/// Most header fields the test server accepts.
pub const MAX_HEADERS: usize = 16;
/// Largest request body the test server accepts.
pub const MAX_BODY_BYTES: u64 = 64;
/// How long the test server waits for an unfinished head (only the `408` row waits for it).
const HEADER_READ_TIMEOUT: Duration = Duration::from_millis(500);

/// The connection must close after the answer.
pub const CLOSE: bool = true;
/// The connection must stay open after the answer.
pub const KEEP: bool = false;

/// What the client does once the row's bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Nothing special: a sentinel `GET` follows (in the same write when pipelined).
    Sentinel,
    /// The head is unfinished and the client goes quiet (the `408` row).
    Stall,
    /// The client half-closes its write side: the input ends at EOF.
    Eof,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub input: Vec<u8>,
    pub status: u16,
    /// The connection must close after this response.
    pub close: bool,
    pub tail: Tail,
    /// A `100 Continue` must come before the final answer (and none may come otherwise).
    pub interim: bool,
    /// The final answer's body, where it proves something (the path routed, the body decoded).
    pub body: Option<String>,
}

/// A row: `input` must be answered `status`, then closed (`CLOSE`) or kept open (`KEEP`).
pub fn row(name: &'static str, input: impl AsRef<[u8]>, status: u16, close: bool) -> Case {
    Case {
        name,
        input: input.as_ref().to_vec(),
        status,
        close,
        tail: Tail::Sentinel,
        interim: false,
        body: None,
    }
}

impl Case {
    /// The final answer's body must be exactly `body`.
    pub fn body(self, body: impl Into<String>) -> Self {
        Case {
            body: Some(body.into()),
            ..self
        }
    }

    /// `100 Continue` must precede the final answer.
    pub fn continue_first(self) -> Self {
        Case {
            interim: true,
            ..self
        }
    }

    /// The client half-closes right after the input.
    pub fn then_eof(self) -> Self {
        Case {
            tail: Tail::Eof,
            ..self
        }
    }

    /// The input is an unfinished head; nothing follows it.
    pub fn then_stall(self) -> Self {
        Case {
            tail: Tail::Stall,
            ..self
        }
    }
}

/// Paths the GET handler saw, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// `GET <any path>` answers `200` with the path (and logs it); any other method on a path with
/// no route is `404`; `POST /sink` answers with its body (plus `+name=value` per trailer
/// field), or with the body's error (`413`/`400`); other methods on `/sink` are `405`.
fn app(log: &Log) -> Router {
    let log = Arc::clone(log);
    Router::new()
        .route("/sink", post(sink))
        .fallback(move |req: Request<Body>| {
            let log = Arc::clone(&log);
            async move {
                let path = req.uri().path().to_owned();
                if req.method() != Method::GET {
                    return (
                        StatusCode::NOT_FOUND,
                        format!("no route for {}", req.method()),
                    );
                }
                log.lock().unwrap().push(path.clone());
                (StatusCode::OK, path)
            }
        })
}

async fn sink(req: Request<Body>) -> Result<String, BodyError> {
    let collected = req.into_body().collect().await?;
    let trailers: String = collected
        .trailers()
        .into_iter()
        .flatten()
        .map(|(name, value)| format!("+{name}={}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    let body = collected.to_bytes();
    Ok(format!("{}{trailers}", String::from_utf8_lossy(&body)))
}

/// What follows the row's request on its connection.
enum Next<'a> {
    /// Nothing (the row must close, or its input ends the connection's requests).
    Nothing,
    /// This GET was pipelined behind it, in the same write.
    Pipelined(&'a str),
    /// This GET is to be sent once the row's answer has been read.
    SendAfter(&'a str),
}

/// Checks one row's answer (and the one behind it); returns what was wrong, if anything.
async fn check_answer(client: &mut Client, case: &Case, next: Next<'_>) -> Vec<String> {
    let mut wrong = Vec::new();
    if case.interim {
        match client.try_response(false).await {
            Some(interim) if interim.status == 100 => {}
            Some(other) => wrong.push(format!("got {} where 100 Continue was due", other.status)),
            None => {
                wrong.push("closed before 100 Continue".into());
                return wrong;
            }
        }
    }
    let Some(response) = client.try_response(false).await else {
        wrong.push(format!("closed without an answer (want {})", case.status));
        return wrong;
    };
    if response.status != case.status {
        wrong.push(format!(
            "status {} (want {}), body {:?}",
            response.status,
            case.status,
            shown(response.text())
        ));
    } else if let Some(body) = &case.body {
        if response.text() != *body {
            wrong.push(format!(
                "body {:?} (want {:?})",
                shown(response.text()),
                shown(body.clone())
            ));
        }
    }
    if case.close {
        if !response.closes() {
            // Waiting for an EOF that was not announced would only hit the hang guard.
            wrong.push("the answer lacks `connection: close`".into());
        } else if !client.is_closed().await {
            wrong.push("the connection stayed open (or sent more) after the answer".into());
        }
        return wrong;
    }
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
            shown(next.text())
        )),
        None => wrong.push("the request behind it was never answered".into()),
    }
    wrong
}

/// A body for a failure message: long ones are cut, so one row cannot drown the others.
fn shown(mut text: String) -> String {
    if let Some((at, _)) = text.char_indices().nth(80) {
        text.truncate(at);
        text.push('…');
    }
    text
}

/// The row on a fresh connection, alone; a kept-open connection must then serve one more GET.
async fn alone(addr: SocketAddr, case: Case, sentinel: String) -> Vec<String> {
    let mut client = Client::connect(addr).await;
    client.send(&case.input).await;
    if case.tail == Tail::Eof {
        client.shutdown_write().await;
    }
    let next = if case.close || case.tail != Tail::Sentinel {
        Next::Nothing
    } else {
        Next::SendAfter(&sentinel)
    };
    check_answer(&mut client, &case, next).await
}

/// The row pipelined in one write between a valid GET and a sentinel GET.
async fn pipelined(addr: SocketAddr, case: Case, sentinel: String) -> Vec<String> {
    let before = sentinel.replace("/after-", "/before-");
    let mut batch = common::get(&before).into_bytes();
    batch.extend_from_slice(&case.input);
    if case.tail == Tail::Sentinel {
        batch.extend_from_slice(common::get(&sentinel).as_bytes());
    }
    let mut client = Client::connect(addr).await;
    client.send(&batch).await;
    if case.tail == Tail::Eof {
        client.shutdown_write().await;
    }
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
    let next = match case.tail {
        Tail::Sentinel => Next::Pipelined(&sentinel),
        Tail::Stall | Tail::Eof => Next::Nothing,
    };
    wrong.extend(check_answer(&mut client, &case, next).await);
    wrong
}

/// Runs every row both ways against one server, its `Config` passed through `adjust` (the
/// table's limits stay); returns every mismatch, named by row, so one deviation never hides
/// another.
pub async fn run_table(cases: &[Case], adjust: fn(Config) -> Config) -> Vec<String> {
    let log = Log::default();
    // The table is about the HTTP/1.1 engine. With HTTP/2 detection on, a connection opening
    // with the HTTP/2 preface would go to hyper instead (tests/listeners.rs covers that); off
    // (or built without the `http2` feature), the preface is an HTTP/2.0 request line like any
    // other: 505.
    let config = Config::default()
        .max_header_bytes(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .max_body_bytes(MAX_BODY_BYTES)
        .header_read_timeout(HEADER_READ_TIMEOUT);
    #[cfg(feature = "http2")]
    let config = config.http2(false);
    let server = serve_with(app(&log), adjust(config)).await;
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

/// Runs the table and fails with the whole list of mismatches.
pub async fn assert_table(group: &str, cases: Vec<Case>) {
    let failures = run_table(&cases, |config| config).await;
    assert!(
        failures.is_empty(),
        "{group}: {} RFC mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
