//! The client against an arbitrary server: 1–8 pipelined GET/HEAD requests through
//! `pipelined::client` over an in-memory duplex, answered with the input whole and in small
//! reads; every request gets one outcome in the order the guarantees allow, the same either
//! way. The harness is shared with `tests/fuzz_client_corpus.rs`, which replays the corpus
//! under `cargo test`.
#![no_main]

#[path = "../common/client.rs"]
mod client;

libfuzzer_sys::fuzz_target!(|data: &[u8]| client::check(data));
