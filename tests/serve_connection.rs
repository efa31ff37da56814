//! `serve_connection`: a connection the caller accepted itself loses nothing against `serve`.
//! HTTP/2 is detected (or agreed with `.protocol`), `connect_info` reaches handlers on both
//! protocols, one `ServerStats` counts every connection, and `graceful_shutdown` drains it
//! (bounded by `Config::shutdown_timeout`).
//!
//! Tests that race a shutdown against the client's next bytes run on the current-thread
//! runtime (`#[tokio::test]`'s default): the connection's task runs only while the test
//! awaits, so what the test did before its next await is what the connection sees.

mod common;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use common::{eventually, HANG};
use pipelined::{get, Config, Protocol, Router, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::Notify;
use tokio::time::{timeout, Instant};

/// The HTTP/2 client preface and an empty SETTINGS frame (RFC 9113 §3.4).
const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// - `GET /now`: answers at once;
/// - `GET /wait`: answers once `gate` is notified;
/// - `GET /hang`: never answers.
fn app(gate: &Arc<Notify>) -> Router {
    let gate = Arc::clone(gate);
    Router::new()
        .route("/now", get(|_req| async { "now\n" }))
        .route(
            "/wait",
            get(move |_req| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.notified().await;
                    "waited\n"
                }
            }),
        )
        .route("/hang", get(|_req| std::future::pending::<&str>()))
}

/// An axum app whose `/peer` answers the `ConnectInfo<SocketAddr>` its request carries (a
/// missing one is axum's `500`).
fn peer_app() -> axum::Router {
    axum::Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    )
}

/// Everything the server writes until it closes its side.
async fn read_to_close(client: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    timeout(HANG, client.read_to_end(&mut out))
        .await
        .expect("the server never closed")
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(client: &mut DuplexStream, needle: &str) -> String {
    let mut out = Vec::new();
    while !String::from_utf8_lossy(&out).contains(needle) {
        let mut buf = [0u8; 1024];
        let n = timeout(HANG, client.read(&mut buf))
            .await
            .expect("the answer never came")
            .unwrap();
        assert!(n > 0, "closed before {needle:?}: {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).unwrap()
}

/// Awaits a served connection's task; a connection that does not end is a failure.
async fn ended(served: tokio::task::JoinHandle<()>, what: &str) {
    timeout(HANG, served)
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection did not end"))
        .expect("the connection's task panicked");
}

#[tokio::test]
async fn connect_info_reaches_http1_handlers() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    // What a PROXY-protocol header would have said, not the duplex's (it has none).
    let peer: SocketAddr = "203.0.113.9:4711".parse().unwrap();
    let connection =
        pipelined::serve_connection(server, peer_app()).connect_info(ConnectInfo(peer));
    let served = tokio::spawn(connection.into_future());
    client
        .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n203.0.113.9:4711"), "{answer}");
    drop(client);
    ended(served, "after Connection: close").await;
}

#[tokio::test]
async fn one_server_stats_counts_every_connection_and_its_running_handlers() {
    let gate = Arc::new(Notify::new());
    let stats = ServerStats::new();
    let (mut first, first_server) = tokio::io::duplex(64 * 1024);
    let (second, second_server) = tokio::io::duplex(64 * 1024);
    let serve = |io| {
        let connection = pipelined::serve_connection(io, app(&gate)).stats(&stats);
        tokio::spawn(connection.into_future())
    };
    let served = [serve(first_server), serve(second_server)];
    assert_eq!(stats.open_connections(), 2);
    assert_eq!(stats.running_handlers(), 0);

    first
        .write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("the handler is counted", || stats.running_handlers() == 1).await;
    gate.notify_one();
    let answer = read_until(&mut first, "waited\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    eventually("the handler is uncounted", || stats.running_handlers() == 0).await;
    assert_eq!(stats.open_connections(), 2);

    // The clients' EOF ends both (idle) connections.
    drop((first, second));
    for served in served {
        ended(served, "after the client's EOF").await;
    }
    assert_eq!(stats.open_connections(), 0);
}

#[tokio::test]
async fn graceful_shutdown_answers_the_request_in_flight_last_and_reads_no_more() {
    let gate = Arc::new(Notify::new());
    let stats = ServerStats::new();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = pipelined::serve_connection(server, app(&gate)).stats(&stats);
    let shutdown = connection.shutdown_handle();
    let served = tokio::spawn(connection.into_future());
    client
        .write_all(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("the request is read and running", || {
        stats.running_handlers() == 1
    })
    .await;

    shutdown.graceful_shutdown();
    // Pipelined behind the first, but sent after the shutdown began: never read.
    client
        .write_all(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    gate.notify_one();

    let answer = read_to_close(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nwaited\n"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    // The server lingers for the client's EOF (unread input would reset the connection).
    drop(client);
    ended(served, "after draining").await;
}

#[tokio::test]
async fn an_idle_connection_shuts_down_at_once() {
    let gate = Arc::new(Notify::new());
    // Far beyond HANG: only the shutdown can end these connections in time.
    let config = Config::default().idle_timeout(Duration::from_secs(3600));

    // Before its first byte (still telling HTTP/2 from HTTP/1.1), hyper's way: the future's
    // own graceful_shutdown, then keep polling it.
    let (_fresh, server) = tokio::io::duplex(64 * 1024);
    let connection = pipelined::serve_connection(server, app(&gate)).config(config.clone());
    let connection = connection.into_future();
    connection.graceful_shutdown();
    timeout(HANG, connection)
        .await
        .expect("a fresh connection did not end on shutdown");

    // Idle between keep-alive requests, through the handle.
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = pipelined::serve_connection(server, app(&gate)).config(config);
    let shutdown = connection.shutdown_handle();
    let served = tokio::spawn(connection.into_future());
    client
        .write_all(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut client, "now\n").await;
    shutdown.graceful_shutdown();
    ended(served, "an idle keep-alive connection").await;
    assert_eq!(read_to_close(&mut client).await, "", "nothing more is owed");
}

#[tokio::test]
async fn the_drain_deadline_ends_a_connection_whose_handler_never_finishes() {
    const DRAIN: Duration = Duration::from_millis(200);
    let gate = Arc::new(Notify::new());
    let stats = ServerStats::new();
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = pipelined::serve_connection(server, app(&gate))
        .config(Config::default().shutdown_timeout(Some(DRAIN)))
        .stats(&stats);
    let shutdown = connection.shutdown_handle();
    let served = tokio::spawn(connection.into_future());
    client
        .write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("the handler runs", || stats.running_handlers() == 1).await;

    let began = Instant::now();
    shutdown.graceful_shutdown();
    ended(served, "past the drain deadline").await;
    assert!(began.elapsed() >= DRAIN, "ended before the deadline");
    assert_eq!(read_to_close(&mut client).await, "", "no answer was owed");
    eventually("the handler is cancelled", || stats.running_handlers() == 0).await;
    assert_eq!(stats.open_connections(), 0);
}

#[tokio::test]
async fn protocol_http1_serves_even_an_http2_preface_as_http1() {
    let gate = Arc::new(Notify::new());
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let connection = pipelined::serve_connection(server, app(&gate)).protocol(Protocol::Http1);
    let served = tokio::spawn(connection.into_future());
    client.write_all(PREFACE_AND_SETTINGS).await.unwrap();
    let answer = read_to_close(&mut client).await;
    // The ordered engine's refusal of `PRI * HTTP/2.0`, not an HTTP/2 SETTINGS frame.
    assert!(answer.starts_with("HTTP/1.1 "), "{answer:?}");
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer:?}");
    drop(client);
    ended(served, "after refusing").await;
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn an_accept_loop_of_ones_own_tells_http2_from_http1_and_passes_connect_info() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let connection =
                pipelined::serve_connection(stream, peer_app()).connect_info(ConnectInfo(peer));
            tokio::spawn(connection.into_future());
        }
    });
    let http1 = reqwest::Client::new();
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (client, version) in [
        (http1, reqwest::Version::HTTP_11),
        (http2, reqwest::Version::HTTP_2),
    ] {
        let response = client
            .get(format!("http://{addr}/peer"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), version);
        assert_eq!(response.status(), 200, "{version:?}");
        let peer: SocketAddr = response.text().await.unwrap().parse().unwrap();
        // The client's own address: the server's host, another port.
        assert_eq!(peer.ip(), addr.ip(), "{version:?}");
        assert_ne!(peer.port(), addr.port(), "{version:?}");
    }
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn protocol_http2_serves_http2_without_looking_at_the_bytes() {
    let gate = Arc::new(Notify::new());
    let serve = |io| {
        let connection = pipelined::serve_connection(io, app(&gate)).protocol(Protocol::Http2);
        tokio::spawn(connection.into_future())
    };

    let (client, server) = tokio::io::duplex(64 * 1024);
    let served = serve(server);
    let mut client = raw_h2::Client::open(client).await;
    client.get(1, "/now").await;
    let (status, body) = client.response(1).await;
    assert_eq!(status, raw_h2::STATUS_200);
    assert_eq!(body, b"now\n");
    drop(client);
    ended(served, "after the client closed").await;

    // HTTP/1.1 bytes on a connection agreed to be HTTP/2 get HTTP/2, not an HTTP/1.1 answer
    // (sniffing would have served them).
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let agreed = serve(server);
    client
        .write_all(b"GET /now HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    timeout(HANG, client.read_to_end(&mut out))
        .await
        .expect("the server never closed")
        .unwrap();
    assert!(out.len() >= 9 && out[3] == raw_h2::SETTINGS, "{out:?}");
    ended(agreed, "after a bad preface").await;
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn graceful_shutdown_on_http2_sends_goaway_and_finishes_the_open_stream() {
    let gate = Arc::new(Notify::new());
    let stats = ServerStats::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    // No `.protocol`: the preface is sniffed, as `serve` does.
    let connection = pipelined::serve_connection(server, app(&gate)).stats(&stats);
    let shutdown = connection.shutdown_handle();
    let served = tokio::spawn(connection.into_future());
    let mut client = raw_h2::Client::open(client).await;
    client.get(1, "/wait").await;
    eventually("the stream's handler runs", || {
        stats.running_handlers() == 1
    })
    .await;

    shutdown.graceful_shutdown();
    // GOAWAY first, then the PING hyper waits on before its final GOAWAY (acknowledged by
    // `next`); a stream opened after that acknowledgement is past the final GOAWAY's last
    // stream, and never served.
    let first = client.next_of(raw_h2::GOAWAY).await;
    assert_eq!(
        first.last_stream(),
        0x7fff_ffff,
        "the first GOAWAY announces"
    );
    client.next_of(raw_h2::PING).await;
    client.get(3, "/now").await;
    let last = client.next_of(raw_h2::GOAWAY).await;
    assert_eq!(
        last.last_stream(),
        1,
        "the final GOAWAY keeps the open stream"
    );

    gate.notify_one();
    let (status, body) = client.response(1).await;
    assert_eq!(status, raw_h2::STATUS_200);
    assert_eq!(body, b"waited\n");
    while let Some(frame) = client.next().await {
        assert_ne!(frame.stream, 3, "a stream after the GOAWAY was served");
    }
    ended(served, "after its last stream").await;
    assert_eq!(stats.running_handlers(), 0);
    assert_eq!(stats.open_connections(), 0);
}

/// Just enough of an HTTP/2 client, by hand (RFC 9113 frames, RFC 7541 static-table HPACK),
/// to see the frames a server sends, GOAWAY included, over an in-memory duplex.
#[cfg(feature = "http2")]
mod raw_h2 {
    use super::{HANG, PREFACE_AND_SETTINGS};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::timeout;

    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    /// `:status: 200`, static-table entry 8, as the first byte of a header block.
    pub const STATUS_200: u8 = 0x88;

    /// One frame the server sent.
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    impl Frame {
        /// A GOAWAY's last stream identifier.
        pub fn last_stream(&self) -> u32 {
            let id = &self.payload[..4];
            u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff
        }
    }

    pub struct Client(DuplexStream);

    impl Client {
        /// Sends the preface and SETTINGS.
        pub async fn open(mut io: DuplexStream) -> Self {
            io.write_all(PREFACE_AND_SETTINGS).await.unwrap();
            Client(io)
        }

        /// `GET path` on `stream`, with no body.
        pub async fn get(&mut self, stream: u32, path: &str) {
            // :method GET, :scheme http (static entries 2 and 6), then :path and :authority as
            // literals without indexing whose names are static entries 4 and 1.
            let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
            block.extend_from_slice(path.as_bytes());
            block.extend_from_slice(&[0x01, 1, b'x']);
            self.send(HEADERS, END_STREAM | END_HEADERS, stream, &block)
                .await;
        }

        /// The next frame, SETTINGS and PING acknowledged as a client must; `None` once the
        /// server has closed.
        pub async fn next(&mut self) -> Option<Frame> {
            let mut head = [0u8; 9];
            let read = timeout(HANG, self.0.read_exact(&mut head))
                .await
                .expect("the server hung");
            if read.is_err() {
                return None;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            self.0.read_exact(&mut payload).await.unwrap();
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let frame = Frame {
                kind: head[3],
                flags: head[4],
                stream,
                payload,
            };
            if frame.flags & ACK == 0 {
                match frame.kind {
                    SETTINGS => self.send(SETTINGS, ACK, 0, &[]).await,
                    PING => self.send(PING, ACK, 0, &frame.payload).await,
                    _ => {}
                }
            }
            Some(frame)
        }

        /// The next frame of `kind`, skipping others.
        pub async fn next_of(&mut self, kind: u8) -> Frame {
            loop {
                let frame = self.next().await.expect("closed before the frame came");
                if frame.kind == kind {
                    return frame;
                }
            }
        }

        /// `stream`'s response: the first byte of its header block and its body.
        pub async fn response(&mut self, stream: u32) -> (u8, Vec<u8>) {
            let (mut status, mut body) = (None, Vec::new());
            loop {
                let frame = self.next().await.expect("closed before the response ended");
                if frame.stream != stream {
                    continue;
                }
                match frame.kind {
                    HEADERS => status = frame.payload.first().copied(),
                    DATA => body.extend_from_slice(&frame.payload),
                    _ => continue,
                }
                if frame.flags & END_STREAM != 0 {
                    return (status.expect("a response head"), body);
                }
            }
        }

        async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
            let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
            let mut frame = vec![len[1], len[2], len[3], kind, flags];
            frame.extend_from_slice(&stream.to_be_bytes());
            frame.extend_from_slice(payload);
            // A server that already closed is seen at the next read.
            let _ = self.0.write_all(&frame).await;
        }
    }
}
