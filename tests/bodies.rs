//! Request bodies on a pipelined connection (docs/ARCHITECTURE.md invariant 6: a body is framed exactly
//! before the next request is parsed, so a body is never read as a request).
//!
//! Proves that:
//! - `Content-Length` and chunked POSTs interleaved with GETs in one write are all answered, in
//!   order, each with its own body (streamed back by an echo handler or collected);
//! - chunk extensions are skipped and trailers reach the handler;
//! - a handler that drops its body unread (at once, or after a while, with a body larger than
//!   the body channel) leaves the connection in sync: the requests behind it — even a request
//!   hidden inside the dropped body — are parsed at the right byte;
//! - a body that arrives in one- and few-byte writes is reassembled exactly, and is streamed to
//!   the handler as it arrives (lock-step echo: each byte comes back before the next is sent);
//! - a 1 MiB body is echoed byte for byte while the client writes and reads concurrently, with
//!   `Content-Length` and chunked framing;
//! - `Content-Length` over `max_body_bytes` is `413` and closes; a chunked body growing past it
//!   ends the handler's body with `BodyError::TooLarge` and closes; a body exactly at the limit
//!   is fine;
//! - a malformed chunk (size not hex, data not followed by CRLF) mid-pipeline keeps earlier
//!   responses intact, gives the handler `BodyError::Malformed`, processes nothing after it and
//!   closes (also when the handler dropped the body); a streamed echo of such a body is cut
//!   short, never passed off as complete; EOF inside a body is `BodyError::Incomplete`.

mod common;

use std::sync::{Arc, Mutex};

use common::{get, serve, serve_with, with_body, Client, RawResponse, HANG};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use pipelined::{post, Body, BodyError, Config, ResponseBody, Router};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What the handlers saw: GET paths in order, and every body error a collecting handler got.
#[derive(Clone, Default)]
struct Seen {
    paths: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<BodyError>>>,
}

impl Seen {
    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }

    fn errors(&self) -> Vec<BodyError> {
        self.errors.lock().unwrap().clone()
    }
}

/// - `GET <any path>`: answers with the path, and logs it;
/// - `POST /echo`: streams the body straight back (`Response::new(req.into_body())`);
/// - `POST /collect`: collects the body and answers with it, its trailers in `x-trailers`
///   (`name=value;…`); a body error is logged and answered with (`413`/`400`);
/// - `POST /ignore`: drops the body unread and answers at once;
/// - `POST /ignore-later`: holds the body unread across a yield, then drops it.
fn app(seen: &Seen) -> Router {
    let paths = Arc::clone(&seen.paths);
    let errors = Arc::clone(&seen.errors);
    Router::new()
        .route(
            "/echo",
            post(|req: Request<Body>| async move { Response::new(req.into_body()) }),
        )
        .route(
            "/collect",
            post(move |req: Request<Body>| {
                let errors = Arc::clone(&errors);
                async move {
                    collect(req).await.inspect_err(|e| {
                        errors.lock().unwrap().push(*e);
                    })
                }
            }),
        )
        .route("/ignore", post(|_req: Request<Body>| async { "ignored" }))
        .route(
            "/ignore-later",
            post(|req: Request<Body>| async move {
                tokio::task::yield_now().await;
                drop(req);
                "ignored later"
            }),
        )
        .fallback(move |req: Request<Body>| {
            let paths = Arc::clone(&paths);
            async move {
                let path = req.uri().path().to_owned();
                paths.lock().unwrap().push(path.clone());
                path
            }
        })
}

async fn collect(req: Request<Body>) -> Result<Response<ResponseBody>, BodyError> {
    let collected = req.into_body().collect().await?;
    let trailers = collected.trailers().map(|map| {
        map.iter()
            .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(";")
    });
    let mut res = Response::new(ResponseBody::from(collected.to_bytes()));
    if let Some(trailers) = trailers {
        res.headers_mut()
            .insert("x-trailers", HeaderValue::from_str(&trailers).unwrap());
    }
    Ok(res)
}

/// `method path` with a chunked body made of `chunks` and the given trailer lines.
fn chunked(method: &str, path: &str, chunks: &[&[u8]], trailers: &str) -> Vec<u8> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for chunk in chunks {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("0\r\n{trailers}\r\n").as_bytes());
    req
}

/// `n` bytes that do not repeat with any short period (so a reordered or dropped piece shows).
fn pattern(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn assert_ok(res: &RawResponse, body: &[u8]) {
    assert_eq!(res.status, 200, "body {:?}", res.text());
    assert_eq!(res.body, body, "got {:?}", res.text());
}

/// Awaits `fut`, failing the test instead of hanging.
async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

#[tokio::test]
async fn content_length_and_chunked_posts_interleaved_with_gets_in_one_write() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;

    let mut batch = get("/one").into_bytes();
    batch.extend(with_body("POST", "/echo", b"hello, echo"));
    batch.extend(get("/two").as_bytes());
    batch.extend(chunked(
        "POST",
        "/echo",
        &[b"abc", b"defgh", b"\r\n0\r\n"],
        "",
    ));
    batch.extend(with_body("POST", "/collect", b"collected by length"));
    batch.extend(get("/three").as_bytes());
    batch.extend(chunked("POST", "/collect", &[b"chunk-a|", b"chunk-b"], ""));
    batch.extend(with_body("POST", "/echo", b""));
    batch.extend(get("/four").as_bytes());
    client.send(&batch).await;

    let r = client.responses(9).await;
    assert_ok(&r[0], b"/one");
    assert_ok(&r[1], b"hello, echo");
    assert_eq!(r[1].header("content-length"), Some("11"));
    assert_ok(&r[2], b"/two");
    assert_ok(&r[3], b"abcdefgh\r\n0\r\n");
    assert_eq!(r[3].header("transfer-encoding"), Some("chunked"));
    assert_ok(&r[4], b"collected by length");
    assert_ok(&r[5], b"/three");
    assert_ok(&r[6], b"chunk-a|chunk-b");
    assert_ok(&r[7], b"");
    assert_ok(&r[8], b"/four");
    assert!(r.iter().all(|r| !r.closes()));
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/one", "/two", "/three", "/four"]);
    assert!(seen.errors().is_empty(), "{:?}", seen.errors());
}

#[tokio::test]
async fn chunk_extensions_are_skipped_and_trailers_reach_the_handler() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = Vec::new();
    batch.extend_from_slice(
        b"POST /collect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n\
          1;a;b=\"quoted;\\\"x\"\r\n,\r\n\
          6 ; spaced = yes\r\n world\r\n\
          A;big\r\n0123456789\r\n\
          0;last=1\r\n\r\n",
    );
    batch.extend(get("/after-extensions").as_bytes());
    batch.extend(chunked(
        "POST",
        "/collect",
        &[b"with ", b"trailers"],
        "X-Checksum: abc123\r\nX-Other: two words\r\n",
    ));
    batch.extend(get("/after-trailers").as_bytes());
    client.send(&batch).await;

    let r = client.responses(4).await;
    assert_ok(&r[0], b"hello, world0123456789");
    assert_eq!(r[0].header("x-trailers"), None, "no trailers were sent");
    assert_ok(&r[1], b"/after-extensions");
    assert_ok(&r[2], b"with trailers");
    assert_eq!(
        r[2].header("x-trailers"),
        Some("x-checksum=abc123;x-other=two words")
    );
    assert_ok(&r[3], b"/after-trailers");
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/after-extensions", "/after-trailers"]);
}

/// The dropped bodies contain complete requests: if the engine lost track of a body's end, it
/// would parse and run `GET /smuggled…` (or answer 400).
#[tokio::test]
async fn a_handler_that_drops_its_body_does_not_desync_the_connection() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let hidden = get("/smuggled-cl");
    let hidden_chunked = get("/smuggled-chunked");
    // Far larger than the body channel (4 chunks) and the read buffer (8 KiB): the reader must
    // keep decoding and discarding after the handler is gone.
    let big = pattern(300 * 1024);

    let mut batch = with_body("POST", "/ignore", hidden.as_bytes());
    batch.extend(get("/after-1").as_bytes());
    batch.extend(chunked(
        "POST",
        "/ignore",
        &[hidden_chunked.as_bytes(), b"0\r\n\r\n"],
        "X-T: 1\r\n",
    ));
    batch.extend(get("/after-2").as_bytes());
    batch.extend(with_body("POST", "/ignore-later", hidden.as_bytes()));
    batch.extend(get("/after-3").as_bytes());
    batch.extend(chunked(
        "POST",
        "/ignore-later",
        &[hidden_chunked.as_bytes()],
        "",
    ));
    batch.extend(get("/after-4").as_bytes());
    batch.extend(with_body("POST", "/ignore", &big));
    batch.extend(get("/after-5").as_bytes());
    let chunks: Vec<&[u8]> = big.chunks(7000).collect();
    batch.extend(chunked("POST", "/ignore-later", &chunks, ""));
    batch.extend(get("/after-6").as_bytes());
    // The server drains the big bodies without writing much back, so one write cannot block.
    guard("writing the batch", client.send(&batch)).await;

    let r = client.responses(12).await;
    for (i, res) in r.iter().enumerate() {
        let want: &[u8] = match i {
            0 | 2 | 8 => b"ignored",
            4 | 6 | 10 => b"ignored later",
            _ => b"",
        };
        if want.is_empty() {
            assert_ok(res, format!("/after-{}", i / 2 + 1).as_bytes());
        } else {
            assert_ok(res, want);
        }
    }
    drop(client);
    server.shutdown().await;
    assert_eq!(
        seen.paths(),
        ["/after-1", "/after-2", "/after-3", "/after-4", "/after-5", "/after-6"]
    );
}

/// Reads one response head byte by byte (never past its end) from a raw stream.
async fn read_head<R: AsyncRead + Unpin>(r: &mut R) -> (u16, Vec<(String, String)>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = guard("reading a response head", r.read_u8())
            .await
            .expect("EOF inside a response head");
        head.push(byte);
    }
    let mut fields = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut fields);
    assert!(res.parse(&head).unwrap().is_complete());
    let headers = res
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    (res.code.unwrap(), headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    guard("reading echoed bytes", r.read_exact(&mut buf))
        .await
        .expect("EOF while reading echoed bytes");
    buf
}

/// Each body byte is written alone and must come back before the next one is sent: the body is
/// streamed to the handler as it arrives, and a `Content-Length` body split into 1-byte reads is
/// reassembled exactly. Then a pipelined GET proves the body's end was found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_body_in_one_byte_writes_streams_in_lock_step() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let body = b"lock-step body, one byte per write";
    client
        .send(format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ))
        .await;
    let (status, headers) = read_head(&mut client.stream).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );
    for &byte in body {
        client.send([byte]).await;
        assert_eq!(read_exact(&mut client.stream, 1).await, [byte]);
    }
    client.send(get("/after-lock-step")).await;
    assert_ok(&client.response().await, b"/after-lock-step");
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/after-lock-step"]);
}

/// The chunked variant: framing bytes (size lines, extensions, CRLFs, the last chunk) go one
/// byte per write; each data byte must come back as its own chunk before the next is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_in_one_byte_writes_streams_in_lock_step() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let (status, headers) = read_head(&mut client.stream).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    let chunks: [&[u8]; 3] = [b"abc", b"\r\n0\r\n\r\n", b"0123456789abcdefXYZ"];
    for chunk in chunks {
        for &byte in format!("{:x};ext=v\r\n", chunk.len()).as_bytes() {
            client.send([byte]).await;
            tokio::task::yield_now().await;
        }
        for &byte in chunk {
            client.send([byte]).await;
            assert_eq!(
                read_exact(&mut client.stream, 6).await,
                [b'1', b'\r', b'\n', byte, b'\r', b'\n']
            );
        }
        for &byte in b"\r\n" {
            client.send([byte]).await;
            tokio::task::yield_now().await;
        }
    }
    for &byte in b"0\r\n\r\n" {
        client.send([byte]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(read_exact(&mut client.stream, 5).await, b"0\r\n\r\n");
    client.send(get("/after-chunked-lock-step")).await;
    assert_ok(&client.response().await, b"/after-chunked-lock-step");
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/after-chunked-lock-step"]);
}

/// A pipeline of a `Content-Length` POST, a chunked POST with trailers and a GET, written in
/// pieces of 1 to 5 bytes so that every boundary (head, size line, CRLF, trailer) gets split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_split_across_many_small_writes() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let body = pattern(700);
    let mut stream = with_body("POST", "/collect", &body);
    stream.extend(chunked(
        "POST",
        "/collect",
        &[&body[..100], &body[100..101], &body[101..]],
        "X-Done: yes\r\n",
    ));
    stream.extend(get("/after-pieces").as_bytes());
    let mut rest = &stream[..];
    let mut size = 0;
    while !rest.is_empty() {
        size = size % 5 + 1;
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        client.send(piece).await;
        client.stream.flush().await.unwrap();
        tokio::task::yield_now().await;
        rest = tail;
    }
    let r = client.responses(3).await;
    assert_ok(&r[0], &body);
    assert_ok(&r[1], &body);
    assert_eq!(r[1].header("x-trailers"), Some("x-done=yes"));
    assert_ok(&r[2], b"/after-pieces");
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/after-pieces"]);
}

const MIB: usize = 1024 * 1024;

/// 1 MiB echoed with `Content-Length`: the client writes and reads at the same time (an echo
/// streams, so a client that only reads after writing everything would deadlock on TCP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_echo_with_content_length_byte_for_byte() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let body = pattern(MIB);
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let sent = body.clone();
    let writer = tokio::spawn(async move {
        write
            .write_all(
                format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {MIB}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        for piece in sent.chunks(64 * 1024 + 3) {
            write.write_all(piece).await.unwrap();
        }
        write.write_all(get("/after-mib").as_bytes()).await.unwrap();
        write
    });
    let mut read = BufReader::new(read);
    let (status, headers) = read_head(&mut read).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-length"),
        Some(MIB.to_string().as_str())
    );
    let echoed = read_exact(&mut read, MIB).await;
    assert!(echoed == body, "the echo differs from what was sent");
    let (status, headers) = read_head(&mut read).await;
    assert_eq!(status, 200);
    let len: usize = header(&headers, "content-length").unwrap().parse().unwrap();
    assert_eq!(read_exact(&mut read, len).await, b"/after-mib");
    let write = guard("the writer task", writer).await.unwrap();
    drop((read, write));
    server.shutdown().await;
}

/// Reads a chunked response body from a raw stream, checking its framing.
async fn read_chunked<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        guard("reading a chunk size", r.read_line(&mut line))
            .await
            .unwrap();
        assert!(line.ends_with("\r\n"), "bad chunk size line {line:?}");
        let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
        let data = read_exact(r, size + 2).await;
        assert_eq!(&data[size..], b"\r\n", "chunk data not ended by CRLF");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
    }
}

/// 1 MiB echoed with chunked framing on both sides, chunk sizes varying from 1 byte to 40 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_echo_chunked_byte_for_byte() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let body = pattern(MIB);
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let sent = body.clone();
    let writer = tokio::spawn(async move {
        write
            .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let sizes = [1, 2, 3, 4095, 4096, 4097, 8191, 8193, 40 * 1024, 17];
        let (mut at, mut i) = (0, 0);
        while at < sent.len() {
            let n = sizes[i % sizes.len()].min(sent.len() - at);
            let mut piece = format!("{n:x}\r\n").into_bytes();
            piece.extend_from_slice(&sent[at..at + n]);
            piece.extend_from_slice(b"\r\n");
            write.write_all(&piece).await.unwrap();
            at += n;
            i += 1;
        }
        write.write_all(b"0\r\n\r\n").await.unwrap();
        write
            .write_all(get("/after-chunked-mib").as_bytes())
            .await
            .unwrap();
        write
    });
    let mut read = BufReader::new(read);
    let (status, headers) = read_head(&mut read).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
    let echoed = read_chunked(&mut read).await;
    assert_eq!(echoed.len(), MIB);
    assert!(echoed == body, "the echo differs from what was sent");
    let (status, headers) = read_head(&mut read).await;
    assert_eq!(status, 200);
    let len: usize = header(&headers, "content-length").unwrap().parse().unwrap();
    assert_eq!(read_exact(&mut read, len).await, b"/after-chunked-mib");
    let write = guard("the writer task", writer).await.unwrap();
    drop((read, write));
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/after-chunked-mib"]);
}

const LIMIT: u64 = 1024;

fn limited(seen: &Seen) -> (Router, Config) {
    (app(seen), Config::default().max_body_bytes(LIMIT))
}

#[tokio::test]
async fn content_length_over_the_limit_is_413_then_close() {
    let seen = Seen::default();
    let (app, config) = limited(&seen);
    let server = serve_with(app, config).await;

    // Alone.
    let mut client = Client::connect(server.addr).await;
    let mut batch = with_body("POST", "/collect", &pattern(LIMIT as usize + 1));
    batch.extend(get("/never-1").as_bytes());
    client.send(&batch).await;
    let r = client.response().await;
    assert_eq!(r.status, 413);
    assert!(r.closes());
    assert!(client.is_closed().await);
    drop(client);

    // Behind a valid request, ahead of another, in one write; a body at the limit is fine.
    let mut client = Client::connect(server.addr).await;
    let at_limit = pattern(LIMIT as usize);
    let mut batch = get("/first").into_bytes();
    batch.extend(with_body("POST", "/collect", &at_limit));
    batch.extend(with_body("POST", "/echo", &pattern(LIMIT as usize * 4)));
    batch.extend(get("/never-2").as_bytes());
    client.send(&batch).await;
    let r = client.responses(3).await;
    assert_ok(&r[0], b"/first");
    assert_ok(&r[1], &at_limit);
    assert_eq!(r[2].status, 413);
    assert!(r[2].closes());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/first"], "nothing after the 413 may run");
    assert!(seen.errors().is_empty(), "refused before any handler ran");
}

#[tokio::test]
async fn chunked_body_growing_past_the_limit_gives_the_handler_too_large_then_close() {
    let seen = Seen::default();
    let (app, config) = limited(&seen);
    let server = serve_with(app, config).await;
    let mut client = Client::connect(server.addr).await;
    // Each chunk is under the limit; the third pushes the total over it.
    let piece = pattern(400);
    let at_limit = pattern(LIMIT as usize);
    let mut batch = get("/first").into_bytes();
    batch.extend(chunked(
        "POST",
        "/collect",
        &[&at_limit[..1000], &at_limit[1000..]],
        "",
    ));
    batch.extend(chunked("POST", "/collect", &[&piece, &piece, &piece], ""));
    batch.extend(get("/never").as_bytes());
    client.send(&batch).await;
    let r = client.responses(3).await;
    assert_ok(&r[0], b"/first");
    assert_ok(&r[1], &at_limit);
    assert!(!r[1].closes());
    assert_eq!(r[2].status, 413, "body {:?}", r[2].text());
    assert!(r[2].closes());
    assert!(client.is_closed().await);
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.errors(), [BodyError::TooLarge]);
    assert_eq!(seen.paths(), ["/first"], "nothing after the 413 may run");
}

/// `GET /first`, a chunked POST whose framing is broken by `bad_body`, then `GET /never`.
async fn malformed_chunk_mid_pipeline(bad_body: &str) {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/first").into_bytes();
    batch.extend(b"POST /collect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    batch.extend(bad_body.as_bytes());
    batch.extend(get("/never").as_bytes());
    client.send(&batch).await;
    let r = client.responses(2).await;
    assert_ok(&r[0], b"/first");
    assert!(!r[0].closes());
    assert_eq!(r[1].status, 400, "body {:?}", r[1].text());
    assert!(r[1].closes());
    assert!(client.is_closed().await, "nothing may follow the 400");
    drop(client);
    server.shutdown().await;
    let errors = seen.errors();
    assert!(
        matches!(errors[..], [BodyError::Malformed(_)]),
        "handler saw {errors:?}"
    );
    assert_eq!(
        seen.paths(),
        ["/first"],
        "nothing after the bad chunk may run"
    );
}

#[tokio::test]
async fn chunk_size_not_hex_mid_pipeline() {
    malformed_chunk_mid_pipeline("5\r\nhello\r\nzz\r\nhello\r\n0\r\n\r\n").await;
}

#[tokio::test]
async fn chunk_data_without_crlf_mid_pipeline() {
    malformed_chunk_mid_pipeline("5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n").await;
}

/// The handler dropped its body and its answer was read before the framing broke: the answer
/// stands (its head has left), but the connection still ends there — the bytes after the bad
/// chunk, a request among them, are never parsed. (A bad chunk that arrives before the answer
/// is encoded changes the answer instead: tests/body_status.rs.)
#[tokio::test]
async fn malformed_chunk_in_a_dropped_body_still_ends_the_connection() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/first").into_bytes();
    batch.extend(b"POST /ignore HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    batch.extend(b"5\r\nhello\r\n");
    client.send(&batch).await;
    let r = client.responses(2).await;
    assert_ok(&r[0], b"/first");
    assert_ok(&r[1], b"ignored");
    let mut rest = b"zz\r\n".to_vec();
    rest.extend(get("/smuggled").as_bytes());
    rest.extend(get("/never").as_bytes());
    client.send(&rest).await;
    assert!(client.is_closed().await, "nothing may follow");
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/first"]);
}

/// An echo has already sent `200` and some chunks when the framing breaks: the response must be
/// cut short (no last chunk) and the connection closed, so the client cannot mistake the
/// truncated echo for the whole body.
#[tokio::test]
async fn streamed_echo_of_a_malformed_chunked_body_is_cut_short() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    let mut client = Client::connect(server.addr).await;
    let mut batch = get("/first").into_bytes();
    batch.extend(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    batch.extend(b"5\r\nhello\r\n");
    client.send(&batch).await;
    // The echo's head and first chunk have left before the framing breaks.
    let mut raw = Vec::new();
    while !String::from_utf8_lossy(&raw).contains("5\r\nhello\r\n") {
        let mut buf = [0u8; 1024];
        let n = guard("the echo's first chunk", client.stream.read(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "closed before the echo's first chunk");
        raw.extend_from_slice(&buf[..n]);
    }
    let mut rest = b"not-hex\r\n0\r\n\r\n".to_vec();
    rest.extend(get("/never").as_bytes());
    client.send(&rest).await;
    // Read raw to EOF (the response parser would reject the truncated echo).
    guard("reading to EOF", client.stream.read_to_end(&mut raw))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let heads: Vec<usize> = text.match_indices("HTTP/1.1 ").map(|(i, _)| i).collect();
    assert_eq!(heads.len(), 2, "two responses, no more: {text:?}");
    let (first, echo) = text.split_at(heads[1]);
    assert!(
        first.starts_with("HTTP/1.1 200 ") && first.ends_with("\r\n\r\n/first"),
        "the GET's response is intact: {first:?}"
    );
    assert!(
        echo.starts_with("HTTP/1.1 200 ") && echo.contains("transfer-encoding: chunked\r\n"),
        "the echo's head went out: {echo:?}"
    );
    assert!(
        !echo.ends_with("0\r\n\r\n"),
        "a truncated echo ended with a last chunk: {echo:?}"
    );
    drop(client);
    server.shutdown().await;
    assert_eq!(seen.paths(), ["/first"]);
}

/// A client that stops mid-body (EOF) gives the handler `BodyError::Incomplete`, never a
/// shortened body passed off as whole.
#[tokio::test]
async fn eof_inside_a_body_is_incomplete_for_the_handler() {
    let seen = Seen::default();
    let server = serve(app(&seen)).await;
    for req in [
        "POST /collect HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this".to_owned(),
        "POST /collect HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel".into(),
    ] {
        let mut client = Client::connect(server.addr).await;
        client.send(req).await;
        client.shutdown_write().await;
        let r = client.response().await;
        assert_eq!(r.status, 400, "body {:?}", r.text());
        assert!(r.closes());
        assert!(client.is_closed().await);
    }
    server.shutdown().await;
    assert_eq!(
        seen.errors(),
        [BodyError::Incomplete, BodyError::Incomplete]
    );
}
