//! Request bodies: arbitrary bytes through the chunked / Content-Length `Decoder`, whole and
//! split at data-chosen points. The invariants are in `pipelined::fuzz::decode_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pipelined::fuzz::decode_body(data));
