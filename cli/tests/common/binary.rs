//! The `pipelined` binary as a child process, for tests that drive the real executable.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `pipelined` process, killed if the test fails before stopping it.
pub struct Binary {
    child: Child,
    pub addr: SocketAddr,
    /// `http` or `https` (`--tls-cert`), as the binary logged it.
    pub scheme: &'static str,
    log: mpsc::Receiver<String>,
}

impl Binary {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipelined"))
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (scheme, addr) = loop {
            let line = log
                .recv_timeout(Duration::from_secs(30))
                .expect("the binary logs its address");
            let Some((_, url)) = line.split_once("listening on ") else {
                continue;
            };
            let (scheme, addr) = url.split_once("://").expect("a URL");
            let scheme = if scheme == "https" { "https" } else { "http" };
            let addr = addr.split_whitespace().next().unwrap_or_default();
            break (scheme, addr.parse().expect("a socket address"));
        };
        Binary {
            child,
            addr,
            scheme,
            log,
        }
    }

    /// The process id, to read its descriptors and memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Sends SIGTERM and asserts a clean exit: status 0 and the "shut down cleanly" log line.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exit status after SIGTERM: {exit}");
        // The process has exited, so its stdout reaches EOF and the reading thread hangs up:
        // this collects every line, including the last ones.
        let log: Vec<String> = self.log.iter().collect();
        assert!(
            log.iter().any(|l| l.contains("shut down cleanly")),
            "{log:?}"
        );
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
