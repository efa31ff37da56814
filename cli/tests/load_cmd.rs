//! `pipelined load` against the real binary: the counts of its JSON summary add up (every
//! request begun is answered, failed or aborted, never two of these and never none), answers
//! of any status are answers, requests a server never answered are errors and never successes,
//! the schedule of `-q` and the deadline of `-z` hold as lower bounds, and bad input is refused
//! with a message naming it.
//!
//! Durations are checked against lower bounds only. Every run has a hang guard (a child still
//! running after `HANG` is killed and the test fails), which no healthy run comes near.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::binary::Binary;
use common::scripted::{run_load, ERROR_KINDS, HANG};
use serde_json::{json, Value};

/// The demo's `/plaintext` body.
const PLAINTEXT: &str = "Hello, World!";

/// The JSON document's top-level keys, exactly.
const TOP_LEVEL: [&str; 12] = [
    "settings",
    "interrupted",
    "elapsed_secs",
    "requests",
    "success_rate",
    "req_per_sec",
    "body_bytes",
    "body_bytes_per_sec",
    "latency_ms",
    "status_codes",
    "errors",
    "head_of_line_wait_ms",
];

/// The keys of `latency_ms` and `head_of_line_wait_ms`, in rising order of value (but
/// `count` and `mean`).
const PERCENTILES: [&str; 6] = ["min", "p50", "p90", "p99", "p99.9", "max"];

/// The demo server (`serve` and `extra` flags) on a free port.
fn demo(extra: &[&str]) -> Binary {
    let mut args = vec!["serve"];
    args.extend(extra);
    args.extend(["--bind", "127.0.0.1:0"]);
    Binary::start(&args, &[])
}

/// Runs `pipelined load` with `args` to completion (killed, and the test failed, after `HANG`).
fn run(args: &[&str]) -> Output {
    run_load(args, HANG)
}

/// Runs `pipelined load --json` with `args`, and returns its exit code and document.
fn json_run(args: &[&str]) -> (Option<i32>, Value) {
    let out = run(&[args, &["--json"]].concat());
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); stdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out.status.code(), doc)
}

/// The document of a run that must succeed (exit 0).
fn json(args: &[&str]) -> Value {
    let (code, doc) = json_run(args);
    assert_eq!(code, Some(0), "{doc:#}");
    doc
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A whole number from the document.
fn int(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not a whole number: {v}"))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `requests`' counts: (total, answered, errors, aborted), after checking that the first is
/// the sum of the others, that `errors` is the sum of the kinds, and that `status_codes` and
/// `latency_ms` count every answer.
fn counts(doc: &Value) -> (u64, u64, u64, u64) {
    let r = &doc["requests"];
    let (total, answered, errors, aborted) = (
        int(&r["total"]),
        int(&r["answered"]),
        int(&r["errors"]),
        int(&r["aborted"]),
    );
    assert_eq!(total, answered + errors + aborted, "{doc:#}");
    let kinds: u64 = ERROR_KINDS.iter().map(|k| int(&doc["errors"][k])).sum();
    assert_eq!(kinds, errors, "{doc:#}");
    let statuses: u64 = doc["status_codes"]
        .as_object()
        .expect("status_codes is an object")
        .values()
        .map(int)
        .sum();
    assert_eq!(statuses, answered, "{doc:#}");
    if answered == 0 {
        assert_eq!(doc["latency_ms"], Value::Null, "{doc:#}");
    } else {
        assert_eq!(int(&doc["latency_ms"]["count"]), answered, "{doc:#}");
    }
    (total, answered, errors, aborted)
}

/// A percentile block's values rise from min to max, and its mean lies between them.
fn assert_ordered(block: &Value) {
    let values: Vec<f64> = PERCENTILES.iter().map(|k| num(&block[k])).collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]), "{block:#}");
    let mean = num(&block["mean"]);
    assert!(values[0] <= mean && mean <= values[5], "{block:#}");
    assert!(values[0] >= 0.0, "{block:#}");
}

/// A port with nothing listening: bound, then released.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The answer the scripted server gives.
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// How the scripted server ends a connection once it has given its answers.
#[derive(Clone, Copy)]
enum Close {
    /// Closes its sending side, then reads whatever else the client sends until the client
    /// closes: a FIN after the last answer, and never a reset.
    Graceful,
    /// Closes the socket at once with requests received and not read (it reads a byte at a
    /// time), so the kernel sends a reset. The answers sent before it stay readable in the
    /// client's socket (Linux returns them before ECONNRESET).
    Abrupt,
}

/// A server that answers the first `k` requests of every connection (bodiless requests, as
/// `load` sends without `-d`) with `OK`, then closes as `close` says. Returns its address and
/// how many answers it has written in all; the count goes up before each answer is written, so
/// it is never behind what the client can have read.
fn scripted_server(k: usize, close: Close) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let count = written.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let count = count.clone();
            thread::spawn(move || serve_scripted(stream, k, close, &count));
        }
    });
    (url, written)
}

/// One connection of `scripted_server`: counts complete request heads, answers the first `k`,
/// then closes as `close` says (or when the client closes first).
fn serve_scripted(mut stream: TcpStream, k: usize, close: Close, written: &AtomicUsize) {
    // Each answer leaves at its write: under Nagle's algorithm a small one could still be in
    // this socket's send queue when an abrupt close discards it, never sent at all.
    stream.set_nodelay(true).unwrap();
    let mut buf = Vec::new();
    let mut answered = 0;
    let mut chunk = [0u8; 4096];
    // Abrupt: a byte at a time, so the requests behind the k-th are still unread at the close.
    let step = match close {
        Close::Graceful => chunk.len(),
        Close::Abrupt => 1,
    };
    while answered < k {
        let n = match stream.read(&mut chunk[..step]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        // Each complete request head is one request.
        while answered < k {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            buf.drain(..end + 4);
            written.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(OK).is_err() {
                written.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            answered += 1;
        }
    }
    match close {
        Close::Graceful => {
            let _ = stream.shutdown(Shutdown::Write);
            // Read to the client's end, so nothing is left unread when the socket closes.
            while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
        }
        Close::Abrupt => drop(stream),
    }
}

/// Rule (issue #21 point 7): a run of `-n` requests against a healthy server answers every one
/// of them, and the document accounts for each: total = answered + errors + aborted, one
/// latency per answer with percentiles in order, status codes by code, body bytes the sum of
/// the bodies, every error kind present, exactly the documented keys, the settings echoed.
#[test]
fn a_pipelined_run_answers_every_request_and_the_counts_add_up() {
    let server = demo(&[]);
    let url = server.url("/plaintext");
    let doc = json(&[&url, "-n", "300", "-c", "3", "--pipeline", "8"]);

    let keys: BTreeSet<&str> = doc
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(TOP_LEVEL), "{doc:#}");
    let errors = doc["errors"].as_object().expect("errors is an object");
    let kinds: BTreeSet<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(kinds, BTreeSet::from(ERROR_KINDS), "{doc:#}");
    assert!(errors.values().all(|n| n == 0), "{doc:#}");

    assert_eq!(counts(&doc), (300, 300, 0, 0), "{doc:#}");
    assert_eq!(doc["status_codes"], json!({"200": 300}));
    assert_eq!(int(&doc["latency_ms"]["count"]), 300);
    assert_ordered(&doc["latency_ms"]);
    assert_eq!(int(&doc["body_bytes"]), 300 * PLAINTEXT.len() as u64);
    assert_eq!(num(&doc["success_rate"]), 1.0);
    assert!(num(&doc["req_per_sec"]) > 0.0, "{doc:#}");
    assert!(num(&doc["elapsed_secs"]) > 0.0, "{doc:#}");
    assert_eq!(doc["interrupted"], false);

    let settings = &doc["settings"];
    assert_eq!(settings["url"], url);
    assert_eq!(settings["method"], "GET");
    assert_eq!(settings["http_version"], "1.1");
    assert_eq!(settings["connections"], 3);
    assert_eq!(settings["pipeline"], 8);
    assert!((1..=3).contains(&int(&settings["threads"])), "{settings:#}");
    assert_eq!(settings["rate"], Value::Null);
}

/// Rule: a response is an answer whatever its status: 404s are counted under "404" and as
/// answered, not as errors, and the run exits 0.
#[test]
fn non_2xx_statuses_are_answers_counted_by_code() {
    let server = demo(&[]);
    let url = server.url("/no-such-route");
    let doc = json(&[&url, "-n", "60", "-c", "2", "--pipeline", "4"]);
    assert_eq!(counts(&doc), (60, 60, 0, 0), "{doc:#}");
    assert_eq!(doc["status_codes"], json!({"404": 60}));
    assert_eq!(num(&doc["success_rate"]), 1.0);
}

/// Rule: requests a server never answers are errors, never successes. The scripted server
/// answers 3 requests per connection and then closes (FIN, after reading all the client sent,
/// so no reset), while the client keeps 8 outstanding: answered is exactly what the server
/// wrote, the rest are errors of the kinds for an ended connection (not `other`, not
/// `protocol`), and nothing is aborted in a `-n` run.
#[test]
fn requests_a_closing_server_never_answered_are_errors() {
    let (url, written) = scripted_server(3, Close::Graceful);
    let (code, doc) = json_run(&[&url, "-n", "40", "-c", "1", "--pipeline", "8"]);
    let (total, answered, errors, aborted) = counts(&doc);
    assert_eq!(total, 40, "{doc:#}");
    assert_eq!(aborted, 0, "{doc:#}");
    assert_eq!(answered, written.load(Ordering::SeqCst) as u64, "{doc:#}");
    assert_eq!(answered + errors, 40, "{doc:#}");
    // The first connection takes 8 requests and answers 3.
    assert!(errors > 0, "{doc:#}");
    assert!(answered >= 3, "{doc:#}");
    assert_eq!(doc["status_codes"], json!({"200": answered}));
    assert_eq!(int(&doc["body_bytes"]), 2 * answered, "{doc:#}");
    // A FIN after complete answers: what was written is `not_answered` (the first connection
    // wrote 8 and got 3 answers), what was not `not_sent`; nothing else.
    let e = &doc["errors"];
    assert!(int(&e["not_answered"]) >= 5, "{doc:#}");
    assert_eq!(
        int(&e["not_answered"]) + int(&e["not_sent"]),
        errors,
        "{doc:#}"
    );
    assert_eq!(code, Some(0), "some were answered: {doc:#}");
}

/// Rule: the same when the server closes with requests unread, so its kernel resets the
/// connection: the client never reports more answers than the server wrote, and the rest are
/// errors of an ended connection (among them `reset`). (That it reports exactly as many is
/// `answers_sent_before_a_reset_are_counted`.)
#[test]
fn requests_a_resetting_server_never_answered_are_errors() {
    let (url, written) = scripted_server(3, Close::Abrupt);
    let (code, doc) = json_run(&[&url, "-n", "40", "-c", "1", "--pipeline", "8"]);
    let (total, answered, errors, aborted) = counts(&doc);
    assert_eq!((total, aborted), (40, 0), "{doc:#}");
    assert!(
        answered <= written.load(Ordering::SeqCst) as u64,
        "more answers than the server wrote: {doc:#}"
    );
    assert_eq!(answered + errors, 40, "{doc:#}");
    assert!(errors > 0, "{doc:#}");
    if answered > 0 {
        assert_eq!(doc["status_codes"], json!({"200": answered}));
    }
    for kind in ["connect", "timeout", "protocol", "other"] {
        assert_eq!(doc["errors"][kind], 0, "{kind}: {doc:#}");
    }
    // The first connection wrote 8 requests and the server closed with 5 of them unread.
    assert!(int(&doc["errors"]["reset"]) > 0, "{doc:#}");
    let expected = if answered > 0 { 0 } else { 1 };
    assert_eq!(code, Some(expected), "{doc:#}");
}

/// Rule: exit 1 when no request was answered, with the document still printed: a server that
/// closes every connection before answering leaves every request an error.
#[test]
fn a_run_with_no_answer_exits_1_and_still_reports() {
    let (url, written) = scripted_server(0, Close::Graceful);
    let (code, doc) = json_run(&[&url, "-n", "20", "-c", "2", "--pipeline", "4"]);
    assert_eq!(written.load(Ordering::SeqCst), 0);
    assert_eq!(counts(&doc), (20, 0, 20, 0), "{doc:#}");
    assert_eq!(doc["status_codes"], json!({}));
    assert_eq!(doc["latency_ms"], Value::Null);
    assert_eq!(doc["head_of_line_wait_ms"], Value::Null);
    assert_eq!(num(&doc["success_rate"]), 0.0);
    for kind in ["connect", "timeout", "protocol", "other"] {
        assert_eq!(doc["errors"][kind], 0, "{kind}: {doc:#}");
    }
    assert_eq!(code, Some(1), "{doc:#}");
}

/// Rule: an unreachable target is reported before the run, in one line on stderr
/// (`pipelined load: cannot connect to …`), with exit 1 and nothing on stdout, even with
/// `--json`.
#[test]
fn an_unreachable_target_fails_at_once_with_one_line() {
    let addr = closed_port();
    let url = format!("http://{addr}/plaintext");
    for extra in [&[][..], &["--json"]] {
        let out = run(&[&[url.as_str()][..], extra].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(out.stdout.is_empty(), "{}", stdout(&out));
        assert!(
            err.starts_with(&format!("pipelined load: cannot connect to {addr}")),
            "{err}"
        );
        assert!(err.contains("refused"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

/// Rule: a bad flag value is clap's "invalid value" (exit 2) naming the value and the flag; a
/// bad URL, header or method is `pipelined load: …` (exit 1) naming it. These are checked
/// before any connection: the target here is a closed port.
#[test]
fn bad_arguments_are_refused_with_a_message_naming_them() {
    let url = format!("http://{}/", closed_port());
    let flag_values: [(&[&str], &str, &str); 6] = [
        (&["-n", "0"], "'0'", "-n"),
        (&["-c", "0"], "'0'", "-c"),
        (&["-z", "0s"], "'0s'", "-z"),
        (&["-q=-1"], "'-1'", "-q"),
        (&["-q", "0"], "'0'", "-q"),
        (&["--pipeline", "0"], "'0'", "--pipeline"),
    ];
    for (flags, value, flag) in flag_values {
        let out = run(&[flags, &[url.as_str()]].concat());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains("invalid value"), "{flags:?}: {err}");
        assert!(err.contains(value), "{flags:?}: {err}");
        assert!(err.contains(flag), "{flags:?}: {err}");
        assert!(out.stdout.is_empty(), "{flags:?}: {}", stdout(&out));
    }
    // `-q -1`: clap takes `-1` for a flag; still refused, still named.
    let out = run(&["-q", "-1", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("-1"), "{}", stderr(&out));

    let ftp = "ftp://127.0.0.1/file";
    let runtime: [(&[&str], &str); 3] = [
        (&[ftp], "`ftp`"),
        (&["-H", "NoColon", &url], "NoColon"),
        (&["-m", "BAD METHOD", &url], "BAD METHOD"),
    ];
    for (args, named) in runtime {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("pipelined load: "), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(!err.contains("cannot connect"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
    }
}

/// Rule: `-z` runs until its deadline (elapsed at least the duration) whatever `-n` says, and
/// requests in flight then are aborted, not errors: against a healthy server, errors stay 0
/// and total = answered + aborted.
#[test]
fn a_timed_run_lasts_its_duration_and_aborts_what_is_in_flight() {
    let server = demo(&[]);
    let url = server.url("/plaintext");
    let doc = json(&[&url, "-z", "1s", "-n", "5", "-c", "2", "--pipeline", "4"]);
    let (total, answered, errors, aborted) = counts(&doc);
    assert_eq!(errors, 0, "{doc:#}");
    assert_eq!(total, answered + aborted, "{doc:#}");
    // 2 connections of 4 hold at most 8 at the end.
    assert!(aborted <= 8, "{doc:#}");
    // `-n` is ignored with `-z`: far more than 5 in a second.
    assert!(answered > 5, "{doc:#}");
    assert!(num(&doc["elapsed_secs"]) >= 1.0, "{doc:#}");
    assert_eq!(doc["interrupted"], false);
    assert_eq!(int(&doc["body_bytes"]), answered * PLAINTEXT.len() as u64);
}

/// Rule: `-q` fixes the schedule in advance: 100 requests at 200/s cannot end before the last
/// is due at 0.495 s (lower bound only), and the rate is echoed in the settings.
#[test]
fn a_rate_limited_run_keeps_to_its_schedule() {
    let server = demo(&[]);
    let url = server.url("/plaintext");
    let doc = json(&[&url, "-q", "200", "-n", "100", "-c", "2"]);
    assert_eq!(counts(&doc), (100, 100, 0, 0), "{doc:#}");
    assert_eq!(num(&doc["settings"]["rate"]), 200.0);
    let elapsed = num(&doc["elapsed_secs"]);
    assert!(elapsed >= 0.45, "100 requests at 200/s in {elapsed} s");
}

/// Rule: `--http2` speaks HTTP/2 (prior knowledge on http://, which the demo serves on the
/// same port), `--pipeline` then being the streams per connection; every request answered.
#[test]
fn http2_runs_answer_every_request() {
    let server = demo(&[]);
    let url = server.url("/plaintext");
    let doc = json(&[&url, "--http2", "-n", "100", "-c", "2", "--pipeline", "4"]);
    assert_eq!(counts(&doc), (100, 100, 0, 0), "{doc:#}");
    assert_eq!(doc["settings"]["http_version"], "2");
    assert_eq!(doc["settings"]["pipeline"], 4);
    assert_eq!(doc["status_codes"], json!({"200": 100}));
    assert_eq!(int(&doc["body_bytes"]), 100 * PLAINTEXT.len() as u64);
    assert_ordered(&doc["latency_ms"]);
}

/// Rule: `-m`, `-d`, `-D` and `-H` shape every request: POSTs of a body to `/echo` come back
/// byte for byte (body_bytes = requests × body length), pipelined, with a custom header
/// accepted.
#[test]
fn posts_carry_their_body_on_every_request() {
    let server = demo(&[]);
    let url = server.url("/echo");
    let doc = json(&[
        &url,
        "-m",
        "POST",
        "-d",
        "hello",
        "-H",
        "X-Test: 1",
        "-n",
        "50",
        "-c",
        "1",
        "--pipeline",
        "4",
    ]);
    assert_eq!(counts(&doc), (50, 50, 0, 0), "{doc:#}");
    assert_eq!(doc["settings"]["method"], "POST");
    assert_eq!(doc["status_codes"], json!({"200": 50}));
    assert_eq!(int(&doc["body_bytes"]), 50 * 5);

    let body = "a body from a file, 35 bytes long.\n";
    let file = std::env::temp_dir().join(format!("pipelined-load-{}.txt", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let path = file.display().to_string();
    let doc = json(&[&url, "-m", "POST", "-D", &path, "-n", "20", "-c", "2"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(counts(&doc), (20, 20, 0, 0), "{doc:#}");
    assert_eq!(int(&doc["body_bytes"]), 20 * body.len() as u64);

    // GET on a POST-only route is an answer too (405), not an error.
    let doc = json(&[&url, "-n", "10", "-c", "1"]);
    assert_eq!(counts(&doc), (10, 10, 0, 0), "{doc:#}");
    assert_eq!(doc["status_codes"], json!({"405": 10}));
}

/// Rule: the head-of-line wait is the server's `Server-Timing` queue value, one per answer
/// that carried it: every answer of the ordered engine (which sends it by default), and none,
/// so `null`, with `--no-server-timing`.
#[test]
fn head_of_line_wait_comes_from_server_timing() {
    let server = demo(&[]);
    let doc = json(&[
        &server.url("/plaintext"),
        "-n",
        "200",
        "-c",
        "2",
        "--pipeline",
        "8",
    ]);
    let (_, answered, _, _) = counts(&doc);
    assert_eq!(answered, 200, "{doc:#}");
    let wait = &doc["head_of_line_wait_ms"];
    assert_eq!(int(&wait["count"]), answered, "{doc:#}");
    assert_ordered(wait);

    let quiet = demo(&["--no-server-timing"]);
    let doc = json(&[
        &quiet.url("/plaintext"),
        "-n",
        "200",
        "-c",
        "2",
        "--pipeline",
        "8",
    ]);
    assert_eq!(counts(&doc), (200, 200, 0, 0), "{doc:#}");
    assert_eq!(doc["head_of_line_wait_ms"], Value::Null, "{doc:#}");
}

/// Rule: the text summary (oha's layout) has the rate, the latency, the status codes with
/// their counts; nothing is drawn on stderr when it is not a terminal.
#[test]
fn the_text_summary_reports_rate_latency_and_statuses() {
    let server = demo(&[]);
    let url = server.url("/plaintext");
    for extra in [&["--no-tui"][..], &[]] {
        let args = [
            &[url.as_str(), "-n", "300", "-c", "3", "--pipeline", "8"][..],
            extra,
        ]
        .concat();
        let out = run(&args);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        for needle in [
            "over HTTP/1.1: 3 connections, 8 pipelined requests per connection",
            "300 in all: 300 answered, 0 errors, 0 aborted",
            "Requests/sec:",
            "Latency",
            "Latency histogram:",
            "Status codes:",
            "[200] 300 responses",
            "Head-of-line wait",
        ] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
        assert!(!text.contains("Errors:"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        let err = stderr(&out);
        assert!(!err.contains('\x1b'), "escape codes on stderr: {err:?}");
        assert!(err.is_empty(), "{err:?}");
    }
}

/// Rule: an answer the server sent before resetting the connection is in the client's socket
/// before the reset and readable (Linux returns queued data before ECONNRESET), so it counts
/// as answered, even when a refill write fails with ECONNRESET first (cli/src/load/wire.rs,
/// `Conn::broken`): 3 written per connection, all 3 counted. Repeated, since it depends on how
/// much one read happened to take.
#[test]
fn answers_sent_before_a_reset_are_counted() {
    for attempt in 0..20 {
        let (url, written) = scripted_server(3, Close::Abrupt);
        let (_, doc) = json_run(&[&url, "-n", "40", "-c", "1", "--pipeline", "8"]);
        let (_, answered, _, _) = counts(&doc);
        assert_eq!(
            answered,
            written.load(Ordering::SeqCst) as u64,
            "attempt {attempt}: answers the server wrote were not counted: {doc:#}"
        );
    }
}

/// Rule (review of #21): an answer may begin before its request is fully written, and large
/// bodies pipelined leave the write buffer bounded. The demo's `/echo` streams the body back as
/// it arrives, so with 12 MB bodies (more than loopback's socket buffers hold) its answer
/// starts while the request is still being written: 4 POSTs, 2 deep, all answered with their
/// bodies.
#[test]
fn large_bodies_are_answered_while_they_are_still_being_written() {
    const SIZE: usize = 12_000_000;
    let server = demo(&[]);
    let file = common::pki::TempFile::new("load-large-body", &"x".repeat(SIZE));
    let doc = json(&[
        &server.url("/echo"),
        "-m",
        "POST",
        "-D",
        file.path(),
        "-n",
        "4",
        "-c",
        "1",
        "--pipeline",
        "2",
    ]);
    assert_eq!(counts(&doc), (4, 4, 0, 0), "{doc:#}");
    assert_eq!(int(&doc["body_bytes"]), 4 * SIZE as u64, "{doc:#}");
}

/// Rule (issue #21 point 1): https with `--insecure` and with `--cacert`, HTTP/1.1 pipelined
/// and `--http2` (ALPN h2); a certificate the tool does not trust is one line before any load.
#[test]
fn https_runs_with_insecure_or_cacert_and_refuses_an_untrusted_server() {
    let pki = common::pki::ca_signed("pipelined load test CA");
    let cert = common::pki::TempFile::new("load-cert.pem", &pki.chain_pem);
    let key = common::pki::TempFile::new("load-key.pem", &pki.key_pem);
    let ca = common::pki::TempFile::new("load-ca.pem", &pki.ca_pem);
    let server = demo(&["--tls-cert", cert.path(), "--tls-key", key.path()]);
    let url = server.url("/plaintext");
    assert!(url.starts_with("https://"), "{url}");
    for extra in [&["-k"][..], &["--cacert", ca.path()], &["-k", "--http2"]] {
        let args = [
            &[url.as_str(), "-n", "100", "-c", "2", "--pipeline", "8"],
            extra,
        ]
        .concat();
        let doc = json(&args);
        assert_eq!(counts(&doc), (100, 100, 0, 0), "{extra:?}: {doc:#}");
        assert_eq!(int(&doc["body_bytes"]), 100 * PLAINTEXT.len() as u64);
    }
    let out = run(&[url.as_str(), "-n", "10", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("pipelined load: TLS handshake with "),
        "{err}"
    );
    assert!(err.contains("--insecure or --cacert"), "{err}");
}

/// Rule (issue #21 point 3, -q): latency counts from each request's scheduled time, so a
/// server that stalls is charged for the requests it held up, even those the tool could not
/// send meanwhile (no coordinated omission). One connection, one request at a time, 100 a
/// second; the server holds its first answer 300 ms: the ~29 requests due meanwhile leave late,
/// and their latencies, from their schedule, add up to far more than the one stall would.
#[test]
fn a_fixed_schedule_charges_a_stall_to_every_request_it_held_up() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut answered = 0;
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if answered == 0 {
                            // The stall under test, on the server's side.
                            thread::sleep(Duration::from_millis(300));
                        }
                        answered += 1;
                        if stream.write_all(OK).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let doc = json(&[&url, "-q", "100", "-n", "40", "-c", "1", "--pipeline", "1"]);
    assert_eq!(counts(&doc), (40, 40, 0, 0), "{doc:#}");
    let latency = &doc["latency_ms"];
    // Without the schedule, only the first request would see the stall: p50 near zero.
    assert!(num(&latency["p50"]) >= 50.0, "{latency:#}");
    assert!(num(&latency["max"]) >= 250.0, "{latency:#}");
    assert!(num(&latency["mean"]) * 40.0 >= 2_000.0, "{latency:#}");
}

/// Rule (issue #21 point 2): Ctrl-C stops the run early and the summary is still printed,
/// saying so. The tool is interrupted once the server has seen its first request.
#[test]
fn ctrl_c_stops_early_and_still_prints_the_summary() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (seen, first) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = seen.clone();
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(1..) = stream.read(&mut chunk) {
                    let _ = seen.send(());
                    if stream.write_all(OK).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let child = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .args(["load", &url, "-z", "60s", "-c", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    first
        .recv_timeout(HANG)
        .expect("a request reached the server");
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stderr(&out)));
    assert_eq!(doc["interrupted"], Value::Bool(true), "{doc:#}");
    // The first request was sent; its answer may or may not have been read by the stop.
    let (total, answered, errors, aborted) = counts(&doc);
    assert!(total >= 1, "{doc:#}");
    assert_eq!(errors, 0, "{doc:#}");
    assert!(aborted <= 1, "one request in flight at most: {doc:#}");
    assert!(num(&doc["elapsed_secs"]) < 60.0, "{doc:#}");
    assert_eq!(total, answered + aborted);
}

/// Rule (-q with -z): the requests counted are those the schedule had due by the end: none
/// taken ahead of its time is counted as aborted. 10 a second for 1 s on 20 connections: 11
/// due (at 0, 0.1, ... 1.0 s), not the 20 a connection each would hold.
#[test]
fn a_timed_schedule_counts_what_was_due_not_what_was_held() {
    let server = demo(&[]);
    let doc = json(&[
        &server.url("/plaintext"),
        "-q",
        "10",
        "-z",
        "1s",
        "-c",
        "20",
    ]);
    let (total, answered, errors, aborted) = counts(&doc);
    assert_eq!(errors, 0, "{doc:#}");
    assert!((10..=12).contains(&total), "{doc:#}");
    assert!(aborted <= 2, "{doc:#}");
    assert_eq!(total, answered + aborted, "{doc:#}");
}

/// Rule (-t): a limit no answer comes near costs nothing: every request of a healthy server is
/// answered, none counted as a timeout (the silent server's side is in load_hostile.rs).
#[test]
fn a_generous_timeout_times_nothing_out() {
    let server = demo(&[]);
    let doc = json(&[
        &server.url("/plaintext"),
        "-t",
        "30s",
        "-n",
        "200",
        "-c",
        "2",
        "--pipeline",
        "8",
    ]);
    assert_eq!(counts(&doc), (200, 200, 0, 0), "{doc:#}");
}
