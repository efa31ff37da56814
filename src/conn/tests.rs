//! The write side batches: every response already finished goes out in one write, and a
//! finished response is written before the connection waits on an unfinished one.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};

use super::serve;
use crate::shared::Shared;
use crate::shutdown::{Phase, Shutdown};
use crate::stats::ServerStats;
use crate::{get, Config, Router};

/// A socket whose input is given up front (then EOF) and whose every write call is recorded.
#[derive(Clone, Default)]
struct Recorder {
    input: Arc<Mutex<Vec<u8>>>,
    writes: Arc<Mutex<Vec<Vec<u8>>>>,
    wrote: Arc<Notify>,
}

impl AsyncRead for Recorder {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut input = self.input.lock().unwrap();
        let n = input.len().min(buf.remaining());
        buf.put_slice(&input[..n]);
        input.drain(..n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes.lock().unwrap().push(buf.to_vec());
        self.wrote.notify_one();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn count(bytes: &[u8], needle: &str) -> usize {
    String::from_utf8_lossy(bytes).matches(needle).count()
}

/// Serves `input` on a recorded socket with `app`; returns the socket's record.
fn start(app: Router, input: &str) -> (Recorder, tokio::task::JoinHandle<()>) {
    let io = Recorder::default();
    io.input.lock().unwrap().extend_from_slice(input.as_bytes());
    let served = io.clone();
    let task = tokio::spawn(async move {
        let config = Config::default();
        let (_phase_tx, phase) = watch::channel(Phase::Running);
        let shared = Shared {
            config: &config,
            shutdown: Shutdown::new(phase),
            stats: ServerStats::default(),
            connect_info: None,
        };
        serve(served, app, shared, BytesMut::new(), None).await;
    });
    (io, task)
}

#[tokio::test]
async fn finished_responses_leave_in_one_write() {
    let app = Router::new().route("/", get(|_req| async { "ready" }));
    let (io, task) = start(app, &"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16));
    task.await.unwrap();
    let writes = io.writes.lock().unwrap();
    assert_eq!(writes.len(), 1, "16 finished responses, one write");
    assert_eq!(count(&writes[0], "HTTP/1.1 200 OK"), 16);
}

#[tokio::test]
async fn finished_responses_are_written_before_waiting_on_a_pending_one() {
    let release = Arc::new(Notify::new());
    let wait = Arc::clone(&release);
    let app = Router::new()
        .route("/ready/{n}", get(|_req| async { "ready" }))
        .route(
            "/pending",
            get(move |_req| {
                let wait = Arc::clone(&wait);
                async move {
                    wait.notified().await;
                    "second"
                }
            }),
        );
    let wire = "GET /ready/1 HTTP/1.1\r\nHost: x\r\n\r\n\
                GET /pending HTTP/1.1\r\nHost: x\r\n\r\n\
                GET /ready/3 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (io, task) = start(app, wire);
    io.wrote.notified().await;
    {
        let writes = io.writes.lock().unwrap();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            count(&writes[0], "ready"),
            1,
            "the third waits for the second"
        );
    }
    release.notify_one();
    task.await.unwrap();
    let writes = io.writes.lock().unwrap();
    assert_eq!(writes.len(), 2, "second and third leave together");
    let text = String::from_utf8_lossy(&writes[1]).into_owned();
    assert!(text.find("second").unwrap() < text.find("ready").unwrap());
}
