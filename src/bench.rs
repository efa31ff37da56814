//! Entry points for the wire-format benchmarks in `benches/`; compiled only with the
//! `bench-internals` feature. They reach the crate-private request parser and response encoder
//! that the public API hides, so each can be timed alone.

use bytes::BytesMut;
use http::{header, HeaderMap, HeaderValue, StatusCode, Version};

use crate::proto::encode::{self, RequestInfo};
use crate::proto::request::Parser;
use crate::Config;

/// A request-head parser with reusable scratch space, as each connection has.
#[derive(Default)]
pub struct HeadParser {
    parser: Parser,
    config: Config,
}

impl HeadParser {
    /// Parses every whole request head in `bytes` (requests without bodies, as a pipelined
    /// batch is) and returns how many there were.
    pub fn parse_all(&mut self, bytes: &[u8]) -> usize {
        let mut buf = BytesMut::from(bytes);
        let c = &self.config;
        let mut count = 0;
        while let Ok(Some(_head)) = self.parser.parse(
            &mut buf,
            c.max_header_bytes,
            c.max_headers,
            c.max_body_bytes,
        ) {
            count += 1;
        }
        count
    }
}

/// Encodes `n` plaintext responses (status line, headers, `Date`, body) into `dst`, as the
/// writer does for a pipelined batch.
pub fn encode_plaintext(n: usize, dst: &mut Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let body = b"Hello, World!";
    let info = RequestInfo {
        version: Version::HTTP_11,
        head_method: false,
    };
    for _ in 0..n {
        let plan = encode::plan(
            StatusCode::OK,
            &headers,
            Some(body.len() as u64),
            info,
            false,
        );
        encode::response_head(dst, StatusCode::OK, &headers, info, plan, None);
        dst.extend_from_slice(body);
    }
}
