//! The `pipelined` binary: its command line, its demo routes through an ordinary HTTP client
//! (reqwest), and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::binary::Binary;

#[tokio::test]
async fn demo_routes_answer_ordinary_requests() {
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let http = reqwest::Client::new();

    let res = http.get(server.url("/plaintext")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert!(res.headers().contains_key("date"));
    assert_eq!(res.headers()["server"], "pipelined");
    assert_eq!(res.text().await.unwrap(), "Hello, World!");

    let index = http.get(server.url("/")).send().await.unwrap();
    let index = index.text().await.unwrap();
    for route in [
        "/plaintext",
        "/delay/{ms}",
        "/echo",
        "/work/{n}",
        "/healthz",
        "/metrics",
    ] {
        assert!(index.contains(route), "index lists {route}: {index}");
    }

    let res = http.get(server.url("/delay/30")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("/delay/30"));
    for bad in ["/delay/60001", "/delay/-1", "/delay/soon"] {
        let res = http.get(server.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }

    let body: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let res = http
        .post(server.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap(), body);

    let res = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);

    let res = http
        .get(server.url("/fanout?n=8&ms=20"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.starts_with("8 of 8 calls to /delay/20 answered"),
        "{text}"
    );
    for bad in [
        "/fanout",
        "/fanout?n=0&ms=1",
        "/fanout?n=101&ms=1",
        "/fanout?n=2&ms=10001",
    ] {
        let res = http.get(server.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }

    let res = http.get(server.url("/work/1000")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().starts_with("1000 rounds: "));
    for bad in ["/work/0", "/work/100000001", "/work/lots"] {
        let res = http.get(server.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }

    let res = http.get(server.url("/no-such-route")).send().await.unwrap();
    assert_eq!(res.status(), 404);

    let res = http.post(server.url("/plaintext")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD, OPTIONS");

    server.terminate();
}

/// `--engine hyper` serves the same routes on hyper's own (serial) connection.
#[tokio::test]
async fn the_hyper_engine_serves_the_same_routes() {
    let server = Binary::start(
        &["serve", "--engine", "hyper", "--bind", "127.0.0.1:0"],
        &[],
    );
    let http = reqwest::Client::new();
    let res = http.get(server.url("/plaintext")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "Hello, World!");
    let res = http.get(server.url("/delay/5")).send().await.unwrap();
    assert!(res.text().await.unwrap().contains("/delay/5"));
    let body = vec![7u8; 100_000];
    let res = http
        .post(server.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap(), body);
    let res = http.post(server.url("/plaintext")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    server.terminate();
}

#[tokio::test]
async fn bind_address_comes_from_the_environment() {
    let server = Binary::start(&[], &[("PIPELINED_BIND", "127.0.0.1:0")]);
    let res = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(res.status(), 200);
    server.terminate();
}

#[test]
fn bad_arguments_get_a_clear_message() {
    let cases: [(&[&str], &str); 6] = [
        (&["serve", "--max-pipeline-depth", "4"], "16"),
        (
            &["serve", "--bind", "not-an-address"],
            "invalid socket address",
        ),
        (
            &["serve", "--header-read-timeout", "0"],
            "header-read-timeout",
        ),
        (&["serve", "--workers", "0"], "workers"),
        (&["serve", "--engine", "nginx"], "ordered, hyper"),
        (&["serve", "--half-close", "maybe"], "answer, cancel"),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_pipelined"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// `--version` names the executable, whatever the package holding it is called.
#[test]
fn version_names_the_executable() {
    let out = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        concat!("pipelined ", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_address_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .args(["serve", "--bind", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

/// `--log-format json` with `RUST_LOG=debug`: one JSON object per line, and each answered
/// request logged in its request span (sequence number, method, path, status, handler time,
/// head-of-line wait) inside its connection span.
#[tokio::test]
async fn json_logs_carry_connection_and_request_spans() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "pipelined=debug,info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().unwrap().unwrap()).expect("a JSON log line");
    let message = first["fields"]["message"].as_str().unwrap().to_owned();
    let addr = message
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let pipeline = "GET /delay/50 HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    std::io::Write::write_all(&mut stream, pipeline.as_bytes()).unwrap();
    let mut answers = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answers).unwrap();
    let mut answered = Vec::new();
    for line in lines.map_while(Result::ok) {
        let event: serde_json::Value = serde_json::from_str(&line).expect("every line is JSON");
        if event["fields"]["message"] == "answered" {
            answered.push(event);
            if answered.len() == 2 {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answered.len(), 2, "{answered:?}");
    for (i, (event, path)) in answered.iter().zip(["/delay/50", "/plaintext"]).enumerate() {
        let span = &event["span"];
        assert_eq!(span["name"], "http.request");
        assert_eq!(span["pipeline.seq"], i as u64 + 1);
        assert_eq!(span["http.request.method"], "GET");
        assert_eq!(span["url.path"], path);
        assert_eq!(span["network.protocol.version"], "1.1");
        assert_eq!(span["http.response.status_code"], 200);
        let connection = &event["spans"][0];
        assert_eq!(connection["name"], "http.connection");
        assert!(connection["client.address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"));
    }
    let first_handler = answered[0]["span"]["pipeline.handler_ms"].as_f64().unwrap();
    let second_wait = answered[1]["span"]["pipeline.queue_ms"].as_f64().unwrap();
    assert!(
        first_handler >= 50.0,
        "the delay handler ran {first_handler} ms"
    );
    assert!(
        second_wait > 0.0,
        "the plaintext answer waited behind the delay"
    );
}

/// `/work` sheds load: 128 pipelined CPU-bound requests over 4 connections overflow the
/// pool's queue (64 jobs, one worker per core), so some answers are `503`, in their slots,
/// while the rest are computed; every request still gets its answer, in order.
#[tokio::test]
async fn the_work_pool_answers_503_when_its_queue_is_full() {
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let addr = server.addr;
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let one = "GET /work/100000 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(31);
            let last = "GET /work/100000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            tokio::io::AsyncWriteExt::write_all(&mut stream, format!("{one}{last}").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut out)
                .await
                .unwrap();
            out
        }));
    }
    let (mut computed, mut shed) = (0, 0);
    for connection in connections {
        let out = connection.await.unwrap();
        let statuses: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("HTTP/1.1 "))
            .map(|l| &l[9..12])
            .collect();
        assert_eq!(statuses.len(), 32, "every request answered");
        assert!(
            statuses.iter().all(|s| *s == "200" || *s == "503"),
            "{statuses:?}"
        );
        computed += out.matches("100000 rounds: ").count();
        shed += out.matches("work queue full").count();
    }
    assert_eq!(computed + shed, 128);
    assert!(shed > 0, "128 jobs fit in a queue of 64");
    assert!(computed >= 2, "the pool kept working while shedding");
    server.terminate();
}

/// `/metrics`: Prometheus text with requests by method, matched route (never the raw path)
/// and status, the engine's handler-time, head-of-line-wait and pipeline-depth histograms,
/// and the open-connection and in-flight gauges.
#[tokio::test]
async fn metrics_count_requests_by_matched_route() {
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let pipeline = "GET /delay/100 HTTP/1.1\r\nHost: x\r\n\r\nGET /delay/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, pipeline.as_bytes())
        .await
        .unwrap();
    let mut answers = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answers)
        .await
        .unwrap();
    assert_eq!(answers.matches("HTTP/1.1 ").count(), 3);

    let res = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    let line = |needle: &[&str]| {
        text.lines()
            .find(|l| !l.starts_with('#') && needle.iter().all(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    let delay = line(&[
        "pipelined_requests_total{",
        "route=\"/delay/{ms}\"",
        "status=\"200\"",
    ]);
    assert!(
        delay.contains("method=\"GET\"") && delay.ends_with(" 2"),
        "{delay}"
    );
    line(&[
        "pipelined_requests_total{",
        "route=\"unmatched\"",
        "status=\"404\"",
    ]);
    assert!(
        !text.contains("route=\"/delay/100\""),
        "raw paths must not become labels"
    );
    for metric in [
        "pipelined_handler_seconds_bucket",
        "pipelined_head_of_line_wait_seconds_bucket",
        "pipelined_pipeline_depth_bucket",
        "pipelined_open_connections",
        "pipelined_in_flight_requests",
    ] {
        line(&[metric]);
    }
    // The second delay (1 ms) waited behind the first (100 ms): a head-of-line wait of tens
    // of milliseconds was observed, so the 0.01 s bucket cannot hold every sample.
    let waits = line(&["pipelined_head_of_line_wait_seconds_count"]);
    let le = line(&["pipelined_head_of_line_wait_seconds_bucket{le=\"0.01\"}"]);
    let count = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    assert!(count(&le) < count(&waits), "{le} / {waits}");
    drop(stream);
    server.terminate();
}

/// `--no-metrics` leaves the recorder out: no `/metrics` route (404), and the index does not
/// list it; everything else served.
#[tokio::test]
async fn no_metrics_means_no_metrics_route() {
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0", "--no-metrics"], &[]);
    let res = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(res.status(), 404);
    let index = reqwest::get(server.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        index.contains("/plaintext") && !index.contains("/metrics"),
        "{index}"
    );
    let res = reqwest::get(server.url("/plaintext")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "Hello, World!");
    server.terminate();
}

/// SIGTERM with HTTP/1.1 clients idle on keep-alive connections (each had its answer): the
/// process exits cleanly within half a second, though its drain deadline is 30 s. The clients
/// never close, so nothing here waits on them; idle connections are closed, not lingered on.
#[tokio::test]
async fn sigterm_exits_promptly_with_idle_keep_alive_clients() {
    let binary = Binary::start(&["--bind", "127.0.0.1:0"], &[]);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = common::wire::Client::connect(binary.addr).await;
        client.send(&common::wire::get("/plaintext")).await;
        let response = client.responses(1).await.remove(0);
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("connection"),
            None,
            "the connection stays open"
        );
        clients.push(client);
    }
    let began = std::time::Instant::now();
    tokio::task::spawn_blocking(move || binary.terminate())
        .await
        .unwrap();
    let took = began.elapsed();
    assert!(
        took < std::time::Duration::from_millis(500),
        "exit took {took:?}"
    );
    drop(clients);
}

/// Sends one `/delay/{ms}` request, closes the sending side, and returns what arrives until
/// the server closes.
async fn half_closed_request(server: &Binary, ms: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET /delay/{ms} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

/// `--half-close answer` (the default) still answers a client that half-closed after sending;
/// `--half-close cancel` takes its EOF as gone: the connection ends with nothing written, long
/// before the 30 s handler would have finished (the read would otherwise wait for it).
#[tokio::test]
async fn half_close_answers_by_default_and_cancels_when_asked() {
    let answering = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let received = half_closed_request(&answering, 50).await;
    let answers = common::wire::parse_all(&received);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 200);
    answering.terminate();

    let args = ["serve", "--bind", "127.0.0.1:0", "--half-close", "cancel"];
    let cancelling = Binary::start(&args, &[]);
    assert_eq!(half_closed_request(&cancelling, 30_000).await, b"");
    cancelling.terminate();
}
