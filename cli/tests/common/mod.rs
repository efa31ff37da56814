//! Test support for the tests that drive the `pipelined` executable.
#![allow(dead_code)]

pub mod binary;
