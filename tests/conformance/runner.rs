//! The conformance table's runner: the row type, the test servers' routes, and the two ways
//! every row is sent (alone, and pipelined between two valid requests).
//!
//! Every row runs against two apps with the same observable behaviour: [`App::Service`], whose
//! GETs a Service fallback answers, and [`App::Inline`], whose GETs (and HEADs) inline handlers
//! ([`pipelined::get_inline`]) answer, from the parsed head where the engine can. Each app's
//! answers are held to the row, and to each other: a row the two apps answer differently is a
//! mismatch of its own, even where both differ from the row.

use std::backtrace::Backtrace;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use pipelined::{get_inline, post, Answer, Body, BodyError, Config, HeadView, Router};

use crate::common::{self, serve_with, Client, RawResponse};

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

/// One call of the inline app's GET handler, as it saw the head.
pub struct InlineCall {
    pub path: String,
    /// `HeadView::header("host")`.
    pub host: Option<Vec<u8>>,
    /// Where it was called from: tells the engine's inline path from the Router's Service path
    /// (see `tests/conformance.rs`, `the_inline_app_answers_a_plain_get_inline`).
    pub stack: Backtrace,
}

/// Which way a request reached the inline app's GET handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The engine's inline path: called from the parsed head, no `http::Request`.
    Inline,
    /// The Service path: called by the `Router` as a `tower::Service`, with a view of the
    /// `http::Request`.
    Service,
}

impl InlineCall {
    /// Which way the handler was called, read from its call stack: the engine's inline path
    /// runs it from `try_inline` (`src/conn/connection/inline.rs`), the Service path from a
    /// `tower::Service::call` (the `Router`'s, or for a layered router, the `Route`'s the layer
    /// wraps). `None` when the stack names neither or both (symbols renamed, or not resolved),
    /// so a test relying on it fails rather than guesses.
    pub fn taken(&self) -> Option<Taken> {
        let stack = self.stack.to_string();
        match (
            stack.contains("try_inline"),
            stack.contains(" as tower_service::Service<"),
        ) {
            (true, false) => Some(Taken::Inline),
            (false, true) => Some(Taken::Service),
            _ => None,
        }
    }
}

/// What the handlers saw.
#[derive(Clone, Default)]
pub struct Log {
    /// Paths the GET handlers answered, in order (either app).
    paths: Arc<Mutex<Vec<String>>>,
    /// Every call of the inline app's GET handler, in order.
    calls: Arc<Mutex<Vec<InlineCall>>>,
}

impl Log {
    /// Paths the GET handlers answered, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    /// Takes the inline handler's calls so far.
    pub fn take_calls(&self) -> Vec<InlineCall> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

/// The two apps every row runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// GET is answered by a Service fallback (no route matches but `/sink`).
    Service,
    /// GET (and HEAD) is answered by inline handlers on `/` and `/{*rest}`.
    Inline,
}

impl App {
    /// The label of its mismatches.
    pub fn label(self) -> &'static str {
        match self {
            App::Service => "service",
            App::Inline => "inline",
        }
    }

    /// The app, logging into `log`. Either way, `GET <any path>` answers `200` with the path
    /// (and logs it); any other method on a path with no route of its own is `404` "no route
    /// for METHOD"; `POST /sink` answers with its body (plus `+name=value` per trailer field),
    /// or with the body's error (`413`/`400`); other methods on `/sink` are `405` (`OPTIONS`:
    /// `204`), and `OPTIONS *` is the router's own `200`.
    pub fn router(self, log: &Log) -> Router {
        let app = Router::new()
            .route("/sink", post(sink))
            .fallback(fallback(log));
        match self {
            App::Service => app,
            // Routes matching every path under `/` (matchit's catch-all needs at least one
            // byte, so `/` has a route of its own), GET and HEAD inline, every other method to
            // an any-method service that answers as the fallback does: no 405 or `OPTIONS`
            // 204 from the router where the Service app answers 404. The fallback stays for
            // paths these do not match.
            App::Inline => ["/", "/{*rest}"].into_iter().fold(app, |app, path| {
                app.route(path, get_inline(inline_get(log)))
                    .route_service(path, tower::service_fn(no_route))
            }),
        }
    }
}

/// The Service app's GET handler, and both apps' answer to other methods on unrouted paths.
fn fallback(
    log: &Log,
) -> impl Fn(Request<Body>) -> std::future::Ready<(StatusCode, String)> + Clone + Send + Sync + 'static
{
    let paths = Arc::clone(&log.paths);
    move |req: Request<Body>| {
        let path = req.uri().path().to_owned();
        if req.method() != Method::GET {
            return std::future::ready(not_routed(req.method()));
        }
        paths.lock().unwrap().push(path.clone());
        std::future::ready((StatusCode::OK, path))
    }
}

/// The inline app's GET handler: the path, logged, with what the handler saw.
fn inline_get(log: &Log) -> impl Fn(&HeadView<'_>) -> Answer + Send + Sync + 'static {
    let log = log.clone();
    move |head: &HeadView<'_>| {
        let path = head.path().to_owned();
        log.paths.lock().unwrap().push(path.clone());
        log.calls.lock().unwrap().push(InlineCall {
            path: path.clone(),
            host: head.header("host").map(<[u8]>::to_vec),
            stack: Backtrace::force_capture(),
        });
        Answer::text(path)
    }
}

/// The inline app's routes' answer to every method but GET and HEAD.
async fn no_route(req: Request<Body>) -> Result<(StatusCode, String), Infallible> {
    Ok(not_routed(req.method()))
}

fn not_routed(method: &Method) -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, format!("no route for {method}"))
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

/// One run of a row on one app: what was wrong, and what the client saw (every answer's
/// status, content type, body and `connection: close`, and how the connection ended), which
/// the two apps must agree on. `Allow` is left out: the router's `OPTIONS *` lists every method
/// routed, and the inline app routes GET and HEAD where the Service app has a fallback.
#[derive(Default)]
struct Run {
    wrong: Vec<String>,
    seen: Vec<String>,
}

impl Run {
    fn wrong(&mut self, what: impl Into<String>) {
        self.wrong.push(what.into());
    }

    /// Reads one answer, noting it (or the EOF) in `seen`.
    async fn read(&mut self, client: &mut Client) -> Option<RawResponse> {
        let response = client.try_response(false).await;
        self.seen.push(match &response {
            Some(r) => format!(
                "{} {:?} type={:?}{}",
                r.status,
                shown(r.text()),
                r.header("content-type").unwrap_or(""),
                if r.closes() { " close" } else { "" }
            ),
            None => "EOF".into(),
        });
        response
    }

    /// Whether the server closed the connection, noted in `seen`.
    async fn closed(&mut self, client: &mut Client) -> bool {
        let closed = client.is_closed().await;
        self.seen
            .push(if closed { "then EOF" } else { "then more" }.into());
        closed
    }
}

/// Checks one row's answer (and the one behind it) into `run`.
async fn check_answer(client: &mut Client, case: &Case, next: Next<'_>, run: &mut Run) {
    if case.interim {
        match run.read(client).await {
            Some(interim) if interim.status == 100 => {}
            Some(other) => run.wrong(format!("got {} where 100 Continue was due", other.status)),
            None => {
                run.wrong("closed before 100 Continue");
                return;
            }
        }
    }
    let Some(response) = run.read(client).await else {
        run.wrong(format!("closed without an answer (want {})", case.status));
        return;
    };
    if response.status != case.status {
        run.wrong(format!(
            "status {} (want {}), body {:?}",
            response.status,
            case.status,
            shown(response.text())
        ));
    } else if let Some(body) = &case.body {
        if response.text() != *body {
            run.wrong(format!(
                "body {:?} (want {:?})",
                shown(response.text()),
                shown(body.clone())
            ));
        }
    }
    if case.close {
        if !response.closes() {
            // Waiting for an EOF that was not announced would only hit the hang guard.
            run.wrong("the answer lacks `connection: close`");
        } else if !run.closed(client).await {
            run.wrong("the connection stayed open (or sent more) after the answer");
        }
        return;
    }
    if response.closes() {
        run.wrong("the answer closes the connection (want it kept open)");
        return;
    }
    let path = match next {
        Next::Nothing => return,
        Next::Pipelined(path) => path,
        Next::SendAfter(path) => {
            client.send(common::get(path)).await;
            path
        }
    };
    match run.read(client).await {
        Some(next) if next.status == 200 && next.text() == path => {}
        Some(next) => run.wrong(format!(
            "the request behind it got {} {:?} (want 200 {path:?}): framing desync",
            next.status,
            shown(next.text())
        )),
        None => run.wrong("the request behind it was never answered"),
    }
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
async fn alone(addr: SocketAddr, case: Case, sentinel: String) -> Run {
    let mut run = Run::default();
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
    check_answer(&mut client, &case, next, &mut run).await;
    run
}

/// The row pipelined in one write between a valid GET and a sentinel GET.
async fn pipelined(addr: SocketAddr, case: Case, sentinel: String) -> Run {
    let mut run = Run::default();
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
    match run.read(&mut client).await {
        Some(first) if first.status == 200 && first.text() == before && !first.closes() => {}
        Some(first) => run.wrong(format!(
            "the valid GET before it got {} {:?} (closes: {})",
            first.status,
            first.text(),
            first.closes()
        )),
        None => {
            run.wrong("closed before answering the valid GET in front of it");
            return run;
        }
    }
    let next = match case.tail {
        Tail::Sentinel => Next::Pipelined(&sentinel),
        Tail::Stall | Tail::Eof => Next::Nothing,
    };
    check_answer(&mut client, &case, next, &mut run).await;
    run
}

/// The test server's `Config` (before the caller's `adjust`): the table's limits.
pub fn config() -> Config {
    let config = Config::default()
        .max_header_bytes(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .max_body_bytes(MAX_BODY_BYTES)
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // The table is about the HTTP/1.1 engine. With HTTP/2 detection on, a connection opening
    // with the HTTP/2 preface would go to hyper instead (tests/listeners.rs covers that); off
    // (or built without the `http2` feature), the preface is an HTTP/2.0 request line like any
    // other: 505.
    #[cfg(feature = "http2")]
    let config = config.http2(false);
    config
}

/// Which run of which row: `(row index, "alone" | "pipelined")`.
type RunId = (usize, &'static str);

/// One app's runs of the table: its mismatches with the rows, labelled by row (not by app),
/// and what the client saw in each run.
struct AppRun {
    failures: Vec<String>,
    seen: HashMap<RunId, Vec<String>>,
}

fn label(cases: &[Case], (i, variant): RunId) -> String {
    format!("row {i} {:?} ({variant})", cases[i].name)
}

/// Runs every row both ways against one server of `app`.
async fn run_app(app: App, cases: &[Case], adjust: fn(Config) -> Config) -> AppRun {
    let log = Log::default();
    let server = serve_with(app.router(&log), adjust(config())).await;
    let mut failures = Vec::new();
    let mut seen = HashMap::new();
    let mut ids = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in cases.iter().enumerate() {
        for variant in ["alone", "pipelined"] {
            let case = case.clone();
            let sentinel = format!("/after-{i}-{variant}");
            let addr = server.addr;
            let task = tasks.spawn(async move {
                match variant {
                    "alone" => alone(addr, case, sentinel).await,
                    _ => pipelined(addr, case, sentinel).await,
                }
            });
            ids.insert(task.id(), (i, variant));
        }
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((id, run)) => {
                let id = ids[&id];
                for w in run.wrong {
                    failures.push(format!("{}: {w}", label(cases, id)));
                }
                seen.insert(id, run.seen);
            }
            Err(e) => failures.push(format!("{}: panicked: {e}", label(cases, ids[&e.id()]))),
        }
    }

    // Behind a closing row nothing is processed (the accepted rows' sentinels were checked by
    // their answers).
    let paths = log.paths();
    for (i, case) in cases.iter().enumerate() {
        for variant in ["alone", "pipelined"] {
            if case.close && paths.contains(&format!("/after-{i}-{variant}")) {
                failures.push(format!(
                    "{}: the request behind a closing answer was processed",
                    label(cases, (i, variant))
                ));
            }
        }
    }
    // The inline app answers a plain GET that opens a connection, or that comes once the
    // earlier answer is read, on the engine's inline path: else this table would only test the
    // Service path twice.
    if app == App::Inline {
        for call in log.take_calls() {
            let path = &call.path;
            let plain = path.starts_with("/before-")
                || (path.starts_with("/after-") && path.ends_with("-alone"));
            if plain && call.taken() != Some(Taken::Inline) {
                failures.push(format!(
                    "the plain GET {path:?} was not answered on the inline path ({:?})",
                    call.taken()
                ));
            }
        }
    }
    server.shutdown().await;
    AppRun { failures, seen }
}

/// Runs every row both ways against one server of each [`App`] (at once), their `Config`
/// passed through `adjust` (the table's limits stay); returns every mismatch, each app's
/// labelled `(service)` or `(inline)` and every run the two apps answered differently labelled
/// `(service≠inline)`, so one deviation never hides another.
pub async fn run_table(cases: &[Case], adjust: fn(Config) -> Config) -> Vec<String> {
    let (service, inline) = tokio::join!(
        run_app(App::Service, cases, adjust),
        run_app(App::Inline, cases, adjust)
    );
    let mut failures = Vec::new();
    for (app, run) in [(App::Service, &service), (App::Inline, &inline)] {
        let tag = app.label();
        failures.extend(run.failures.iter().map(|f| format!("({tag}) {f}")));
    }
    for (id, by_service) in &service.seen {
        // A run that panicked saw nothing to compare; its panic is reported above.
        let Some(by_inline) = inline.seen.get(id) else {
            continue;
        };
        if by_service != by_inline {
            failures.push(format!(
                "(service≠inline) {}: the service app's client saw {by_service:?}, the inline \
                 app's {by_inline:?}",
                label(cases, *id)
            ));
        }
    }
    failures.sort();
    failures
}

/// Runs the table and fails with the whole list of mismatches.
pub async fn assert_table(group: &str, cases: Vec<Case>) {
    let failures = run_table(&cases, |config| config).await;
    assert!(
        failures.is_empty(),
        "{group}: {} mismatches (RFC, or between the apps):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
