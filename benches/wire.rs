//! The wire format alone: parsing a pipelined batch of request heads, and encoding a batch of
//! responses. Run with `cargo bench --features bench-internals --bench wire`.

use pipelined::bench::{encode_plaintext, HeadParser};

fn main() {
    divan::main();
}

/// A TechEmpower-style plaintext request, as wrk and h2load send it.
const REQUEST: &str = "GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: text/plain\r\nConnection: keep-alive\r\n\r\n";

/// A browser-like request with a dozen headers.
const BROWSER: &str = "GET /items/42?sort=asc HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-GB,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\nCookie: session=abcdef0123456789; theme=dark\r\nReferer: https://example.com/items\r\nCache-Control: no-cache\r\nPragma: no-cache\r\nSec-Fetch-Mode: navigate\r\nUpgrade-Insecure-Requests: 1\r\n\r\n";

#[divan::bench(args = [1, 16, 256])]
fn parse_plaintext_batch(bencher: divan::Bencher, depth: usize) {
    let batch = REQUEST.repeat(depth);
    let mut parser = HeadParser::default();
    bencher
        .counter(divan::counter::ItemsCount::new(depth))
        .bench_local(|| assert_eq!(parser.parse_all(divan::black_box(batch.as_bytes())), depth));
}

#[divan::bench(args = [16])]
fn parse_browser_batch(bencher: divan::Bencher, depth: usize) {
    let batch = BROWSER.repeat(depth);
    let mut parser = HeadParser::default();
    bencher
        .counter(divan::counter::ItemsCount::new(depth))
        .bench_local(|| assert_eq!(parser.parse_all(divan::black_box(batch.as_bytes())), depth));
}

#[divan::bench(args = [1, 16, 256])]
fn encode_plaintext_batch(bencher: divan::Bencher, depth: usize) {
    let mut buf = Vec::with_capacity(256 * depth);
    bencher
        .counter(divan::counter::ItemsCount::new(depth))
        .bench_local(|| {
            buf.clear();
            encode_plaintext(divan::black_box(depth), &mut buf);
        });
}
