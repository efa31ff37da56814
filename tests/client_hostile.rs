//! `pipelined::client` against servers that do not make it easy.
//!
//! - A scripted server on a real TCP socket (127.0.0.1), whose behaviour is a value
//!   ([`Script`]): it reads the client's requests off the wire, answers each with a body and a
//!   field naming exactly that request (method, path with a unique id, body), and can close
//!   after k answers, cut an answer partway, send garbage, reset the connection, split its
//!   output into separate writes at any points, send `100` and `103` before a final answer, use
//!   every framing, say `Connection: close` mid-pipeline, and release its output piece by piece
//!   as the test says. It records every request it read and how many answers it had written by
//!   then, so the tests can check what the client put on the wire, not only what it handed back.
//! - Deterministic tests, one behaviour each; a proptest property over random pipelines and
//!   random server behaviour; hyper's HTTP/1.1 server in-process; nginx, when installed.
//!
//! What every test asserts, in the module docs' words: each response goes to its own request
//! (its body and `x-echo` field name it), never to another; a connection that ends early fails
//! the response it was reading `Incomplete` or `Protocol`, the written requests behind it
//! `NotAnswered` (the request handed back when its body was empty) and the unwritten ones
//! `NotSent` (always handed back); nothing hangs. Timeouts only turn a hang into a failure; no
//! test waits for time to pass: the server's steps are driven by what it reads and by the
//! test's releases (only nginx's start is polled for, until its socket accepts).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use pipelined::client::{self, Builder, ErrorKind, ResponseFuture, SendRequest};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tower::Service;

type Body = Full<Bytes>;

/// Awaits `future`, failing the test if it hangs.
async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(common::HANG, future)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

// --- requests, and how answers name them ---

/// One request of a pipeline: its method, a path that carries its id, and its body.
#[derive(Clone, Debug)]
struct Call {
    method: Method,
    path: String,
    body: String,
}

impl Call {
    fn new(method: Method, id: usize, body: &str) -> Call {
        Call {
            method,
            path: format!("/r{id}"),
            body: body.to_owned(),
        }
    }

    fn request(&self) -> Request<Body> {
        Request::builder()
            .method(self.method.clone())
            .uri(format!("http://hostile{}", self.path))
            .body(Full::new(Bytes::from(self.body.clone())))
            .unwrap()
    }

    /// How an answer (and a request handed back) names this request.
    fn echo(&self) -> String {
        echo(self.method.as_str(), &self.path, &self.body)
    }
}

fn echo(method: &str, path: &str, body: &str) -> String {
    if body.is_empty() {
        format!("{method} {path}")
    } else {
        format!("{method} {path} {body}")
    }
}

fn gets(n: usize) -> Vec<Call> {
    (0..n).map(|i| Call::new(Method::GET, i, "")).collect()
}

// --- the scripted server ---

/// How one answer frames its body. Every answer carries `x-echo` (the request it answers);
/// a 200 to a GET or POST has that same text as its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` (to a HEAD: the length, and no body).
    Length,
    /// Chunked, split in chunks with extensions, and a trailer `x-echo` naming the request.
    Chunked,
    /// Neither: the body ends where the server closes, so it is the server's last answer.
    UntilClose,
    /// 204, with a stray `Content-Length` the client must not wait for.
    NoContent,
    /// 304, with the `Content-Length` of the representation and no body.
    NotModified,
}

/// How the server answers one request.
#[derive(Clone, Copy, Debug)]
struct Answer {
    framing: Framing,
    /// `100 Continue` before the final answer.
    continue_100: bool,
    /// `103 Early Hints` (with a field) before the final answer.
    hints_103: bool,
    /// `Connection: close`: the server's last answer.
    close: bool,
}

impl Answer {
    fn of(framing: Framing) -> Answer {
        Answer {
            framing,
            continue_100: false,
            hints_103: false,
            close: false,
        }
    }

    fn with_1xx(self) -> Answer {
        Answer {
            continue_100: true,
            hints_103: true,
            ..self
        }
    }

    /// The server stops after this answer (gracefully: it reads on until the client leaves).
    fn is_last(self) -> bool {
        self.close || self.framing == Framing::UntilClose
    }

    fn status(self) -> u16 {
        match self.framing {
            Framing::NoContent => 204,
            Framing::NotModified => 304,
            _ => 200,
        }
    }

    /// What the client hands over for `call` when this answer arrived whole.
    fn expected(self, call: &Call) -> Got {
        let echo = call.echo();
        let bodied = call.method != Method::HEAD && self.status() == 200;
        Got::Answer {
            status: self.status(),
            echo: Some(echo.clone()),
            body: if bodied { echo.clone() } else { String::new() },
            trailer: (bodied && self.framing == Framing::Chunked).then_some(echo),
        }
    }
}

/// An answer's bytes, and where its heads end (what a cut there leaves the client).
struct Wire {
    bytes: Vec<u8>,
    /// Ends of the 1xx heads before the final one.
    interim_ends: Vec<usize>,
    /// End of the final head: the body starts here.
    head_end: usize,
}

fn wire(answer: Answer, method: &str, echo: &str) -> Wire {
    let mut bytes = Vec::new();
    let mut interim_ends = Vec::new();
    if answer.continue_100 {
        bytes.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        interim_ends.push(bytes.len());
    }
    if answer.hints_103 {
        bytes.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nlink: </s.css>; rel=preload\r\n\r\n");
        interim_ends.push(bytes.len());
    }
    let head_request = method == "HEAD";
    let reason = match answer.framing {
        Framing::NoContent => "204 No Content",
        Framing::NotModified => "304 Not Modified",
        _ => "200 OK",
    };
    let mut head = format!("HTTP/1.1 {reason}\r\nx-echo: {echo}\r\n");
    if answer.close {
        head.push_str("connection: close\r\n");
    }
    match answer.framing {
        Framing::Length | Framing::NotModified => {
            head.push_str(&format!("content-length: {}\r\n", echo.len()));
        }
        Framing::Chunked => head.push_str("transfer-encoding: chunked\r\n"),
        Framing::NoContent => head.push_str("content-length: 5\r\n"),
        Framing::UntilClose => {}
    }
    head.push_str("\r\n");
    bytes.extend_from_slice(head.as_bytes());
    let head_end = bytes.len();
    if !head_request && answer.status() == 200 {
        match answer.framing {
            Framing::Chunked => {
                for (i, chunk) in echo.as_bytes().chunks(3).enumerate() {
                    let extension = if i % 2 == 0 { ";a=1" } else { " ; q=\"x y\"" };
                    bytes.extend_from_slice(format!("{:x}{extension}\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(format!("0\r\nx-echo: {echo}\r\n\r\n").as_bytes());
            }
            _ => bytes.extend_from_slice(echo.as_bytes()),
        }
    }
    Wire {
        bytes,
        interim_ends,
        head_end,
    }
}

/// Not a response head: a status code that is not a number.
const GARBAGE: &[u8] = b"HTTP/1.1 2OO OK\r\nx-echo: none\r\n\r\n";

/// What the server sends in place of the answer it stops at.
#[derive(Clone, Copy, Debug)]
enum Instead {
    Nothing,
    /// The first n bytes of the answer.
    Cut(usize),
    Garbage,
}

/// How the server leaves when it stops.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// A FIN, then reading (and recording) whatever the client still writes until it leaves:
    /// a server that closes gracefully.
    Fin,
    /// `SO_LINGER` 0 and drop: a reset. The server waits for a release first, because a reset
    /// throws away whatever the socket has not transmitted yet and nothing else tells the
    /// server what has reached the client.
    Reset,
}

/// The server stops at request `at`: it answers the ones before it, reads this one, sends
/// `instead`, and leaves.
#[derive(Clone, Copy, Debug)]
struct Stop {
    at: usize,
    instead: Instead,
    leave: Leave,
}

/// A server's whole behaviour on one connection.
#[derive(Clone, Debug, Default)]
struct Script {
    /// Answer i answers request i; past the end, plain `Content-Length`.
    answers: Vec<Answer>,
    /// Requests to read before the first answer: the client pipelines, or the test hangs.
    wait_for: usize,
    stop: Option<Stop>,
    /// Sizes of the writes the output is cut into, in turn (each write flushed and followed by
    /// a yield to the client); empty: one write per answer.
    pieces: Vec<usize>,
    /// Each write waits for the test's release.
    paced: bool,
    /// After a `Connection: close` answer the server does not close: it reads on until the
    /// client leaves, so the client must act on the field rather than wait for the close.
    open_after_close: bool,
}

impl Script {
    fn answer(&self, i: usize) -> Answer {
        self.answers
            .get(i)
            .copied()
            .unwrap_or(Answer::of(Framing::Length))
    }
}

/// A request as the server read it off the wire.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    echo: String,
    /// Final statuses the server had written when the request's first byte arrived.
    answers_before: usize,
}

/// A scripted server listening for one connection.
struct Server {
    addr: SocketAddr,
    release: mpsc::UnboundedSender<()>,
    task: JoinHandle<Vec<Seen>>,
}

impl Server {
    async fn start(script: Script) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (release, released) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut conn = ServerConn {
                stream,
                buf: BytesMut::new(),
                seen: Vec::new(),
                answered: 0,
                started: None,
                pieces: script.pieces.clone(),
                piece: 0,
                left: 0,
                paced: script.paced,
                released,
            };
            conn.run(&script).await;
            conn.seen
        });
        Server {
            addr,
            release,
            task,
        }
    }

    /// Lets the server take its next paced write, or its reset.
    fn release(&self) {
        self.release.send(()).expect("the server is running");
    }

    /// Every request the server read, in order, once it is done.
    async fn seen(self) -> Vec<Seen> {
        within("the server's end", self.task).await.unwrap()
    }
}

struct ServerConn {
    stream: TcpStream,
    buf: BytesMut,
    seen: Vec<Seen>,
    /// Final statuses written.
    answered: usize,
    /// Final statuses written when the first byte of the request being read arrived.
    started: Option<usize>,
    pieces: Vec<usize>,
    piece: usize,
    /// Bytes left in the current piece.
    left: usize,
    paced: bool,
    released: mpsc::UnboundedReceiver<()>,
}

impl ServerConn {
    async fn run(&mut self, script: &Script) {
        while self.seen.len() < script.wait_for {
            if !self.read().await {
                return;
            }
        }
        let mut j = 0;
        loop {
            while self.seen.len() <= j {
                if !self.read().await {
                    return;
                }
            }
            let (method, echo) = (self.seen[j].method.clone(), self.seen[j].echo.clone());
            let answer = script.answer(j);
            let wire = wire(answer, &method, &echo);
            if let Some(stop) = script.stop.filter(|stop| stop.at == j) {
                match stop.instead {
                    Instead::Nothing => {}
                    Instead::Cut(n) => {
                        self.send(&wire.bytes[..n]).await.unwrap();
                        // The final status went out, if not its whole answer: from here
                        // the client may write behind a POST.
                        self.answered += usize::from(n >= wire.head_end);
                    }
                    // The client may refuse it at its first wrong byte and leave before
                    // the rest is written.
                    Instead::Garbage => self.send(GARBAGE).await.unwrap_or(()),
                }
                match stop.leave {
                    Leave::Fin => self.finish(true).await,
                    Leave::Reset => {
                        self.released
                            .recv()
                            .await
                            .expect("the test releases the reset");
                        self.stream.set_zero_linger().unwrap();
                    }
                }
                return;
            }
            self.send(&wire.bytes).await.unwrap();
            self.answered += 1;
            if answer.is_last() {
                let fin = answer.framing == Framing::UntilClose || !script.open_after_close;
                self.finish(fin).await;
                return;
            }
            j += 1;
        }
    }

    /// One read; records every request it completes. `false`: the client left.
    async fn read(&mut self) -> bool {
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let mut arrived = self.started.take().unwrap_or(self.answered);
        while let Some((method, echo)) = parse_request(&mut self.buf) {
            self.seen.push(Seen {
                method,
                echo,
                answers_before: arrived,
            });
            arrived = self.answered;
        }
        if !self.buf.is_empty() {
            self.started = Some(arrived);
        }
        true
    }

    /// Writes `bytes` in the script's pieces.
    async fn send(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let n = match self.pieces.len() {
                0 => bytes.len(),
                len => {
                    if self.left == 0 {
                        self.left = self.pieces[self.piece % len];
                        self.piece += 1;
                    }
                    let n = self.left.min(bytes.len());
                    self.left -= n;
                    n
                }
            };
            if self.paced {
                self.released
                    .recv()
                    .await
                    .expect("the test releases each piece");
            }
            self.stream.write_all(&bytes[..n]).await?;
            self.stream.flush().await?;
            tokio::task::yield_now().await;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// A FIN (when `fin`), then reading until the client leaves (which it may already have
    /// done, after garbage).
    async fn finish(&mut self, fin: bool) {
        if fin {
            let _ = self.stream.shutdown().await;
        }
        while self.read().await {}
    }
}

/// The next whole request off the front of `buf`: its method and echo.
fn parse_request(buf: &mut BytesMut) -> Option<(String, String)> {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut fields);
    let httparse::Status::Complete(head) = request.parse(buf).expect("a valid request head") else {
        return None;
    };
    assert!(
        !request
            .headers
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case("transfer-encoding")),
        "the client chunked a body of known length"
    );
    let length: usize = request
        .headers
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |f| {
            std::str::from_utf8(f.value).unwrap().parse().unwrap()
        });
    if buf.len() < head + length {
        return None;
    }
    let method = request.method.unwrap().to_owned();
    let path = request.path.unwrap().to_owned();
    let body = std::str::from_utf8(&buf[head..head + length])
        .unwrap()
        .to_owned();
    buf.advance(head + length);
    let echo = echo(&method, &path, &body);
    Some((method, echo))
}

// --- the client's side ---

type Connected = (SendRequest<Body>, JoinHandle<Result<(), client::Error>>);

async fn connect(addr: SocketAddr, builder: Builder) -> Connected {
    over(TcpStream::connect(addr).await.unwrap(), builder)
}

/// A client connection over `io`, its connection task spawned.
fn over<T>(io: T, builder: Builder) -> Connected
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = builder.handshake(io);
    (send, tokio::spawn(connection))
}

/// Calls without waiting for any answer: on this single-threaded runtime every request is
/// queued before the connection task first runs.
async fn call_all(send: &mut SendRequest<Body>, calls: &[Call]) -> Vec<ResponseFuture> {
    send_all(send, calls.iter().map(Call::request).collect()).await
}

async fn send_all(
    send: &mut SendRequest<Body>,
    requests: Vec<Request<Body>>,
) -> Vec<ResponseFuture> {
    let mut futures = Vec::new();
    for request in requests {
        send.ready().await.unwrap();
        futures.push(send.call(request));
    }
    futures
}

/// What one request got, reduced to what the tests compare.
#[derive(Debug, PartialEq)]
enum Got {
    /// A whole response: its status, `x-echo`, body, and trailer `x-echo`.
    Answer {
        status: u16,
        echo: Option<String>,
        body: String,
        trailer: Option<String>,
    },
    /// A response whose body failed partway.
    CutShort {
        status: u16,
        echo: Option<String>,
        kind: ErrorKind,
    },
    /// No response: the error's kind, and the request handed back (as its echo).
    Failed {
        kind: ErrorKind,
        returned: Option<String>,
    },
}

/// What `call` gets when the connection ends before its response begins, having been
/// written: handed back only when its body was empty.
fn not_answered(call: &Call) -> Got {
    Got::Failed {
        kind: ErrorKind::NotAnswered,
        returned: call.body.is_empty().then(|| call.echo()),
    }
}

/// What `call` gets when the connection ends before it was written: always handed back.
fn not_sent(call: &Call) -> Got {
    Got::Failed {
        kind: ErrorKind::NotSent,
        returned: Some(call.echo()),
    }
}

fn field(response: &Response<client::Incoming>) -> Option<String> {
    response
        .headers()
        .get("x-echo")
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn outcome(future: ResponseFuture) -> Got {
    let response = match within("a response", future).await {
        Ok(response) => response,
        Err(error) => {
            let kind = error.kind();
            let returned = match error.into_request::<Body>() {
                Ok(request) => {
                    let method = request.method().to_string();
                    let path = request.uri().path().to_owned();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    Some(echo(&method, &path, std::str::from_utf8(&body).unwrap()))
                }
                Err(_) => None,
            };
            return Got::Failed { kind, returned };
        }
    };
    let status = response.status().as_u16();
    let echo = field(&response);
    match within("a body", response.into_body().collect()).await {
        Ok(collected) => Got::Answer {
            status,
            echo,
            trailer: collected
                .trailers()
                .and_then(|t| t.get("x-echo"))
                .map(|v| v.to_str().unwrap().to_owned()),
            body: String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        },
        Err(error) => Got::CutShort {
            status,
            echo,
            kind: error.kind(),
        },
    }
}

async fn outcomes(futures: Vec<ResponseFuture>) -> Vec<Got> {
    let mut got = Vec::new();
    for future in futures {
        got.push(outcome(future).await);
    }
    got
}

/// Pipelines `calls` to a server playing `script` and collects every outcome, the
/// connection's end and what the server read.
async fn exchange(
    script: Script,
    builder: Builder,
    calls: &[Call],
) -> (Vec<Got>, Result<(), client::Error>, Vec<Seen>) {
    let server = Server::start(script).await;
    let (mut send, connection) = connect(server.addr, builder).await;
    let futures = call_all(&mut send, calls).await;
    drop(send);
    let got = outcomes(futures).await;
    let ended = within("the connection's end", connection).await.unwrap();
    (got, ended, server.seen().await)
}

fn echoes(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.echo.as_str()).collect()
}

fn call_echoes(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::echo).collect()
}

// --- deterministic tests, one behaviour each ---

/// A pipeline mixing GET and HEAD, answered with every framing (Content-Length; chunked with
/// extensions and a trailer; a HEAD answer with a Content-Length or chunked and no body; 204
/// with a stray Content-Length; 304 with one; close-delimited as the last): each request
/// gets exactly its own answer, because the client knows which answers have no body whatever
/// their fields say. The server reads all eight before answering, so they were pipelined.
#[tokio::test]
async fn every_framing_reaches_its_own_request() {
    let (calls, script) = every_framing();
    let (got, ended, seen) = exchange(script.clone(), Builder::new(), &calls).await;
    let expected: Vec<Got> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| script.answer(i).expected(call))
        .collect();
    assert_eq!(got, expected);
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(echoes(&seen), call_echoes(&calls));
}

/// Eight requests and a script answering them with every framing, the last close-delimited.
fn every_framing() -> (Vec<Call>, Script) {
    let methods = [
        Method::GET,
        Method::HEAD,
        Method::GET,
        Method::HEAD,
        Method::GET,
        Method::GET,
        Method::HEAD,
        Method::GET,
    ];
    let calls: Vec<Call> = methods
        .into_iter()
        .enumerate()
        .map(|(i, m)| Call::new(m, i, ""))
        .collect();
    let framings = [
        Framing::Length,
        Framing::Length,
        Framing::Chunked,
        Framing::Chunked,
        Framing::NoContent,
        Framing::NotModified,
        Framing::NotModified,
        Framing::UntilClose,
    ];
    let script = Script {
        answers: framings.into_iter().map(Answer::of).collect(),
        wait_for: calls.len(),
        ..Script::default()
    };
    (calls, script)
}

/// `100 Continue` and `103 Early Hints` before final answers of every kind (a body, chunked,
/// a HEAD answer, 204, 304, close-delimited) are skipped: none is taken for the final answer,
/// and none shifts an answer onto the next request.
#[tokio::test]
async fn interim_answers_are_skipped_before_every_kind_of_final_answer() {
    let (calls, mut script) = every_framing();
    for (i, answer) in script.answers.iter_mut().enumerate() {
        if i % 3 != 1 {
            *answer = answer.with_1xx();
        }
    }
    let (got, ended, _) = exchange(script.clone(), Builder::new(), &calls).await;
    let expected: Vec<Got> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| script.answer(i).expected(call))
        .collect();
    assert_eq!(got, expected);
    assert!(ended.is_ok(), "{ended:?}");
}

/// The same pipeline of every framing with its 1xx, written in pieces of 1 byte, 2 bytes and
/// irregular sizes (each write flushed and followed by a yield to the client, so reads end
/// inside status lines, fields, chunk sizes, extensions, trailers and bodies): the client
/// hands over the same outcomes as when each answer arrives in one write.
#[tokio::test]
async fn output_split_at_any_points_gives_the_same_outcomes() {
    let (calls, mut script) = every_framing();
    for answer in &mut script.answers {
        *answer = answer.with_1xx();
    }
    let (whole, _, _) = exchange(script.clone(), Builder::new(), &calls).await;
    let expected: Vec<Got> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| script.answer(i).expected(call))
        .collect();
    assert_eq!(whole, expected);
    for pieces in [
        vec![1],
        vec![2],
        vec![3, 1, 4, 1, 5, 9, 2, 6, 5, 35],
        vec![17, 1],
    ] {
        let split = Script {
            pieces: pieces.clone(),
            ..script.clone()
        };
        let (got, ended, _) = exchange(split, Builder::new(), &calls).await;
        assert_eq!(got, expected, "pieces {pieces:?}");
        assert!(ended.is_ok(), "{ended:?}");
    }
}

/// The server answers three of six pipelined requests and closes (a FIN, having read all
/// six): the three get their own answers, the other three fail `NotAnswered` with the
/// original request handed back, and the connection reports why it ended.
#[tokio::test]
async fn a_close_after_k_answers_fails_the_rest_not_answered_with_their_requests() {
    let calls = gets(6);
    let script = Script {
        wait_for: 6,
        stop: Some(Stop {
            at: 3,
            instead: Instead::Nothing,
            leave: Leave::Fin,
        }),
        ..Script::default()
    };
    let (got, ended, seen) = exchange(script.clone(), Builder::new(), &calls).await;
    let expected: Vec<Got> = calls
        .iter()
        .enumerate()
        .map(|(i, call)| {
            if i < 3 {
                script.answer(i).expected(call)
            } else {
                not_answered(call)
            }
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::NotAnswered);
    assert_eq!(echoes(&seen), call_echoes(&calls));
}

/// Under `pipeline_unsafe`, requests with bodies are pipelined too; when the server closes
/// after the first answer, every request behind fails `NotAnswered`, and comes back only when
/// its body was empty (an empty POST and a GET do; a POST whose body was sent does not: it
/// cannot be sent again as it was).
#[tokio::test]
async fn unanswered_requests_come_back_only_when_their_body_was_empty() {
    let calls = vec![
        Call::new(Method::GET, 0, ""),
        Call::new(Method::POST, 1, "ab"),
        Call::new(Method::POST, 2, ""),
        Call::new(Method::GET, 3, ""),
    ];
    let script = Script {
        wait_for: 4,
        stop: Some(Stop {
            at: 1,
            instead: Instead::Nothing,
            leave: Leave::Fin,
        }),
        ..Script::default()
    };
    let builder = Builder::new().pipeline_unsafe(true);
    let (got, _, seen) = exchange(script.clone(), builder, &calls).await;
    let expected = vec![
        script.answer(0).expected(&calls[0]),
        Got::Failed {
            kind: ErrorKind::NotAnswered,
            returned: None,
        },
        Got::Failed {
            kind: ErrorKind::NotAnswered,
            returned: Some("POST /r2".to_owned()),
        },
        Got::Failed {
            kind: ErrorKind::NotAnswered,
            returned: Some("GET /r3".to_owned()),
        },
    ];
    assert_eq!(got, expected);
    assert_eq!(echoes(&seen), call_echoes(&calls));
}

/// `Connection: close` on the second of four pipelined answers: the first two are answered
/// and the two written behind fail `NotAnswered` with their requests, whether the server then
/// closes or keeps the connection open (reading until the client leaves): the client acts on
/// the field itself instead of waiting for a close that may never come.
#[tokio::test]
async fn connection_close_mid_pipeline_fails_the_requests_behind_as_not_answered() {
    let calls = gets(4);
    let mut answers = vec![Answer::of(Framing::Length); 4];
    answers[1].close = true;
    for open_after_close in [false, true] {
        let script = Script {
            answers: answers.clone(),
            wait_for: 4,
            open_after_close,
            ..Script::default()
        };
        let (got, ended, seen) = exchange(script.clone(), Builder::new(), &calls).await;
        let expected = vec![
            script.answer(0).expected(&calls[0]),
            script.answer(1).expected(&calls[1]),
            not_answered(&calls[2]),
            not_answered(&calls[3]),
        ];
        assert_eq!(got, expected, "open after close: {open_after_close}");
        assert_eq!(ended.unwrap_err().kind(), ErrorKind::NotAnswered);
        assert_eq!(echoes(&seen), call_echoes(&calls));
    }
}

/// A request carrying `Connection: close` is the last one written: the two queued behind it
/// fail `NotSent` with their requests, and the server, which answers without closing and
/// reads until the client leaves, never sees them; the client leaves on its own once the
/// closing request's answer is in.
#[tokio::test]
async fn a_request_asking_to_close_is_the_last_one_written() {
    let calls = gets(4);
    let server = Server::start(Script::default()).await;
    let (mut send, connection) = connect(server.addr, Builder::new()).await;
    let mut requests: Vec<Request<Body>> = calls.iter().map(Call::request).collect();
    requests[1]
        .headers_mut()
        .insert(http::header::CONNECTION, "close".parse().unwrap());
    let futures = send_all(&mut send, requests).await;
    drop(send);
    let expected = vec![
        Answer::of(Framing::Length).expected(&calls[0]),
        Answer::of(Framing::Length).expected(&calls[1]),
        not_sent(&calls[2]),
        not_sent(&calls[3]),
    ];
    assert_eq!(outcomes(futures).await, expected);
    assert!(within("the connection's end", connection)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(echoes(&server.seen().await), ["GET /r0", "GET /r1"]);
}

/// A POST queued behind a GET waits for the GET's answer (RFC 9112 §9.3.2); that answer says
/// `Connection: close`, so the POST and the GET queued behind it are never written: both
/// fail `NotSent` with their requests (the POST's body included), and the server, reading
/// until the client leaves, saw only the first GET.
#[tokio::test]
async fn a_close_before_a_held_post_leaves_it_and_what_follows_not_sent() {
    let calls = vec![
        Call::new(Method::GET, 0, ""),
        Call::new(Method::POST, 1, "xy"),
        Call::new(Method::GET, 2, ""),
    ];
    let mut first = Answer::of(Framing::Length);
    first.close = true;
    let script = Script {
        answers: vec![first],
        ..Script::default()
    };
    let (got, ended, seen) = exchange(script.clone(), Builder::new(), &calls).await;
    let expected = vec![
        script.answer(0).expected(&calls[0]),
        not_sent(&calls[1]),
        not_sent(&calls[2]),
    ];
    assert_eq!(got, expected);
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(echoes(&seen), ["GET /r0"]);
}

/// Garbage where the third answer should be: the two before it are answered, the third fails
/// `Protocol`, the one behind it `NotAnswered` with its request.
#[tokio::test]
async fn garbage_mid_pipeline_is_a_protocol_error_for_its_request_only() {
    let calls = gets(4);
    let script = Script {
        wait_for: 4,
        stop: Some(Stop {
            at: 2,
            instead: Instead::Garbage,
            leave: Leave::Fin,
        }),
        ..Script::default()
    };
    let (got, ended, _) = exchange(script.clone(), Builder::new(), &calls).await;
    assert_eq!(
        got[..2],
        [0, 1].map(|i| script.answer(i).expected(&calls[i]))
    );
    assert!(
        matches!(
            got[2],
            Got::Failed {
                kind: ErrorKind::Protocol,
                ..
            }
        ),
        "{:?}",
        got[2]
    );
    assert_eq!(got[3], not_answered(&calls[3]));
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::Protocol);
}

/// Answers cut by a close at each kind of place: inside a head (the response is `Incomplete`),
/// right after a 1xx (no response began: `NotAnswered`), inside a Content-Length body and
/// inside a chunked body (the head is handed over, the body fails `Incomplete`), inside a
/// close-delimited body (the close is its end: the body is what arrived). In every case the
/// request behind fails `NotAnswered` with its request.
#[tokio::test]
async fn a_close_partway_through_an_answer_fails_that_answer_by_where_it_was_cut() {
    let calls = gets(2);
    let echo0 = calls[0].echo();
    let at = |framing: Framing| wire(Answer::of(framing).with_1xx(), "GET", &echo0);
    let cuts = [
        (Framing::Length, at(Framing::Length).head_end - 3),
        (Framing::Length, at(Framing::Length).interim_ends[1]),
        (Framing::Length, at(Framing::Length).head_end + 2),
        (Framing::Chunked, at(Framing::Chunked).bytes.len() - 1),
        (Framing::UntilClose, at(Framing::UntilClose).head_end + 3),
    ];
    let mut got = Vec::new();
    for (framing, cut) in cuts {
        let script = Script {
            answers: vec![Answer::of(framing).with_1xx()],
            wait_for: 2,
            stop: Some(Stop {
                at: 0,
                instead: Instead::Cut(cut),
                leave: Leave::Fin,
            }),
            ..Script::default()
        };
        let (outcomes, _, _) = exchange(script, Builder::new(), &calls).await;
        assert_eq!(
            outcomes[1],
            not_answered(&calls[1]),
            "{framing:?} cut at {cut}"
        );
        got.push(outcomes.into_iter().next().unwrap());
    }
    let head_cut = got.remove(0);
    assert!(
        matches!(
            head_cut,
            Got::Failed {
                kind: ErrorKind::Incomplete,
                ..
            }
        ),
        "{head_cut:?}"
    );
    let cut_short = |kind| Got::CutShort {
        status: 200,
        echo: Some(echo0.clone()),
        kind,
    };
    let expected = vec![
        not_answered(&calls[0]),
        cut_short(ErrorKind::Incomplete),
        cut_short(ErrorKind::Incomplete),
        Got::Answer {
            status: 200,
            echo: Some(echo0.clone()),
            body: echo0[..3].to_owned(),
            trailer: None,
        },
    ];
    assert_eq!(got, expected);
}

/// A reset (`SO_LINGER` 0) after two of four pipelined answers, released once the client has
/// both: they stay answered, the two behind fail `NotAnswered` with their requests, and the
/// connection ends with the I/O error.
#[tokio::test]
async fn a_reset_between_answers_fails_the_rest_not_answered() {
    let calls = gets(4);
    let script = Script {
        wait_for: 4,
        stop: Some(Stop {
            at: 2,
            instead: Instead::Nothing,
            leave: Leave::Reset,
        }),
        ..Script::default()
    };
    let server = Server::start(script.clone()).await;
    let (mut send, connection) = connect(server.addr, Builder::new()).await;
    let mut futures = call_all(&mut send, &calls).await.into_iter();
    drop(send);
    for (i, call) in calls.iter().enumerate().take(2) {
        let got = outcome(futures.next().unwrap()).await;
        assert_eq!(got, script.answer(i).expected(call));
    }
    server.release();
    assert_eq!(
        outcomes(futures.collect()).await,
        [2, 3].map(|i| not_answered(&calls[i]))
    );
    let ended = within("the connection's end", connection).await.unwrap();
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(echoes(&server.seen().await), call_echoes(&calls));
}

/// A reset in the middle of a body the client is streaming: the body fails with the I/O
/// error after the bytes that arrived, and the request behind fails `NotAnswered`.
#[tokio::test]
async fn a_reset_mid_body_fails_that_body_and_the_rest_not_answered() {
    let calls = gets(2);
    let echo0 = calls[0].echo();
    let head_end = wire(Answer::of(Framing::Length), "GET", &echo0).head_end;
    let script = Script {
        wait_for: 2,
        stop: Some(Stop {
            at: 0,
            instead: Instead::Cut(head_end + 2),
            leave: Leave::Reset,
        }),
        ..Script::default()
    };
    let server = Server::start(script).await;
    let (mut send, connection) = connect(server.addr, Builder::new()).await;
    let mut futures = call_all(&mut send, &calls).await.into_iter();
    drop(send);
    let response = within("the head", futures.next().unwrap()).await.unwrap();
    assert_eq!(field(&response).as_deref(), Some(echo0.as_str()));
    let mut body = response.into_body();
    let mut arrived = Vec::new();
    while arrived.len() < 2 {
        let frame = within("a frame", body.frame()).await.unwrap().unwrap();
        arrived.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(arrived, &echo0.as_bytes()[..2]);
    server.release();
    let error = within("the body's end", body.frame())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io, "{error}");
    assert_eq!(
        outcome(futures.next().unwrap()).await,
        not_answered(&calls[1])
    );
    let ended = within("the connection's end", connection).await.unwrap();
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::Io);
}

/// A reset after part of a response head: that response had begun, so its request is not
/// "not answered" (ErrorKind::NotAnswered: "the connection ended before its response
/// began"); it fails as cut short (`Incomplete`) or with the I/O error, as it does when a
/// FIN cuts the head instead.
#[tokio::test]
async fn a_reset_mid_head_fails_that_response_as_begun() {
    let calls = gets(2);
    let script = Script {
        wait_for: 2,
        stop: Some(Stop {
            at: 0,
            instead: Instead::Cut(10),
            leave: Leave::Reset,
        }),
        ..Script::default()
    };
    let server = Server::start(script).await;
    let (mut send, connection) = connect(server.addr, Builder::new()).await;
    let futures = call_all(&mut send, &calls).await;
    drop(send);
    server.release();
    let got = outcomes(futures).await;
    assert!(
        matches!(
            got[0],
            Got::Failed {
                kind: ErrorKind::Incomplete | ErrorKind::Io,
                ..
            }
        ),
        "{:?}",
        got[0]
    );
    assert_eq!(got[1], not_answered(&calls[1]));
    within("the connection's end", connection)
        .await
        .unwrap()
        .unwrap_err();
}

/// A slow server: its output is released one piece at a time by the test (part of a head,
/// the rest of it, then the body in two pieces, then the next answer). The second
/// request was on the wire before any answer (the server read both first); the first
/// response is handed over as soon as its head is complete, before any of its body exists;
/// each body piece reaches the caller as a frame before the next is released; and the second
/// answer goes to the second request.
#[tokio::test]
async fn a_slow_answer_streams_piece_by_piece_and_the_next_waits_its_turn() {
    let calls = gets(2);
    let echo0 = calls[0].echo();
    let first = wire(Answer::of(Framing::Length), "GET", &echo0);
    let second = wire(Answer::of(Framing::Length), "GET", &calls[1].echo());
    assert_eq!(first.bytes.len() - first.head_end, 7);
    let script = Script {
        wait_for: 2,
        pieces: vec![10, first.head_end - 10, 3, 4, second.bytes.len()],
        paced: true,
        ..Script::default()
    };
    let server = Server::start(script.clone()).await;
    let (mut send, connection) = connect(server.addr, Builder::new()).await;
    let mut futures = call_all(&mut send, &calls).await.into_iter();
    drop(send);
    server.release();
    server.release();
    let response = within("the first head", futures.next().unwrap())
        .await
        .unwrap();
    assert_eq!(field(&response).as_deref(), Some(echo0.as_str()));
    let mut body = response.into_body();
    for piece in [&echo0[..3], &echo0[3..]] {
        server.release();
        let frame = within("a frame", body.frame()).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), piece);
    }
    assert!(within("the body's end", body.frame()).await.is_none());
    server.release();
    let got = outcome(futures.next().unwrap()).await;
    assert_eq!(got, script.answer(1).expected(&calls[1]));
    assert!(within("the connection's end", connection)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(echoes(&server.seen().await), call_echoes(&calls));
}

// --- the property ---

/// How a generated server stops at request `stop_at`.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Fin,
    /// Part of the answer, cut at this kind of place, then a FIN.
    CutThenFin(Place),
    GarbageThenFin,
    /// A reset, released once the client has every answer before it.
    Reset,
    /// Garbage, then a reset released once the client has refused the garbage.
    GarbageThenReset,
}

/// Where a generated cut falls within the answer it cuts (the case's `cut` picks the byte).
#[derive(Clone, Copy, Debug)]
enum Place {
    /// Before the answer, or right after one of its 1xx heads: nothing partial is buffered.
    Boundary,
    /// Before the final head's end.
    Head,
    /// Inside the body (inside the head when the answer has no body).
    Body,
}

/// One generated run: the pipeline, and the server's behaviour.
#[derive(Clone, Debug)]
struct Case {
    calls: Vec<Call>,
    /// Answer i for request i (20 of them: the most requests a case has).
    answers: Vec<Answer>,
    pipeline_unsafe: bool,
    /// At or past the number of requests: the server answers them all.
    stop_at: usize,
    ending: Ending,
    cut: prop::sample::Index,
    pieces: Vec<usize>,
    open_after_close: bool,
}

/// What the property expects of one request's outcome.
enum Expect {
    Exactly(Got),
    /// A failed response of this kind (`Incomplete`, `Protocol`), whatever is handed back.
    Kind(ErrorKind),
    /// Behind where the server stopped: `NotAnswered` (with the request when its body was
    /// empty) if the client wrote it, `NotSent` (with the request) if not.
    Behind,
}

impl Case {
    fn stops(&self) -> bool {
        self.stop_at < self.calls.len()
    }

    fn script(&self) -> Script {
        let n = self.calls.len();
        let all_written_at_once =
            self.pipeline_unsafe || self.calls.iter().all(|c| c.method != Method::POST);
        let stop = self.stops().then(|| {
            let (instead, leave) = match self.ending {
                Ending::Fin => (Instead::Nothing, Leave::Fin),
                Ending::CutThenFin(place) => (Instead::Cut(self.cut_bytes(place)), Leave::Fin),
                Ending::GarbageThenFin => (Instead::Garbage, Leave::Fin),
                Ending::Reset => (Instead::Nothing, Leave::Reset),
                Ending::GarbageThenReset => (Instead::Garbage, Leave::Reset),
            };
            Stop {
                at: self.stop_at,
                instead,
                leave,
            }
        });
        Script {
            answers: self.answers.clone(),
            // Only when the client writes them all without waiting for an answer.
            wait_for: if all_written_at_once { n } else { 0 },
            stop,
            pieces: self.pieces.clone(),
            paced: false,
            open_after_close: self.open_after_close,
        }
    }

    /// How many bytes of the stopping answer a cut at `place` sends.
    fn cut_bytes(&self, place: Place) -> usize {
        let wire = self.wire_at(self.stop_at);
        let body = wire.bytes.len() - wire.head_end;
        match place {
            Place::Boundary => {
                let boundaries: Vec<usize> = std::iter::once(0).chain(wire.interim_ends).collect();
                boundaries[self.cut.index(boundaries.len())]
            }
            Place::Body if body > 0 => wire.head_end + self.cut.index(body),
            Place::Head | Place::Body => self.cut.index(wire.head_end),
        }
    }

    fn wire_at(&self, i: usize) -> Wire {
        let call = &self.calls[i];
        wire(self.answers[i], call.method.as_str(), &call.echo())
    }

    /// The first answer the server stops after gracefully (close-delimited or
    /// `Connection: close`), if it gets there.
    fn graceful_last(&self) -> Option<usize> {
        (0..self.calls.len()).find(|&i| self.answers[i].is_last())
    }

    /// Whether the server reaches its scripted stop (no graceful last answer before it).
    fn reaches_stop(&self) -> bool {
        self.stops() && self.graceful_last().is_none_or(|g| self.stop_at <= g)
    }

    /// Answers the server sends whole.
    fn answered(&self) -> usize {
        if self.reaches_stop() {
            self.stop_at
        } else {
            self.graceful_last().map_or(self.calls.len(), |g| g + 1)
        }
    }

    /// Whether the server reads until the client leaves, so that it saw every request the
    /// client wrote.
    fn drained(&self) -> bool {
        !self.reaches_stop() || !matches!(self.ending, Ending::Reset | Ending::GarbageThenReset)
    }

    fn expected(&self, script: &Script) -> Vec<Expect> {
        let answered = self.answered();
        self.calls
            .iter()
            .enumerate()
            .map(|(i, call)| {
                if i < answered {
                    return Expect::Exactly(self.answers[i].expected(call));
                }
                if i > answered || !self.reaches_stop() {
                    return Expect::Behind;
                }
                match script.stop.map(|s| s.instead) {
                    Some(Instead::Garbage) => Expect::Kind(ErrorKind::Protocol),
                    Some(Instead::Cut(n)) => self.cut_at(i, n),
                    _ => Expect::Exactly(not_answered(call)),
                }
            })
            .collect()
    }

    /// What request `i` gets when its answer is cut after `n` bytes by a FIN.
    fn cut_at(&self, i: usize, n: usize) -> Expect {
        let call = &self.calls[i];
        let wire = self.wire_at(i);
        if n == 0 || wire.interim_ends.contains(&n) {
            return Expect::Exactly(not_answered(call));
        }
        if n < wire.head_end {
            return Expect::Kind(ErrorKind::Incomplete);
        }
        let echo = call.echo();
        Expect::Exactly(match self.answers[i].framing {
            Framing::UntilClose => Got::Answer {
                status: 200,
                echo: Some(echo.clone()),
                body: echo[..n - wire.head_end].to_owned(),
                trailer: None,
            },
            _ => Got::CutShort {
                status: 200,
                echo: Some(echo),
                kind: ErrorKind::Incomplete,
            },
        })
    }

    /// Before awaiting request `i`'s outcome (`false`) or after (`true`), whether to release
    /// the server's reset.
    fn releases_reset(&self, i: usize, after: bool) -> bool {
        self.reaches_stop()
            && i == self.stop_at
            && match self.ending {
                Ending::Reset => !after,
                Ending::GarbageThenReset => after,
                _ => false,
            }
    }
}

async fn run_case(case: &Case) {
    let script = case.script();
    let server = Server::start(script.clone()).await;
    let builder = Builder::new()
        .pipeline_depth(32)
        .pipeline_unsafe(case.pipeline_unsafe);
    let (mut send, connection) = connect(server.addr, builder).await;
    let futures = call_all(&mut send, &case.calls).await;
    drop(send);
    let mut got = Vec::new();
    for (i, future) in futures.into_iter().enumerate() {
        if case.releases_reset(i, false) {
            server.release();
        }
        got.push(outcome(future).await);
        if case.releases_reset(i, true) {
            server.release();
        }
    }
    // Awaited so that a connection that never ends fails; how it ended is in the outcomes.
    let _ = within("the connection's end", connection).await.unwrap();
    let seen = server.seen().await;
    check(case, &script, &got, &seen);
}

fn check(case: &Case, script: &Script, got: &[Got], seen: &[Seen]) {
    // The server read the client's requests in call order, and nothing else.
    assert!(seen.len() <= case.calls.len());
    for (s, call) in seen.iter().zip(&case.calls) {
        assert_eq!(s.echo, call.echo(), "written out of order");
    }
    // RFC 9112 §9.3.2: a non-idempotent request goes out only when every answer before it has
    // arrived, and nothing goes out behind it until its final status has.
    if !case.pipeline_unsafe {
        let mut behind_post = 0;
        for (j, s) in seen.iter().enumerate() {
            let needed = if s.method == "POST" { j } else { behind_post };
            assert!(
                s.answers_before >= needed,
                "request {j} ({}) was written with {} answers out, needing {needed}",
                s.echo,
                s.answers_before
            );
            if s.method == "POST" {
                behind_post = j + 1;
            }
        }
    }
    for (i, (expect, got)) in case.expected(script).into_iter().zip(got).enumerate() {
        let call = &case.calls[i];
        match expect {
            Expect::Exactly(expected) => assert_eq!(got, &expected, "request {i}"),
            Expect::Kind(kind) => assert!(
                matches!(got, Got::Failed { kind: k, .. } if *k == kind),
                "request {i}: {got:?}, expected {kind:?}"
            ),
            Expect::Behind => {
                let written = i < seen.len();
                if written || case.drained() {
                    // The server saw it exactly when the client says it was written.
                    let expected = if written {
                        not_answered(call)
                    } else {
                        not_sent(call)
                    };
                    assert_eq!(got, &expected, "request {i}");
                } else {
                    assert!(
                        *got == not_answered(call) || *got == not_sent(call),
                        "request {i}: {got:?}"
                    );
                }
            }
        }
    }
}

fn call() -> impl Strategy<Value = (Method, String)> {
    prop_oneof![
        5 => Just((Method::GET, String::new())),
        2 => Just((Method::HEAD, String::new())),
        1 => prop::collection::vec(b'a'..=b'z', 0..6)
            .prop_map(|body| (Method::POST, String::from_utf8(body).unwrap())),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    let framing = prop_oneof![
        6 => Just(Framing::Length),
        5 => Just(Framing::Chunked),
        1 => Just(Framing::NoContent),
        1 => Just(Framing::NotModified),
        1 => Just(Framing::UntilClose),
    ];
    (
        framing,
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(framing, continue_100, hints_103, close)| Answer {
            framing,
            continue_100,
            hints_103,
            close,
        })
}

fn case() -> impl Strategy<Value = Case> {
    let ending = prop_oneof![
        Just(Ending::Fin),
        prop_oneof![Just(Place::Boundary), Just(Place::Head), Just(Place::Body)]
            .prop_map(Ending::CutThenFin),
        Just(Ending::GarbageThenFin),
        Just(Ending::Reset),
        Just(Ending::GarbageThenReset),
    ];
    (
        prop::collection::vec(call(), 1..=20),
        prop::collection::vec(answer(), 20),
        any::<bool>(),
        0usize..22,
        ending,
        any::<prop::sample::Index>(),
        prop::collection::vec(prop_oneof![1usize..=3, 1usize..=40, 40usize..=700], 0..8),
        any::<bool>(),
    )
        .prop_map(
            |(calls, answers, pipeline_unsafe, stop_at, ending, cut, pieces, open_after_close)| {
                Case {
                    calls: calls
                        .into_iter()
                        .enumerate()
                        .map(|(i, (method, body))| Call::new(method, i, &body))
                        .collect(),
                    answers,
                    pipeline_unsafe,
                    stop_at,
                    ending,
                    cut,
                    pieces,
                    open_after_close,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // A hang costs `common::HANG` per run: shrink for a minute at most, then report.
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    /// Random pipelines (1 to 20 requests: GET, HEAD, POST with a small body, under the RFC's
    /// rules and under `pipeline_unsafe`) against random server behaviour (close after k, a
    /// cut answer, garbage, a reset; split output; 1xx; every framing per answer;
    /// `Connection: close`): every request gets exactly its own answer or the error its place
    /// calls for (the answered prefix, then the cut request `Incomplete` / `Protocol` /
    /// `NotAnswered`, then `NotAnswered` for the requests the server saw and, when it read
    /// until the client left, `NotSent` exactly for the others), the client never writes a
    /// request the RFC says to hold back, and nothing hangs.
    #[test]
    fn every_request_gets_its_own_answer_or_the_error_its_place_calls_for(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(within("the case", run_case(&case)));
    }
}

// --- hyper's HTTP/1.1 server ---

/// hyper's server, configured by `http1`, on one accepted connection, answering each request
/// with its path.
async fn hyper_server(http1: http1::Builder) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let service =
            hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                let path = request.uri().path().to_owned();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(path))))
            });
        http1
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .await
            .unwrap();
    });
    (addr, task)
}

/// A response whose body is `body`, and nothing else the tests look at (no `x-echo`, no
/// trailers): what hyper and nginx answer here.
fn plain(body: &str) -> Got {
    Got::Answer {
        status: 200,
        echo: None,
        body: body.to_owned(),
        trailer: None,
    }
}

/// 100 pipelined GETs on one connection to hyper's HTTP/1.1 server (which flushes its
/// pipelined answers together): each gets its own answer, in order.
#[tokio::test]
async fn hyper_answers_a_hundred_pipelined_requests_each_to_its_own() {
    let mut http1 = http1::Builder::new();
    http1.pipeline_flush(true);
    let (addr, server) = hyper_server(http1).await;
    let (mut send, connection) = connect(addr, Builder::new().pipeline_depth(100)).await;
    let calls = gets(100);
    let futures = call_all(&mut send, &calls).await;
    drop(send);
    let got = outcomes(futures).await;
    let expected: Vec<Got> = calls.iter().map(|call| plain(&call.path)).collect();
    assert_eq!(got, expected);
    assert!(within("the connection's end", connection)
        .await
        .unwrap()
        .is_ok());
    within("hyper's end", server).await.unwrap();
}

/// hyper with keep-alive off answers the first of ten pipelined requests (`Connection:
/// close`) and closes: the nine behind fail `NotAnswered` with their requests, none is given
/// the first one's answer. (Without `pipeline_flush`: with it, hyper 1.x closes without
/// writing even the first answer when more requests are pipelined behind it; the client then
/// fails all ten `NotAnswered`, but that is hyper's behaviour to test, not ours.)
#[tokio::test]
async fn hyper_closing_a_keep_alive_connection_leaves_the_rest_not_answered() {
    let mut http1 = http1::Builder::new();
    http1.keep_alive(false);
    let (addr, server) = hyper_server(http1).await;
    let (mut send, connection) = connect(addr, Builder::new()).await;
    let calls = gets(10);
    let futures = call_all(&mut send, &calls).await;
    drop(send);
    let got = outcomes(futures).await;
    let mut expected = vec![plain(&calls[0].path)];
    expected.extend(calls[1..].iter().map(not_answered));
    assert_eq!(got, expected);
    let ended = within("the connection's end", connection).await.unwrap();
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::NotAnswered);
    within("hyper's end", server).await.unwrap();
}

// --- nginx ---

/// nginx as a child process in a directory of its own; killed, and the directory removed,
/// when dropped (also when the test fails). It listens on a Unix socket in that directory,
/// not on a TCP port found free beforehand: another test binding port 0 in the meantime could
/// be handed that port, and take nginx's connections (or nginx its).
struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
    socket: std::path::PathBuf,
}

impl Nginx {
    /// Starts nginx answering every GET with its target (`return 200 $request_uri`), and
    /// waits until it accepts connections.
    async fn start() -> Nginx {
        let dir = std::env::temp_dir().join(format!("pipelined-nginx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("nginx.sock");
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
             access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\nserver {{\nlisten unix:{d}/nginx.sock;\n\
             location / {{ return 200 $request_uri; }}\n}}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let child = std::process::Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx { child, dir, socket };
        let deadline = tokio::time::Instant::now() + common::HANG;
        while tokio::net::UnixStream::connect(&nginx.socket)
            .await
            .is_err()
        {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx never listened"
            );
            // Polls for the socket to open; what the test asserts does not depend on timing.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 50 pipelined GETs on one connection to nginx (over a Unix socket): each answer names its
/// own request. CI installs nginx (`.ci/run`); elsewhere the test says it was skipped rather
/// than pretend.
#[tokio::test]
async fn nginx_answers_fifty_pipelined_requests_each_to_its_own() {
    if std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have nginx (.ci/run installs it)"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    }
    let nginx = Nginx::start().await;
    let unix = tokio::net::UnixStream::connect(&nginx.socket)
        .await
        .unwrap();
    let (mut send, connection) = over(unix, Builder::new().pipeline_depth(50));
    let calls = gets(50);
    let futures = call_all(&mut send, &calls).await;
    drop(send);
    let expected: Vec<Got> = calls.iter().map(|call| plain(&call.path)).collect();
    assert_eq!(outcomes(futures).await, expected);
    assert!(within("the connection's end", connection)
        .await
        .unwrap()
        .is_ok());
    drop(nginx);
}
