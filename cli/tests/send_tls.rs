//! `pipelined send https://…` against a TLS server in this process: the library's
//! `serve_connection` behind tokio-rustls' acceptor, with certificates made at run time. The
//! system's roots are pinned with `SSL_CERT_FILE`, so no test depends on the machine's store.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use http::Request;
use pipelined::{get, Body, PathParams, Router};
use tokio::sync::{oneshot, Notify};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

mod common;

use common::pki::{
    ca_signed, localhost, self_signed, self_signed_ca, self_signed_from, snakeoil_roots,
    unrelated_roots, Pki, TempFile, NAMES,
};
use rcgen::IsCa;

/// What one TLS connection agreed on, as the server saw it.
#[derive(Clone, Debug, PartialEq)]
struct Handshake {
    alpn: Option<Vec<u8>>,
    sni: Option<String>,
}

/// A TLS server on a free port, stopped and joined when dropped.
struct TlsServer {
    addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    fn start(pki: &Pki) -> TlsServer {
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), pki.key.clone_key().into())
            .unwrap();
        // h2 first: a client that offered it would get it, so the record shows what was offered.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel();
        let record = handshakes.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(accept_loop(listener, acceptor, record, stopped));
        });
        TlsServer {
            addr,
            handshakes,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.addr.port())
    }

    fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts until told to stop; each connection's handshake and service run on their own task.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let app = app();
    loop {
        let tcp = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted.unwrap().0,
        };
        let (acceptor, handshakes, app) = (acceptor.clone(), handshakes.clone(), app.clone());
        tokio::spawn(async move {
            // A client that rejects the certificate ends the handshake; that is the test.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let session = tls.get_ref().1;
            handshakes.lock().unwrap().push(Handshake {
                alpn: session.alpn_protocol().map(<[u8]>::to_vec),
                sni: session.server_name().map(str::to_owned),
            });
            serve(tls, app).await;
        });
    }
}

/// The one call into the library's connection API, so a change to its signature is one edit.
async fn serve(tls: TlsStream<tokio::net::TcpStream>, app: Router) {
    pipelined::serve_connection(tls, app).await;
}

/// `/bytes/{n}/{c}`: `n` copies of the character `c`, so each body says whose it is and spans
/// as many TLS records as wanted. `/gate/wait` answers once `/gate/open` has run: both answer
/// only if they were sent together on one connection and run concurrently.
fn app() -> Router {
    let gate = Arc::new(Notify::new());
    let opener = gate.clone();
    Router::new()
        .route(
            "/bytes/{n}/{c}",
            get(|req: Request<Body>| async move {
                let params = req.extensions().get::<PathParams>().unwrap();
                let n: usize = params.get("n").unwrap().parse().unwrap();
                params.get("c").unwrap().repeat(n)
            }),
        )
        .route(
            "/gate/wait",
            get(move |_| {
                let gate = gate.clone();
                async move {
                    gate.notified().await;
                    "the gate opened"
                }
            }),
        )
        .route(
            "/gate/open",
            get(move |_| {
                opener.notify_one();
                async { "opened" }
            }),
        )
}

/// Runs `pipelined send` with `system_roots` as the machine's trust store.
fn send(args: &[&str], system_roots: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .arg("send")
        .args(args)
        .env("SSL_CERT_FILE", system_roots)
        .env_remove("SSL_CERT_DIR")
        .output()
        .expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn pipelined_requests_come_back_in_order_over_tls() {
    let pki = ca_signed("pipelined test CA");
    let server = TlsServer::start(&pki);
    let ca = TempFile::new("order-ca.pem", &pki.ca_pem);
    let roots = unrelated_roots();
    // Bodies of up to 100,000 bytes: seven TLS records each at most, records of one response
    // running into the next.
    let paths = [
        ("/gate/wait", "the gate opened".to_owned()),
        ("/bytes/100000/a", "a".repeat(100_000)),
        ("/bytes/30000/b", "b".repeat(30_000)),
        ("/bytes/1/c", "c".to_owned()),
        ("/bytes/65536/d", "d".repeat(65_536)),
        ("/gate/open", "opened".to_owned()),
    ];
    let url = server.url("127.0.0.1");
    let mut args = vec!["--json", "--timeout", "20", "--cacert", ca.path(), &url];
    args.extend(paths.iter().map(|(path, _)| *path));

    let out = send(&args, &roots.0);

    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["error"], serde_json::Value::Null);
    assert_eq!(doc["url"], url.as_str());
    let responses = doc["responses"].as_array().unwrap();
    assert_eq!(responses.len(), paths.len());
    for (i, (response, (path, body))) in responses.iter().zip(&paths).enumerate() {
        assert_eq!(response["index"], i + 1);
        assert_eq!(response["status"], 200, "{path}");
        assert_eq!(response["path"], *path);
        assert_eq!(response["body_bytes"], body.len(), "{path}");
        assert!(response["body"] == body.as_str(), "{path}: another body");
    }
    // One connection carried them all, and the client offered HTTP/1.1 only (the server
    // prefers h2) and no SNI for an IP address.
    let expected = Handshake {
        alpn: Some(b"http/1.1".to_vec()),
        sni: None,
    };
    assert_eq!(server.handshakes(), [expected]);
}

#[test]
fn the_host_name_goes_out_as_sni() {
    let pki = ca_signed("pipelined test CA");
    let server = TlsServer::start(&pki);
    let ca = TempFile::new("sni-ca.pem", &pki.ca_pem);
    let url = server.url("localhost");

    let out = send(
        &["--cacert", ca.path(), &url, "/bytes/3/x"],
        &unrelated_roots().0,
    );

    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"xxx\""), "{}", stdout(&out));
    let sni: Vec<_> = server.handshakes().into_iter().map(|h| h.sni).collect();
    assert_eq!(sni, [Some("localhost".to_owned())]);
}

#[test]
fn the_system_roots_are_trusted_by_default() {
    let pki = ca_signed("pipelined test CA");
    let server = TlsServer::start(&pki);
    let system = TempFile::new("system-roots.pem", &pki.ca_pem);
    let url = server.url("127.0.0.1");

    let out = send(&[&url, "/bytes/2/s"], &system.0);

    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"ss\""), "{}", stdout(&out));
}

#[test]
fn insecure_accepts_a_self_signed_certificate_and_prints_nothing_more() {
    let server = TlsServer::start(&self_signed());
    let url = server.url("127.0.0.1");
    let roots = unrelated_roots();

    let insecure = send(&["-k", &url, "/bytes/4/k"], &roots.0);

    assert!(insecure.status.success(), "{}", stderr(&insecure));
    assert_eq!(stderr(&insecure), "");
    // The same report as a verified connection gives: first line included, nothing added.
    let text = stdout(&insecure);
    let first = text.lines().next().unwrap();
    assert!(first.ends_with("on one TLS connection"), "{text}");
    assert!(text.contains("\"kkkk\""), "{text}");
    let long = send(&["--insecure", "--json", &url, "/bytes/4/k"], &roots.0);
    assert!(long.status.success(), "{}", stderr(&long));
    assert_eq!(json(&long)["responses"][0]["body"], "kkkk");
}

#[test]
fn an_unverified_certificate_is_one_clear_error() {
    let server = TlsServer::start(&self_signed());
    let url = server.url("127.0.0.1");
    let authority = format!("127.0.0.1:{}", server.addr.port());

    let out = send(&[&url, "/bytes/1/n"], &unrelated_roots().0);

    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "pipelined: TLS handshake with {authority} failed: invalid peer certificate: \
             UnknownIssuer (use --insecure or --cacert for a self-signed server)\n"
        )
    );
    assert_eq!(stdout(&out), "");

    // A --cacert that did not issue the certificate names the file instead.
    let other = unrelated_roots();
    let out = send(&["--cacert", other.path(), &url, "/"], &other.0);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "UnknownIssuer (not issued by a CA in {})",
            other.path()
        )),
        "{}",
        stderr(&out)
    );
}

/// `openssl req -x509` marks its certificate `CA:TRUE` unless told otherwise. curl accepts a
/// server presenting exactly the certificate given with `--cacert`; so does `send`, for every
/// name the certificate holds.
#[test]
fn cacert_accepts_a_self_signed_ca_certificate_served_as_its_own() {
    let pki = self_signed_ca(&NAMES);
    let server = TlsServer::start(&pki);
    let cert = TempFile::new("own-ca.pem", &pki.ca_pem);
    let roots = unrelated_roots();

    for host in NAMES {
        let out = send(
            &["--cacert", cert.path(), &server.url(host), "/bytes/2/o"],
            &roots.0,
        );

        assert!(out.status.success(), "{host}: {}", stderr(&out));
        assert!(stdout(&out).contains("\"oo\""), "{host}: {}", stdout(&out));
    }
}

/// The exception is that one case: a CA certificate served as the server's own is still
/// refused when the file holds another one of the same name, when it does not name the host
/// asked for, or when it has expired.
#[test]
fn cacert_refuses_a_ca_certificate_other_than_the_one_it_holds() {
    let roots = unrelated_roots();
    let run = |served: &Pki, trusted: &Pki, host: &str| {
        let server = TlsServer::start(served);
        let file = TempFile::new("trusted.pem", &trusted.ca_pem);
        let out = send(&["--cacert", file.path(), &server.url(host), "/"], &roots.0);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        (stderr(&out), file.path().to_owned())
    };

    let served = self_signed_ca(&NAMES);
    let (err, path) = run(&served, &self_signed_ca(&NAMES), "127.0.0.1");
    assert!(
        err.contains("CaUsedAsEndEntity")
            && err.contains(&format!("(not issued by a CA in {path})")),
        "{err}"
    );

    let localhost_only = self_signed_ca(&["localhost"]);
    let (err, _) = run(&localhost_only, &localhost_only, "127.0.0.1");
    assert!(err.contains("not valid for name"), "{err}");

    let mut old = localhost(&NAMES, IsCa::Ca(rcgen::BasicConstraints::Unconstrained));
    old.not_before = rcgen::date_time_ymd(2000, 1, 1);
    old.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let expired = self_signed_from(&old);
    let (err, _) = run(&expired, &expired, "127.0.0.1");
    assert!(err.contains("expired"), "{err}");
}

/// A machine whose store holds an unrelated certificate for CN=localhost (Debian's
/// `ssl-cert-snakeoil.pem`) finds it as the issuer of a self-signed CN=localhost certificate,
/// and the refusal is a bad signature rather than an unknown issuer: the hint still comes.
#[test]
fn an_unrelated_localhost_certificate_in_the_store_keeps_the_hint() {
    let snakeoil = snakeoil_roots();
    let end_entity = self_signed_from(&localhost(&NAMES, IsCa::ExplicitNoCa));
    let ca = self_signed_ca(&NAMES);
    for (served, reason) in [(&end_entity, "BadSignature"), (&ca, "CaUsedAsEndEntity")] {
        let server = TlsServer::start(served);

        let out = send(&[&server.url("localhost"), "/"], &snakeoil.0);

        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(reason), "{err}");
        assert!(
            err.ends_with(" (use --insecure or --cacert for a self-signed server)\n"),
            "{err}"
        );
    }
}

/// A --cacert that cannot be used is reported before connecting: the port is closed, so any
/// attempt to connect would say "connection refused" instead.
#[test]
fn a_bad_cacert_is_a_clear_error() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("https://{closed}");
    let roots = unrelated_roots();
    let missing = std::env::temp_dir().join("pipelined-no-such-ca.pem");
    let missing = missing.to_str().unwrap();
    let not_pem = TempFile::new("not-pem.pem", "not a certificate\n");
    let cases = [
        (
            missing,
            format!("cannot read --cacert {missing}: No such file or directory"),
        ),
        (
            not_pem.path(),
            format!("--cacert {} holds no PEM certificate", not_pem.path()),
        ),
    ];
    for (path, expected) in cases {
        let out = send(&["--cacert", path, &url, "/"], &roots.0);
        assert_eq!(out.status.code(), Some(1), "{path}");
        assert!(stderr(&out).contains(&expected), "{path}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("connect"),
            "{path}: {}",
            stderr(&out)
        );
    }
    let out = send(&["-k", "--cacert", not_pem.path(), &url, "/"], &roots.0);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}

/// https:// to a server that answers in plain HTTP: the handshake fails, and the error says
/// what is likely wrong.
#[test]
fn https_to_a_plain_http_server_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // The ClientHello arrives first; answer it as a plain HTTP server would.
        let mut hello = [0; 512];
        assert!(conn.read(&mut hello).unwrap() > 0);
        let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
    });

    let out = send(&[&format!("https://{addr}"), "/"], &unrelated_roots().0);
    server.join().unwrap();

    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("pipelined: TLS handshake with {addr} failed: ")),
        "{err}"
    );
    assert!(err.contains("(is it a plain http:// server?)"), "{err}");
}

/// A server that accepts and never answers the ClientHello: `--timeout` bounds the handshake.
#[test]
fn a_silent_server_times_the_handshake_out() {
    // The kernel completes the TCP handshake from the backlog; nobody ever reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    let out = send(
        &["--timeout", "0.2", &format!("https://{addr}"), "/"],
        &unrelated_roots().0,
    );

    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("pipelined: TLS handshake with {addr} failed: timed out after 0.2 s\n")
    );
    drop(listener);
}
