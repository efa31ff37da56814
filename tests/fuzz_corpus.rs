//! Replays the fuzz corpus under plain `cargo test`: every file in `fuzz/corpus/*/` and
//! `fuzz/artifacts-regressions/` (the client target's aside: they are server answers, replayed
//! by `tests/fuzz_client_corpus.rs`) goes through `serve_connection` over an in-memory duplex,
//! exactly as the `connection` fuzz target does (the harness is the same file), and the output
//! must be well-formed HTTP/1.1 responses in request order, none skipped, nothing after a
//! closing one. No fuzzer or nightly toolchain is needed to keep these inputs passing.

#[path = "../fuzz/common/connection.rs"]
mod connection;

use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

/// The regular files directly inside `dir`.
fn files_in(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
}

/// Whether `path` is an input of the `client_responses` target (its corpus directory or one of
/// its reproducers): a server's answers, which that target's own replay
/// (`tests/fuzz_client_corpus.rs`) feeds to the client.
fn is_client_input(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name == "client_responses" || name.starts_with("client_responses-"))
}

/// Every corpus file of every server-side target, and every kept reproducer of one, sorted.
fn inputs() -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut dirs: Vec<PathBuf> = files_in(&fuzz.join("corpus"))
        .filter(|dir| !is_client_input(dir))
        .collect();
    dirs.push(fuzz.join("artifacts-regressions"));
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| files_in(d))
        .filter(|file| !is_client_input(file))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_gets_well_formed_ordered_responses() {
    let inputs = inputs();
    // Three targets with a dozen hand-written seeds each, at least.
    assert!(inputs.len() >= 36, "corpus went missing: {inputs:?}");
    let failures: Vec<_> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("a readable corpus file");
            catch_unwind(|| connection::check(&data)).is_err()
        })
        .collect();
    assert!(failures.is_empty(), "inputs that failed: {failures:#?}");
}

/// The checker accepts a correct stream and catches the faults it exists for; without this, a
/// checker that accepts anything would make the corpus test pass vacuously.
#[test]
fn the_checker_catches_broken_response_streams() {
    let response = |seq: usize, extra: &str| {
        format!("HTTP/1.1 200 OK\r\nx-seq: {seq}\r\nx-method: GET\r\n{extra}content-length: 6\r\n\r\nGET /\n")
    };
    let ok = [response(0, ""), response(1, "")].concat();
    connection::check_output(ok.as_bytes(), 2);
    let broken = [
        ("a skipped request", response(0, ""), 2),
        (
            "out of order",
            [response(1, ""), response(0, "")].concat(),
            2,
        ),
        (
            "bytes after close",
            [response(0, "connection: close\r\n"), response(1, "")].concat(),
            2,
        ),
        ("a cut body", response(0, "")[..66].to_owned(), 1),
        ("garbage", "HTTP/1.1 2x0 OK\r\n\r\n".to_owned(), 0),
        (
            "a refusal that keeps the connection",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n".to_owned(),
            0,
        ),
    ];
    for (what, output, dispatched) in broken {
        let caught = catch_unwind(|| connection::check_output(output.as_bytes(), dispatched));
        assert!(caught.is_err(), "the checker missed {what}");
    }
}

/// Plain requests through the whole harness: a pipeline with a HEAD in it (no body follows its
/// head) and a POST with a body.
#[test]
fn the_harness_serves_a_plain_pipeline() {
    connection::check(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
          HEAD /items/1 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /items/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    );
}
