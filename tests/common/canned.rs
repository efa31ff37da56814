//! A server that answers every request head with the same canned response, for measuring the
//! client alone: `benches/client.rs` times it, `tests/client_allocations.rs` counts its
//! allocations (both include this file by path).

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Answers every request head (each `\r\n\r\n`) it reads with `response`, all the answers to
/// one read in one write; its buffers are made once, so it allocates nothing per request and
/// its share of the time stays small.
pub async fn serve(mut io: DuplexStream, response: &'static [u8]) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(response.len() * 64);
    // How much of "\r\n\r\n" the bytes read so far end with: a head may be split across reads.
    let mut matched = 0;
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        for &byte in &buf[..n] {
            matched = match (matched, byte) {
                (0 | 2, b'\r') => matched + 1,
                (1 | 3, b'\r') => 1,
                (1, b'\n') => 2,
                (3, b'\n') => {
                    out.extend_from_slice(response);
                    0
                }
                _ => 0,
            };
        }
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}
