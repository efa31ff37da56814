//! Header values built without re-validation (`proto::trusted`, the crate's one `unsafe`
//! module) from arbitrary heads httparse accepts, held against `http`'s checked constructor.
//! The invariants are in `pipelined::fuzz::trusted`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pipelined::fuzz::trusted(data));
