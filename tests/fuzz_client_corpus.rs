//! Replays the `client_responses` fuzz corpus under plain `cargo test`: every file in
//! `fuzz/corpus/client_responses/` and every `fuzz/artifacts-regressions/client_responses-*`
//! reproducer goes through the same harness as the fuzz target (`fuzz/common/client.rs`):
//! 1–8 pipelined GET/HEAD requests through `pipelined::client` over an in-memory duplex,
//! answered with the file's bytes whole and in small reads. No fuzzer is needed to keep these
//! inputs passing.

#[path = "../fuzz/common/client.rs"]
mod client;

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use client::{Answer, Outcome};
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use pipelined::client::ErrorKind;

/// The corpus files and the kept reproducers, sorted.
fn inputs() -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let read = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|entry| entry.expect("a readable directory entry").path())
            .collect::<Vec<_>>()
    };
    let mut files = read(&fuzz.join("corpus/client_responses"));
    files.extend(
        read(&fuzz.join("artifacts-regressions"))
            .into_iter()
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("client_responses-"))
            }),
    );
    files.sort();
    files
}

#[test]
fn every_client_corpus_file_keeps_the_guarantees() {
    let inputs = inputs();
    // The hand-written seeds alone are more than this.
    assert!(inputs.len() >= 30, "corpus went missing: {inputs:?}");
    let failures: Vec<_> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable corpus file");
            catch_unwind(|| client::check(&data)).is_err()
        })
        .collect();
    assert!(failures.is_empty(), "inputs that failed: {failures:#?}");
}

/// A plain answer: 200 with `Content-Length` and that many bytes.
fn ok(body: &str) -> Outcome {
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(body.len()));
    Ok(Answer {
        status: StatusCode::OK,
        version: Version::HTTP_11,
        headers,
        body: body.as_bytes().to_vec(),
        trailers: None,
        end: Ok(()),
    })
}

/// `ok(body)` changed by `edit`.
fn answer(body: &str, edit: impl FnOnce(&mut Answer)) -> Outcome {
    let mut answer = ok(body).expect("ok answers");
    edit(&mut answer);
    Ok(answer)
}

/// What a checker case is: its name, which requests were HEAD, their outcomes, and how the
/// connection future ended.
type Case = (&'static str, Vec<bool>, Vec<Outcome>, Result<(), ErrorKind>);

/// The checker accepts the sequences the guarantees allow and refuses each kind of broken one;
/// without this, a checker that accepts anything would make the corpus test pass vacuously.
#[test]
fn the_checker_catches_outcomes_the_guarantees_rule_out() {
    use ErrorKind::{Incomplete, NotAnswered, NotSent, Protocol};
    let failed = Err(Protocol);
    let fine: Vec<Case> = vec![
        (
            "all answered",
            vec![false, true],
            vec![ok("ab"), answer("", |a| a.body.clear())],
            Ok(()),
        ),
        (
            "answers, one failure, the rest unanswered",
            vec![false; 4],
            vec![ok("a"), Err(Protocol), Err(NotAnswered), Err(NotSent)],
            failed,
        ),
        (
            "a body cut short, the rest unanswered",
            vec![false; 2],
            vec![
                answer("ab", |a| {
                    a.body.pop();
                    a.end = Err(Incomplete)
                }),
                Err(NotAnswered),
            ],
            failed,
        ),
        (
            "a close between answers",
            vec![false; 2],
            vec![ok("a"), Err(NotAnswered)],
            Err(NotAnswered),
        ),
    ];
    for (what, heads, outcomes, connection) in fine {
        let passed = catch_unwind(|| client::check_outcomes(&heads, &outcomes, connection));
        assert!(passed.is_ok(), "the checker refused {what}");
    }
    let close = |a: &mut Answer| {
        a.headers
            .insert("connection", HeaderValue::from_static("close"));
    };
    let broken: Vec<Case> = vec![
        ("a missing outcome", vec![false; 2], vec![ok("a")], Ok(())),
        (
            "an answer after a failure",
            vec![false; 2],
            vec![Err(NotAnswered), ok("a")],
            failed,
        ),
        (
            "two failures that say what broke",
            vec![false; 2],
            vec![Err(Protocol), Err(Incomplete)],
            failed,
        ),
        (
            "an answer after Connection: close",
            vec![false; 2],
            vec![answer("a", close), ok("a")],
            Ok(()),
        ),
        (
            "a protocol error after Connection: close",
            vec![false; 2],
            vec![answer("a", close), Err(Protocol)],
            failed,
        ),
        (
            "an answer after a body delimited by the close",
            vec![false; 2],
            vec![answer("a", |a| a.headers.clear()), ok("a")],
            Ok(()),
        ),
        ("a body on a HEAD answer", vec![true], vec![ok("a")], Ok(())),
        (
            "a body on a 204",
            vec![false],
            vec![answer("a", |a| a.status = StatusCode::NO_CONTENT)],
            Ok(()),
        ),
        (
            "a 1xx as the final answer",
            vec![false],
            vec![answer("", |a| a.status = StatusCode::CONTINUE)],
            Ok(()),
        ),
        (
            "a body longer than its Content-Length",
            vec![false],
            vec![answer("ab", |a| a.body.push(b'c'))],
            Ok(()),
        ),
        (
            "a body that ended short of its Content-Length",
            vec![false],
            vec![answer("ab", |a| {
                a.body.pop();
            })],
            Ok(()),
        ),
        (
            "an accepted invalid Content-Length",
            vec![false],
            vec![answer("", |a| {
                a.headers
                    .insert("content-length", HeaderValue::from_static("+0"));
            })],
            Ok(()),
        ),
        (
            "accepted conflicting Content-Lengths",
            vec![false],
            vec![answer("a", |a| {
                a.headers
                    .append("content-length", HeaderValue::from_static("2"));
            })],
            Ok(()),
        ),
        (
            "trailers without chunked",
            vec![false],
            vec![answer("a", |a| a.trailers = Some(HeaderMap::new()))],
            Ok(()),
        ),
        (
            "a failure with a clean connection end",
            vec![false],
            vec![Err(NotAnswered)],
            Ok(()),
        ),
        (
            "a body that failed as not answered",
            vec![false],
            vec![answer("ab", |a| {
                a.body.pop();
                a.end = Err(NotAnswered)
            })],
            failed,
        ),
    ];
    for (what, heads, outcomes, connection) in broken {
        let caught = catch_unwind(|| client::check_outcomes(&heads, &outcomes, connection));
        assert!(caught.is_err(), "the checker missed {what}");
    }
}

/// The input layout end to end: three requests, the middle one a HEAD (byte 1), the split run
/// reading two bytes at a time (byte 2); a pipeline of well-formed answers must pass.
#[test]
fn the_harness_runs_a_plain_pipeline() {
    let mut input = vec![2, 0b010, 1];
    input.extend_from_slice(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab\
          HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n\
          HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1;x=y\r\nc\r\n0\r\nt: 1\r\n\r\n",
    );
    client::check(&input);
}
