//! Connection and server lifecycle: graceful shutdown loses no accepted request, the drain
//! deadline bounds it, the connection limit holds, and abrupt disconnects leak nothing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, get, Client, HANG};
use pipelined::{get as route_get, Config, Router, ServerStats};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// Routes: `/fast`; `/held` waits for `release`, counting starts in `started`; `/never`.
fn app(release: Arc<Notify>, started: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/fast", route_get(|_req| async { "fast\n" }))
        .route(
            "/held",
            route_get(move |_req| {
                let (release, started) = (Arc::clone(&release), Arc::clone(&started));
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    "held\n"
                }
            }),
        )
        .route(
            "/never",
            route_get(|_req| async {
                std::future::pending::<()>().await;
                "unreachable\n"
            }),
        )
}

struct Running {
    addr: std::net::SocketAddr,
    stats: ServerStats,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(app: Router, config: Config) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = pipelined::serve(listener, app)
        .config(config)
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
    let addr = server.local_addr().unwrap();
    let stats = server.stats();
    let done = tokio::spawn(std::future::IntoFuture::into_future(server));
    Running {
        addr,
        stats,
        stop,
        done,
    }
}

/// Waits for the server task to return `Ok` (the hang limit turns a stuck shutdown into a
/// failure).
async fn finished(done: tokio::task::JoinHandle<std::io::Result<()>>) {
    let returned = tokio::time::timeout(HANG, done)
        .await
        .expect("server did not stop");
    returned
        .expect("server task panicked")
        .expect("server returned an error");
}

#[tokio::test]
async fn graceful_shutdown_answers_every_request_already_read() {
    let (release, started) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
    let server = start(
        app(Arc::clone(&release), Arc::clone(&started)),
        Config::default(),
    )
    .await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}{}", get("/fast"), get("/held"), get("/fast")))
        .await;
    let started_probe = Arc::clone(&started);
    eventually("the held handler started", move || {
        started_probe.load(Ordering::SeqCst) == 1
    })
    .await;
    server.stop.send(()).unwrap();
    // The listener is closed once shutdown begins; wait until a new connection is refused.
    let addr = server.addr;
    let deadline = tokio::time::Instant::now() + HANG;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release.notify_one();
    let responses = client.responses(3).await;
    let bodies: Vec<String> = responses.iter().map(|r| r.text()).collect();
    assert_eq!(bodies, ["fast\n", "held\n", "fast\n"]);
    assert!(
        responses[2].closes(),
        "the last answer says the connection closes"
    );
    assert!(client.is_closed().await);
    drop(client);
    finished(server.done).await;
}

#[tokio::test]
async fn the_drain_deadline_closes_connections_stuck_in_a_handler() {
    let config = Config::default().shutdown_timeout(Some(Duration::from_millis(200)));
    let server = start(app(Arc::default(), Arc::default()), config).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send(format!("{}{}", get("/fast"), get("/never")))
        .await;
    assert_eq!(client.response().await.text(), "fast\n");
    let stats = server.stats.clone();
    eventually("the stuck handler runs", move || {
        stats.running_handlers() == 1
    })
    .await;
    server.stop.send(()).unwrap();
    finished(server.done).await;
    assert!(client.is_closed().await, "the stuck connection was closed");
    assert_eq!(server.stats.open_connections(), 0);
    assert_eq!(
        server.stats.running_handlers(),
        0,
        "the stuck handler was cancelled"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let config = Config::default().max_connections(Some(1));
    let server = start(app(Arc::default(), Arc::default()), config).await;
    let mut first = Client::connect(server.addr).await;
    first.send(get("/fast")).await;
    assert_eq!(first.response().await.status, 200);
    let mut second = Client::connect(server.addr).await;
    second.send(get("/fast")).await;
    // While the first connection is open the second is not served. Proving an absence needs
    // a bound: 300 ms is far longer than an answer on loopback takes.
    let early = tokio::time::timeout(Duration::from_millis(300), second.try_response(false)).await;
    assert!(
        early.is_err(),
        "the second connection was served beyond the limit"
    );
    assert_eq!(server.stats.open_connections(), 1);
    first.send(get("/fast")).await;
    assert_eq!(
        first.response().await.status,
        200,
        "the first is unaffected"
    );
    drop(first);
    assert_eq!(second.response().await.text(), "fast\n");
    drop(second);
    server.stop.send(()).unwrap();
    finished(server.done).await;
}

#[tokio::test]
async fn a_thousand_abrupt_disconnects_leave_no_connection_or_handler_behind() {
    let server = start(app(Arc::default(), Arc::default()), Config::default()).await;
    let mut clients = Vec::new();
    for _ in 0..1000 {
        let mut client = Client::connect(server.addr).await;
        client
            .send(format!("{}{}", get("/fast"), get("/never")))
            .await;
        clients.push(client);
    }
    let stats = server.stats.clone();
    eventually("every /never handler runs", move || {
        stats.running_handlers() == 1000
    })
    .await;
    assert_eq!(server.stats.open_connections(), 1000);
    for client in clients {
        // Linger 0: close with a reset, the abrupt way.
        client.stream.set_zero_linger().unwrap();
        drop(client);
    }
    let stats = server.stats.clone();
    eventually("every connection and handler is gone", move || {
        stats.open_connections() == 0 && stats.running_handlers() == 0
    })
    .await;
    server.stop.send(()).unwrap();
    finished(server.done).await;
}
