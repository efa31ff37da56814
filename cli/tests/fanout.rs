//! `/fanout` cannot be turned against the server: however many fanouts clients pipeline, the
//! calls in flight stay within one server-wide budget, the rest are refused at once with
//! `503` and `Retry-After`, and descriptors and memory stay bounded.

mod common;

use std::time::Duration;

use common::binary::Binary;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pipelining connections in the attack, and fanouts each one pipelines (issue #12's shape).
const CONNECTIONS: usize = 4;
const FANOUTS: usize = 32;

/// Descriptors fanouts may hold (cli/src/fanout.rs: 2 × (200 in flight + 100 idle)), plus the
/// test's own connections and some slack for the runtime.
const FANOUT_DESCRIPTORS: usize = 600;
const SLACK: usize = 32;

/// What the server may use in all during the attack.
const MAX_RSS_KIB: u64 = 64 * 1024;

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One connection's pipeline: `FANOUTS` full-size fanouts in one write, the last closing.
async fn attack(addr: std::net::SocketAddr) -> Vec<u8> {
    let one = "GET /fanout?n=100&ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n";
    let last = "GET /fanout?n=100&ms=1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let pipeline = format!("{}{last}", one.repeat(FANOUTS - 1));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(pipeline.as_bytes()).await.unwrap();
    let mut answers = Vec::new();
    stream.read_to_end(&mut answers).await.unwrap();
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_fanouts_stay_within_the_budget() {
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let pid = server.pid();
    let baseline = descriptors(pid);
    let attacks: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(attack(server.addr)))
        .collect();

    // While the fanouts run: sample descriptors and memory, and check that a new client is
    // still served.
    let http = reqwest::Client::new();
    let (mut peak_fds, mut peak_rss) = (0, 0);
    while !attacks.iter().all(|a| a.is_finished()) {
        peak_fds = peak_fds.max(descriptors(pid));
        peak_rss = peak_rss.max(rss_kib(pid));
        let fresh = http.get(server.url("/plaintext")).send().await.unwrap();
        assert_eq!(
            fresh.status(),
            200,
            "a new client is served during the attack"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (mut served, mut refused) = (0, 0);
    for attack in attacks {
        let answers = common::wire::parse_all(&attack.await.unwrap());
        assert_eq!(answers.len(), FANOUTS, "every fanout is answered");
        for answer in answers {
            match answer.status {
                200 => served += 1,
                503 => {
                    let retry_after = answer.header("retry-after");
                    assert_eq!(retry_after, Some("1"), "503 says when to retry");
                    refused += 1;
                }
                other => panic!("fanout answered {other}"),
            }
        }
    }
    assert!(served >= 1, "fanouts within the budget are served");
    assert!(refused >= 1, "fanouts beyond the budget are refused");
    let limit = baseline + FANOUT_DESCRIPTORS + SLACK;
    assert!(peak_fds <= limit, "{peak_fds} descriptors, limit {limit}");
    assert!(peak_rss <= MAX_RSS_KIB, "{peak_rss} KiB resident");
    eprintln!("fanout attack: {served} served, {refused} refused, peak {peak_fds} descriptors (baseline {baseline}), peak RSS {peak_rss} KiB");
    server.terminate();
}
