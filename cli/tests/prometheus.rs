//! A real Prometheus scrapes the running binary every second while the test sends pipelined
//! load; its HTTP API must then see the load: the exact request count, a request rate in line
//! with what was sent, and a p99 head-of-line wait of the size the load forces; requests in
//! flight while they run and every answer by the status written, the server's own refusals
//! included. Skipped, saying so, where `prometheus` is not installed; CI (`.ci/run`) installs
//! it.

mod common;

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::binary::Binary;
use common::tools::installed;
use common::wire::{get, Client};

/// What each connection writes at once: a 20 ms request, then 15 that finish at once and
/// wait behind it. Their head-of-line wait is ~20 ms by construction.
const BATCH: [&str; 16] = [
    "/delay/20",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
    "/plaintext",
];

/// How long load is sent: several scrapes' worth, well inside the test's ~30 s budget.
const LOAD: Duration = Duration::from_secs(6);

/// Bound on waiting for Prometheus to start or to have scraped: only turns a hang into a
/// failure.
const DEADLINE: Duration = Duration::from_secs(30);

/// A Prometheus process with its own config and storage, stopped and removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    api: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `target` every second.
    fn start(binary: &Path, target: SocketAddr) -> Prometheus {
        let listen = free_port();
        // One directory per Prometheus: the tests of this file run at once.
        let dir = format!(
            "pipelined-prometheus-{}-{}",
            std::process::id(),
            listen.port()
        );
        let dir = std::env::temp_dir().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, scrape_config(target)).unwrap();
        let log = File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            dir,
            api: format!("http://{listen}/api/v1"),
            http: reqwest::Client::new(),
        }
    }

    /// The single value of instant query `promql` at `at` (Unix seconds; now if `None`), or
    /// `None` while it has no result or Prometheus is still starting.
    async fn value(&self, promql: &str, at: Option<f64>) -> Option<f64> {
        let mut query = vec![("query", promql.to_owned())];
        query.extend(at.map(|t| ("time", format!("{t:.3}"))));
        let res = self.http.get(format!("{}/query", self.api)).query(&query);
        let res = res.send().await.ok()?;
        if res.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            // Still starting (its storage not open yet): asked again by `wait_for`.
            return None;
        }
        let body = res.text().await.ok()?;
        let body: serde_json::Value = serde_json::from_str(&body).expect("the API answers JSON");
        assert_eq!(body["status"], "success", "{promql}: {body}");
        let value = &body["data"]["result"].get(0)?["value"][1];
        value.as_str()?.parse().ok()
    }

    /// Polls `promql` until `accept` holds for its value; the deadline only bounds a hang.
    async fn wait_for(&self, promql: &str, accept: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(value) = self.value(promql, None).await.filter(|v| accept(*v)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never answered {promql} as expected; its log:\n{}",
                std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Prometheus' config: the binary alone, scraped and evaluated every second.
fn scrape_config(target: SocketAddr) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: pipelined\n    static_configs:\n      \
         - targets: ['{target}']\n"
    )
}

/// A loopback address nothing listens on right now.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sends `BATCH` on `connections` connections, batch after batch, for `LOAD`; returns the
/// number of requests answered 200.
async fn load(addr: SocketAddr, connections: usize) -> usize {
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < LOAD {
        let statuses = common::load::pipelined(addr, connections, 5, &BATCH).await;
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        answered += statuses.len();
    }
    answered
}

#[tokio::test]
async fn prometheus_scrapes_what_pipelined_load_did() {
    let Some(prometheus) = installed("prometheus", "prometheus") else {
        return;
    };
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let prometheus = Prometheus::start(&prometheus, server.addr);
    prometheus
        .wait_for("up{job=\"pipelined\"}", |up| up == 1.0)
        .await;

    let started = unix_now();
    let answered = load(server.addr, 4).await;
    let ended = unix_now();
    let plaintext = answered * 15 / 16;

    // The counter Prometheus stored is exactly what was sent, once a scrape after the load
    // is in.
    let count = "sum(pipelined_requests_total{route=\"/plaintext\",status=\"200\"})";
    prometheus.wait_for(count, |n| n == plaintext as f64).await;

    // Mid-load, the request rate is what was sent per second, give or take the unevenness
    // of batches and scrape times.
    let middle = (started + ended) / 2.0;
    let sent_per_second = answered as f64 / (ended - started);
    let rate = prometheus
        .value("sum(rate(pipelined_requests_total[3s]))", Some(middle))
        .await
        .expect("a request rate mid-load");
    assert!(
        rate > sent_per_second / 3.0 && rate < sent_per_second * 3.0,
        "rate {rate}/s, sent {sent_per_second}/s"
    );

    // 15 of every 16 responses waited ~20 ms behind /delay/20: the p99 is in the buckets
    // around it (10 ms to 100 ms leaves room for a loaded machine), not near zero.
    let p99 = "histogram_quantile(0.99, sum by (le) \
               (rate(pipelined_head_of_line_wait_seconds_bucket[3s])))";
    let p99 = prometheus
        .value(p99, Some(middle))
        .await
        .expect("a head-of-line p99 mid-load");
    assert!((0.01..=0.1).contains(&p99), "p99 head-of-line wait {p99} s");
    drop(prometheus);
    server.terminate();
}

/// Requests held by `/delay/5000` while Prometheus scrapes: the in-flight gauge it stores reads
/// them all (polled until it does, bounded by their delay), and zero once they are answered.
/// Then each answer the server makes itself, besides the router's, is counted by the status
/// written: a request timeout (503), 404, a malformed head (400), too many headers (431), an
/// announced body over the limit (413), an unknown expectation (417), a head too slow (408).
#[tokio::test]
async fn prometheus_sees_requests_in_flight_and_every_status() {
    let Some(prometheus) = installed("prometheus", "prometheus") else {
        return;
    };
    let args = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--request-timeout",
        "6",
        "--header-read-timeout",
        "1",
    ];
    let server = Binary::start(&args, &[]);
    let prometheus = Prometheus::start(&prometheus, server.addr);
    prometheus
        .wait_for("up{job=\"pipelined\"}", |up| up == 1.0)
        .await;

    // 20 requests that answer after 5 s and one that the request timeout answers (503) at 6 s.
    let mut running = Vec::new();
    for path in ["/delay/5000"; 20].into_iter().chain(["/delay/30000"]) {
        let mut client = Client::connect(server.addr).await;
        client.send(&get(path)).await;
        running.push(client);
    }
    prometheus
        .wait_for("sum(pipelined_in_flight_requests)", |n| n == 21.0)
        .await;

    let many_headers: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let refused = [
        (get("/nope"), 404),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n".to_owned(),
            400,
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
        ),
        (
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n".to_owned(),
            413,
        ),
        (
            "GET / HTTP/1.1\r\nHost: x\r\nExpect: later\r\n\r\n".to_owned(),
            417,
        ),
        ("GET / HTTP/1.1\r\nHo".to_owned(), 408),
    ];
    for (request, status) in &refused {
        let mut client = Client::connect(server.addr).await;
        client.send(request).await;
        assert_eq!(client.responses(1).await[0].status, *status, "{request:?}");
    }
    let mut statuses = Vec::new();
    for client in &mut running {
        statuses.push(client.responses(1).await[0].status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [vec![200; 20], vec![503]].concat());

    prometheus
        .wait_for("sum(pipelined_in_flight_requests)", |n| n == 0.0)
        .await;
    let delay = |status: u16| {
        format!("sum(pipelined_requests_total{{route=\"/delay/{{ms}}\",status=\"{status}\"}})")
    };
    prometheus.wait_for(&delay(200), |n| n == 20.0).await;
    prometheus.wait_for(&delay(503), |n| n == 1.0).await;
    for (_, status) in refused {
        let count = format!("sum(pipelined_requests_total{{status=\"{status}\"}})");
        prometheus.wait_for(&count, |n| n == 1.0).await;
    }
    drop(prometheus);
    server.terminate();
}
