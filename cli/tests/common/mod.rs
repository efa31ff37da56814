//! Test support for the tests that drive the `pipelined` executable.
#![allow(dead_code)]

pub mod binary;
pub mod load;
pub mod pki;
pub mod scripted;
pub mod tools;
pub mod wire;
