//! Scripted HTTP/1.1 servers for `pipelined load` (cli/tests/load_hostile.rs): each answers
//! as its script says, split into pieces or whole, and counts what it read and wrote, so a
//! test can compare the server's own tally with the tool's JSON summary.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

/// A run still going after this long has hung: it is killed and its test fails.
pub const HANG: Duration = Duration::from_secs(120);

/// Every error kind, each always present in `errors`.
pub const ERROR_KINDS: [&str; 8] = [
    "connect",
    "timeout",
    "reset",
    "not_answered",
    "not_sent",
    "incomplete",
    "protocol",
    "other",
];

/// Where a request head ends; the tool's requests carry no body unless `-d` is given.
pub const HEAD_END: &[u8] = b"\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// Pieces, answers and the server's own counts
// ---------------------------------------------------------------------------------------------

/// A seeded xorshift64* generator: the sizes of the pieces a response is written in.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero (xorshift's fixed point).
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `1..=max`.
    pub fn piece(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

/// A complete answer the server may write: its bytes, and what the tool must count for it.
#[derive(Clone)]
pub struct Answer {
    pub wire: Vec<u8>,
    /// The final status (after any 1xx).
    pub status: u16,
    /// Body data bytes (a chunked body's data only, not its framing).
    pub body: usize,
    /// Carries `Server-Timing` with both `handler` and `queue`.
    pub timed: bool,
}

pub fn answer(wire: impl Into<Vec<u8>>, status: u16, body: usize) -> Answer {
    Answer {
        wire: wire.into(),
        status,
        body,
        timed: false,
    }
}

/// A plain keep-alive answer: 200 with a two-byte body.
pub fn ok() -> Answer {
    answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, 2)
}

/// What a server read and wrote, over all its connections.
#[derive(Default)]
pub struct Tally {
    /// Request heads received (including those read only to drain a closing connection).
    pub heads: AtomicUsize,
    /// Complete final answers written.
    pub answered: AtomicUsize,
    pub body_bytes: AtomicUsize,
    pub statuses: Mutex<BTreeMap<String, u64>>,
    /// Answers written with a `Server-Timing` queue wait.
    pub timed: AtomicUsize,
    /// Hostile byte sequences written (garbage, cut-short responses, unsolicited answers).
    pub hostile: AtomicUsize,
    /// Connections that carried at least one request, and the most any one carried.
    pub connections: AtomicUsize,
    pub most_heads_on_one: AtomicUsize,
    /// Answers handed out of a shared rotation (see `rotating`).
    pub served: AtomicUsize,
}

impl Tally {
    /// Counts `a` as written whole.
    pub fn record(&self, a: &Answer) {
        self.answered.fetch_add(1, SeqCst);
        self.body_bytes.fetch_add(a.body, SeqCst);
        if a.timed {
            self.timed.fetch_add(1, SeqCst);
        }
        *self
            .statuses
            .lock()
            .unwrap()
            .entry(a.status.to_string())
            .or_default() += 1;
    }

    pub fn heads(&self) -> u64 {
        self.heads.load(SeqCst) as u64
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(SeqCst) as u64
    }

    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(SeqCst) as u64
    }

    pub fn hostile(&self) -> u64 {
        self.hostile.load(SeqCst) as u64
    }

    pub fn statuses(&self) -> BTreeMap<String, u64> {
        self.statuses.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted server
// ---------------------------------------------------------------------------------------------

/// One accepted connection, as a script sees it.
pub struct Peer {
    pub stream: TcpStream,
    /// Bytes read and not yet taken as request heads.
    pub buf: Vec<u8>,
    /// Request heads taken off this connection.
    pub heads: usize,
    pub rng: Rng,
    pub tally: Arc<Tally>,
}

impl Peer {
    /// Takes one complete request head off the buffer, if there is one.
    pub fn take_buffered(&mut self) -> bool {
        let Some(at) = self.buf.windows(HEAD_END.len()).position(|w| w == HEAD_END) else {
            return false;
        };
        self.buf.drain(..at + HEAD_END.len());
        self.heads += 1;
        self.tally.heads.fetch_add(1, SeqCst);
        true
    }

    /// Waits for the next request head; `false` when the client closed (or reset) first. The
    /// tool's first connection only proves the server is there and carries no request.
    pub fn request(&mut self) -> bool {
        let mut chunk = [0; 4096];
        loop {
            if self.take_buffered() {
                return true;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Takes off the request heads already complete in the buffer (pipelined behind the one
    /// just taken), without waiting for more.
    pub fn pipelined(&mut self) -> usize {
        let mut n = 0;
        while self.take_buffered() {
            n += 1;
        }
        n
    }

    /// Reads the next request head a byte at a time, leaving whatever follows it in the
    /// kernel's receive buffer (where closing the socket turns it into a reset).
    pub fn request_exact(&mut self) -> bool {
        let mut head = Vec::new();
        let mut byte = [0];
        loop {
            match self.stream.read(&mut byte) {
                Ok(1) => {
                    head.push(byte[0]);
                    if head.ends_with(HEAD_END) {
                        self.heads += 1;
                        self.tally.heads.fetch_add(1, SeqCst);
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }

    /// Writes `bytes` in pieces of 1 to 7 bytes, each its own write (`TCP_NODELAY` is set).
    /// `false`: the client has gone.
    pub fn send_pieces(&mut self, bytes: &[u8]) -> bool {
        let mut at = 0;
        while at < bytes.len() {
            let len = self.rng.piece(7).min(bytes.len() - at);
            if self.stream.write_all(&bytes[at..at + len]).is_err() {
                return false;
            }
            at += len;
        }
        self.stream.flush().is_ok()
    }

    /// Writes `bytes` in one write: on loopback the client reads them in one piece.
    pub fn send_whole(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Writes `a` in pieces and counts it.
    pub fn answer(&mut self, a: &Answer) -> bool {
        let sent = self.send_pieces(&a.wire);
        if sent {
            self.tally.record(a);
        }
        sent
    }

    /// Closes gracefully: nothing more from the server, then every request the client still
    /// writes is read (and counted) until it closes, so none is left unread to cause a reset.
    pub fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        while self.request() {}
    }
}

pub type Script = dyn Fn(&mut Peer) + Send + Sync;

/// A server on 127.0.0.1 running `script` on each connection, in a thread of its own, until
/// [`Server::finish`].
pub struct Server {
    pub addr: SocketAddr,
    pub tally: Arc<Tally>,
    pub stop: Arc<AtomicBool>,
    pub accepter: Option<JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Server {
    pub fn start(script: impl Fn(&mut Peer) + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().unwrap();
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let accepter = {
            let (tally, stop) = (tally.clone(), stop.clone());
            thread::spawn(move || {
                let mut connections = Vec::new();
                let mut index = 0u64;
                let mut spawn = |stream: TcpStream| {
                    index += 1;
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_nodelay(true);
                    let (script, tally) = (script.clone(), tally.clone());
                    let seed = index;
                    connections.push(thread::spawn(move || {
                        let mut peer = Peer {
                            stream,
                            buf: Vec::new(),
                            heads: 0,
                            rng: Rng::new(seed),
                            tally: tally.clone(),
                        };
                        script(&mut peer);
                        if peer.heads > 0 {
                            tally.connections.fetch_add(1, SeqCst);
                            tally.most_heads_on_one.fetch_max(peer.heads, SeqCst);
                        }
                    }));
                };
                loop {
                    let Ok((stream, _)) = listener.accept() else {
                        continue;
                    };
                    spawn(stream);
                    if stop.load(SeqCst) {
                        break;
                    }
                }
                // Stopping: whatever is still queued (connections the finished run opened
                // and closed before they were accepted) runs its script too, so its requests
                // are counted.
                listener.set_nonblocking(true).unwrap();
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => spawn(stream),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {}
                    }
                }
                connections
            })
        };
        Server {
            addr,
            tally,
            stop,
            accepter: Some(accepter),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting, waits for every connection's script to end (the run is over, so every
    /// connection has been closed by the client), and returns the counts.
    pub fn finish(mut self) -> Arc<Tally> {
        self.stop.store(true, SeqCst);
        // Wakes the accepting thread; closed at once, so its script ends at once.
        drop(TcpStream::connect(self.addr));
        let connections = self.accepter.take().unwrap().join().expect("accept thread");
        for c in connections {
            c.join().expect("a connection's script panicked");
        }
        self.tally.clone()
    }
}

impl Drop for Server {
    /// A test that failed before `finish`: stop accepting, leave the connections be.
    fn drop(&mut self) {
        if self.accepter.is_some() {
            self.stop.store(true, SeqCst);
            drop(TcpStream::connect(self.addr));
        }
    }
}

/// A script answering every request with the next answer of `answers` (in one rotation
/// shared by all connections), the answers to requests pipelined together written as one run
/// of bytes split into small pieces anywhere, across answer boundaries too.
pub fn rotating(answers: Vec<Answer>) -> impl Fn(&mut Peer) + Send + Sync + 'static {
    move |peer| {
        while peer.request() {
            let k = 1 + peer.pipelined();
            let picked: Vec<&Answer> = (0..k)
                .map(|_| &answers[peer.tally.served.fetch_add(1, SeqCst) % answers.len()])
                .collect();
            let wire: Vec<u8> = picked.iter().flat_map(|a| a.wire.iter().copied()).collect();
            if !peer.send_pieces(&wire) {
                return;
            }
            for a in picked {
                peer.tally.record(a);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running the tool and reading its summary
// ---------------------------------------------------------------------------------------------

/// One run's exit code and JSON document, already checked for consistency.
pub struct Run {
    pub code: Option<i32>,
    pub doc: Value,
}

impl Run {
    pub fn at(&self, path: &[&str]) -> &Value {
        path.iter().fold(&self.doc, |v, k| &v[*k])
    }

    pub fn int(&self, path: &[&str]) -> u64 {
        let v = self.at(path);
        v.as_u64()
            .unwrap_or_else(|| panic!("{path:?} is not a whole number: {v}\n{:#}", self.doc))
    }

    pub fn total(&self) -> u64 {
        self.int(&["requests", "total"])
    }

    pub fn answered(&self) -> u64 {
        self.int(&["requests", "answered"])
    }

    pub fn errors(&self) -> u64 {
        self.int(&["requests", "errors"])
    }

    pub fn error(&self, kind: &str) -> u64 {
        self.int(&["errors", kind])
    }

    pub fn body_bytes(&self) -> u64 {
        self.int(&["body_bytes"])
    }

    pub fn statuses(&self) -> BTreeMap<String, u64> {
        let codes = self
            .at(&["status_codes"])
            .as_object()
            .expect("status_codes");
        codes
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
            .collect()
    }

    /// The error kinds that are not zero.
    pub fn error_kinds(&self) -> BTreeMap<&'static str, u64> {
        ERROR_KINDS
            .iter()
            .map(|k| (*k, self.error(k)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Fails unless every error is of one of `kinds`.
    pub fn errors_only(&self, kinds: &[&str]) {
        for (kind, n) in self.error_kinds() {
            assert!(
                kinds.contains(&kind),
                "{n} `{kind}` errors, expected only {kinds:?}\n{:#}",
                self.doc
            );
        }
    }
}

/// Runs `pipelined load --no-tui --json -n N ARGS… URL`; checks that the document's counts
/// add up (total = N = answered + errors, nothing aborted; errors = the sum of the kinds;
/// answered = the sum of the status codes = the latencies recorded) and that the exit code is
/// 0 exactly when something was answered.
pub fn load(url: &str, n: u64, args: &[&str]) -> Run {
    load_guarded(url, n, args, HANG)
}

/// Runs `pipelined load` with `args` to completion; a run still going after `hang` is killed
/// and the test fails.
pub fn run_load(args: &[&str], hang: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .arg("load")
        .args(args)
        .env_remove("PIPELINED_BIND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(hang) {
        Ok(out) => out.expect("the binary's output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "`pipelined load {}` still running after {hang:?}",
                args.join(" ")
            );
        }
    }
}

pub fn load_guarded(url: &str, n: u64, args: &[&str], hang: Duration) -> Run {
    let n_text = n.to_string();
    let mut all = vec!["--no-tui", "--json", "-n", &n_text];
    all.extend_from_slice(args);
    all.push(url);
    let out = run_load(&all, hang);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`pipelined load {}` printed no JSON ({e}); stdout: {}\nstderr: {}",
            all.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let run = Run {
        code: out.status.code(),
        doc,
    };
    let (total, answered, errors) = (run.total(), run.answered(), run.errors());
    let aborted = run.int(&["requests", "aborted"]);
    let d = &run.doc;
    assert_eq!(total, n, "every request of -n begun\n{d:#}");
    assert_eq!(aborted, 0, "nothing aborted without -z or Ctrl-C\n{d:#}");
    assert_eq!(total, answered + errors, "total = answered + errors\n{d:#}");
    let kinds: u64 = ERROR_KINDS.iter().map(|k| run.error(k)).sum();
    assert_eq!(errors, kinds, "errors = the sum of their kinds\n{d:#}");
    assert_eq!(
        run.at(&["errors"]).as_object().map(|o| o.len()),
        Some(ERROR_KINDS.len()),
        "every error kind present, no other\n{d:#}"
    );
    let by_status: u64 = run.statuses().values().sum();
    assert_eq!(
        answered, by_status,
        "answers = the sum of the status codes\n{d:#}"
    );
    if answered == 0 {
        assert!(
            run.at(&["latency_ms"]).is_null(),
            "no latency without answers\n{d:#}"
        );
        assert_eq!(run.body_bytes(), 0, "no body bytes without answers\n{d:#}");
    } else {
        assert_eq!(
            run.int(&["latency_ms", "count"]),
            answered,
            "a latency per answer\n{d:#}"
        );
    }
    let expected_code = if answered > 0 { 0 } else { 1 };
    assert_eq!(
        run.code,
        Some(expected_code),
        "exit 0 iff something was answered\n{d:#}"
    );
    run
}

/// The accounting of a run on connections a server ended early, with graceful closes: every
/// request the tool wrote reached the server (which reads until the client closes), so the
/// written ones the server never answered in full are exactly `heads - answered`, and those
/// never written `n - heads`. `failed` are the written requests that failed with
/// `failed_kind` (the one being read when the connection went bad), not `not_answered`.
pub fn assert_accounted(run: &Run, tally: &Tally, n: u64, failed_kind: Option<(&str, u64)>) {
    let d = &run.doc;
    let (heads, answered) = (tally.heads(), tally.answered());
    assert_eq!(
        run.answered(),
        answered,
        "answers = complete answers the server wrote\n{d:#}"
    );
    assert_eq!(
        run.body_bytes(),
        tally.body_bytes(),
        "body bytes of complete answers only\n{d:#}"
    );
    assert_eq!(
        run.statuses(),
        tally.statuses(),
        "statuses as served\n{d:#}"
    );
    let failed = match failed_kind {
        Some((kind, count)) => {
            assert_eq!(
                run.error(kind),
                count,
                "`{kind}`: one per connection it ended\n{d:#}"
            );
            count
        }
        None => 0,
    };
    assert!(heads <= n, "the server received {heads} requests of {n}");
    assert_eq!(
        run.error("not_answered"),
        heads - answered - failed,
        "written, then the connection ended: the server received {heads}, answered \
         {answered}, {failed} failed otherwise\n{d:#}"
    );
    assert_eq!(
        run.error("not_sent"),
        n - heads,
        "never written: {n} - {heads}\n{d:#}"
    );
    let mut kinds = vec!["not_answered", "not_sent"];
    kinds.extend(failed_kind.map(|(k, _)| k));
    run.errors_only(&kinds);
}
