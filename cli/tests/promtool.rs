//! The binary's live `/metrics`, after pipelined traffic, passes Prometheus' own linter
//! (`promtool check metrics`: naming, units, HELP and TYPE). Skipped, saying so, where
//! promtool is not installed; CI (`.ci/run`) installs it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::binary::Binary;
use common::tools::installed;

#[tokio::test]
async fn live_metrics_pass_promtool_check_metrics() {
    let Some(promtool) = installed("promtool", "prometheus") else {
        return;
    };
    let server = Binary::start(&["serve", "--bind", "127.0.0.1:0"], &[]);
    let paths = ["/plaintext", "/delay/5", "/nope", "/delay/x"];
    let statuses = common::load::pipelined(server.addr, 2, 5, &paths).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 20);
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Every family is there to be checked, and the route label is the matched pattern.
    for family in [
        "pipelined_requests_total{method=\"GET\",route=\"/delay/{ms}\",status=\"400\"} 10",
        "# TYPE pipelined_head_of_line_wait_seconds histogram",
        "# TYPE pipelined_handler_seconds histogram",
        "# TYPE pipelined_pipeline_depth histogram",
        "# TYPE pipelined_open_connections gauge",
        "# TYPE pipelined_in_flight_requests gauge",
    ] {
        assert!(text.contains(family), "{family} in:\n{text}");
    }

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {complaints}\n{text}");
    assert_eq!(complaints.trim(), "", "promtool found problems");
    server.terminate();
}
