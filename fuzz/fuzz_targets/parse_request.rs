//! Request heads: arbitrary bytes through `Parser::parse`, as a pipeline, whole and in pieces.
//! The invariants are in `pipelined::fuzz::parse_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pipelined::fuzz::parse_request(data));
