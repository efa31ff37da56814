//! The accept loop's own rules, on an in-memory listener whose `accept` the test scripts: an
//! accept error never ends the loop (a peer's is skipped at once, any other pauses it first),
//! and the shutdown signal is heard while every connection permit is taken.

mod common;

use std::future::IntoFuture;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, HANG};
use pipelined::{get, Config, Listener, Router, ServerStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the scripted listener's next `accept` returns.
type Next = io::Result<DuplexStream>;

/// A listener the test feeds, which records when each `accept` returned.
struct Scripted {
    next: mpsc::UnboundedReceiver<Next>,
    returned: Arc<Mutex<Vec<Instant>>>,
}

impl Listener for Scripted {
    type Io = DuplexStream;
    type Addr = ();

    async fn accept(&mut self) -> io::Result<(DuplexStream, ())> {
        let next = self.next.recv().await.expect("the test holds the sender");
        self.returned.lock().unwrap().push(Instant::now());
        next.map(|io| (io, ()))
    }

    fn local_addr(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A server on a [`Scripted`] listener, run on a task of its own.
struct Server {
    script: mpsc::UnboundedSender<Next>,
    returned: Arc<Mutex<Vec<Instant>>>,
    stats: ServerStats,
    stop: oneshot::Sender<()>,
    done: JoinHandle<io::Result<()>>,
}

fn start(config: Config) -> Server {
    let (script, next) = mpsc::unbounded_channel();
    let returned = Arc::default();
    let listener = Scripted {
        next,
        returned: Arc::clone(&returned),
    };
    let app = Router::new().route("/", get(|_req| async { "hi\n" }));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = pipelined::serve(listener, app)
        .config(config)
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
    let stats = server.stats();
    Server {
        script,
        returned,
        stats,
        stop,
        done: tokio::spawn(server.into_future()),
    }
}

impl Server {
    /// Makes the next `accept` fail with `error`.
    fn fail_accept(&self, error: io::Error) {
        self.script.send(Err(error)).unwrap();
    }

    /// Hands the server a new connection; returns the client's end.
    fn connect(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(4096);
        self.script.send(Ok(server)).unwrap();
        client
    }

    /// The time between the first and the second `accept` returning.
    fn between_accepts(&self) -> Duration {
        let returned = self.returned.lock().unwrap();
        assert_eq!(returned.len(), 2, "two accepts returned");
        returned[1] - returned[0]
    }
}

/// Sends one closing request and reads everything the server writes back.
async fn answer(mut client: DuplexStream) -> String {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(HANG, client.read_to_string(&mut answer))
        .await
        .expect("no answer")
        .unwrap();
    answer
}

/// A peer that left before it was accepted says nothing about the server, so the next
/// connection is accepted at once (the clock is paused: no time passes unless someone sleeps).
#[tokio::test(start_paused = true)]
async fn a_peers_accept_error_is_skipped_at_once() {
    let server = start(Config::default());
    server.fail_accept(io::ErrorKind::ConnectionAborted.into());
    let answer = answer(server.connect()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(server.between_accepts(), Duration::ZERO);
}

/// Any other accept error (out of file descriptors, say) does not end the loop either; it
/// pauses it first, so that a failing `accept` does not spin a core.
#[tokio::test(start_paused = true)]
async fn any_other_accept_error_pauses_the_loop_and_does_not_end_it() {
    let server = start(Config::default());
    server.fail_accept(io::Error::other("out of file descriptors"));
    let answer = answer(server.connect()).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(server.between_accepts() >= Duration::from_secs(1));
}

/// With every permit taken by an idle connection, the loop waits for a permit, not for a
/// connection; the signal must still end that wait, or the server would stop only when the
/// idle connection times out (60 s), since connections drain only once the loop has stopped.
#[tokio::test]
async fn shutdown_is_heard_while_every_connection_permit_is_taken() {
    let server = start(Config::default().max_connections(Some(1)));
    let _idle = server.connect();
    let stats = server.stats.clone();
    eventually("the connection is open", move || {
        stats.open_connections() == 1
    })
    .await;
    server.stop.send(()).unwrap();
    tokio::time::timeout(HANG, server.done)
        .await
        .expect("server did not stop")
        .expect("server task panicked")
        .expect("server returned an error");
}
