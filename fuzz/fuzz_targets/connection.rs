//! A whole connection: arbitrary bytes into `pipelined::serve_connection` over an in-memory
//! duplex; the output must be well-formed HTTP/1.1 responses, in request order, none skipped.
//! The harness is shared with `tests/fuzz_corpus.rs`, which replays the corpus under
//! `cargo test`.
#![no_main]

#[path = "../common/connection.rs"]
mod connection;

libfuzzer_sys::fuzz_target!(|data: &[u8]| connection::check(data));
