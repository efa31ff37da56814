// raw-limit: the ceiling row of loadtest/compare.sh, not an HTTP server. It answers every
// `\r\n\r\n` it reads with one canned /plaintext response, so its throughput is what the
// kernel and tokio leave for pipelined plaintext on this machine. Never use it for anything
// but that (it does not parse requests, and it answers every path the same).
// usage: raw-limit [127.0.0.1:PORT]
// Vendored from ../shared/bench/peers so loadtest/ needs nothing outside the repository.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\nServer: L\r\nDate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\nHello, World!";

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9003".into());
    let listener = TcpListener::bind(&addr).await.unwrap();
    eprintln!("raw-limit on {addr}");
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut carry = 0usize; // bytes of a partial terminator match carried over
            let mut out = Vec::with_capacity(65536);
            loop {
                let n = match s.read(&mut buf[carry..]).await { Ok(0) | Err(_) => return, Ok(n) => n };
                let data = &buf[..carry + n];
                let mut count = 0;
                let mut last = 0;
                for i in memchr::memmem::find_iter(data, b"\r\n\r\n") { count += 1; last = i + 4; }
                let rest = data.len() - last;
                buf.copy_within(last..last + rest, 0);
                carry = rest;
                out.clear();
                for _ in 0..count { out.extend_from_slice(RESP); }
                if s.write_all(&out).await.is_err() { return; }
            }
        });
    }
}
