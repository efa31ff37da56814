//! Beyond HTTP/1.1 over TCP: HTTP/2 (cleartext, prior knowledge) on the same port through
//! hyper, and Unix domain sockets through the same engine.

mod common;

use std::sync::Arc;

use common::{get, serve, serve_with, Client};
use pipelined::{get as route, Config, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// `/wait` finishes only once `/release` has run: over HTTP/2 the two are separate streams of
/// one connection, so this only completes if they are served concurrently.
fn app() -> Router {
    let gate = Arc::new(Notify::new());
    let opener = Arc::clone(&gate);
    Router::new()
        .route("/plaintext", route(|_req| async { "Hello, World!" }))
        .route(
            "/wait",
            route(move |_req| {
                let gate = Arc::clone(&gate);
                async move {
                    gate.notified().await;
                    "waited\n"
                }
            }),
        )
        .route(
            "/release",
            route(move |_req| {
                let opener = Arc::clone(&opener);
                async move {
                    opener.notify_one();
                    "released\n"
                }
            }),
        )
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

#[tokio::test]
async fn http2_prior_knowledge_is_served_on_the_same_port() {
    let server = serve(app()).await;
    let base = format!("http://{}", server.addr);
    let client = h2_client();
    let res = client
        .get(format!("{base}/plaintext"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.text().await.unwrap(), "Hello, World!");

    // Two streams on the one HTTP/2 connection, the first waiting for the second.
    let (waited, released) = tokio::join!(
        client.get(format!("{base}/wait")).send(),
        client.get(format!("{base}/release")).send(),
    );
    assert_eq!(waited.unwrap().text().await.unwrap(), "waited\n");
    assert_eq!(released.unwrap().text().await.unwrap(), "released\n");

    // HTTP/1.1 on the same port still goes to the ordered engine.
    let mut raw = Client::connect(server.addr).await;
    raw.send(format!("{}{}", get("/plaintext"), get("/plaintext")))
        .await;
    for response in raw.responses(2).await {
        assert_eq!(response.text(), "Hello, World!");
        assert!(
            response.header("server-timing").is_some(),
            "served by the ordered engine"
        );
    }
    drop((raw, client));
    server.shutdown().await;
}

#[tokio::test]
async fn http2_can_be_turned_off() {
    let server = serve_with(app(), Config::default().http2(false)).await;
    let result = h2_client()
        .get(format!("http://{}/plaintext", server.addr))
        .send()
        .await;
    assert!(
        result.is_err(),
        "an HTTP/1.1-only server cannot answer HTTP/2"
    );
    // The preface is then just a request line with an unsupported version.
    let mut raw = Client::connect(server.addr).await;
    raw.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert_eq!(raw.response().await.status, 505);
    drop(raw);
    server.shutdown().await;
}

#[cfg(unix)]
#[tokio::test]
async fn unix_domain_sockets_get_the_ordered_engine() {
    let dir = std::env::temp_dir().join(format!("pipelined-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("uds.sock");
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = pipelined::serve(listener, app()).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let running = tokio::spawn(std::future::IntoFuture::into_future(server));

    let mut stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    // /wait before /release in one write: concurrent handlers, answers in request order.
    let request = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: uds\r\n\r\n");
    let last = "GET /plaintext HTTP/1.1\r\nHost: uds\r\nConnection: close\r\n\r\n";
    let pipeline = format!("{}{}{last}", request("/wait"), request("/release"));
    stream.write_all(pipeline.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let waited = out.find("waited\n").expect("first answer");
    let released = out.find("released\n").expect("second answer");
    let hello = out.find("Hello, World!").expect("third answer");
    assert!(waited < released && released < hello, "{out}");
    drop(stream);

    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// h2load, a real HTTP/2 and HTTP/1.1-pipelining client, against both protocols on one port.
/// CI installs it (`.ci/run`); elsewhere the test says it was skipped rather than pretend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_drives_http2_and_pipelined_http1_on_one_port() {
    if std::process::Command::new("h2load")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have h2load (.ci/run installs it)"
        );
        eprintln!("skipped: h2load is not installed (apt-get install nghttp2-client)");
        return;
    }
    let server = serve(app()).await;
    let url = format!("http://{}/plaintext", server.addr);
    for protocol in [&["--h1"][..], &[][..]] {
        let out = tokio::process::Command::new("h2load")
            .args(protocol)
            .args(["-n", "2000", "-c", "4", "-m", "16", &url])
            .output()
            .await
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            report.contains("2000 succeeded, 0 failed, 0 errored"),
            "h2load {protocol:?}:\n{report}"
        );
    }
    server.shutdown().await;
}
