//! `pipelined serve --tls-cert --tls-key`: the binary over HTTPS, with a certificate made at run
//! time. ALPN picks the engine (HTTP/2 or the ordered HTTP/1.1 engine), pipelining goes over
//! TLS, `/fanout` calls its own HTTPS server, and bad certificate files are clear errors.

mod common;

use std::process::Command;

use bytes::Bytes;
use common::binary::Binary;
use common::pki::{self_signed, unrelated_roots, Pki, TempFile};
use common::tools::installed;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// `pki`'s certificate and key as files, for `--tls-cert` and `--tls-key`.
struct Files {
    cert: TempFile,
    key: TempFile,
}

impl Files {
    fn of(pki: &Pki) -> Files {
        Files {
            cert: TempFile::new("cert.pem", &pki.chain_pem),
            key: TempFile::new("key.pem", &pki.key_pem),
        }
    }

    fn args<'a>(&'a self, more: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            self.cert.path(),
            "--tls-key",
            self.key.path(),
        ];
        args.extend_from_slice(more);
        args
    }
}

/// A client that trusts `pki`'s CA and offers `h2` and `http/1.1` by ALPN, as browsers do.
fn client(pki: &Pki) -> Client<HttpsConnector<HttpConnector>, Empty<Bytes>> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.chain[0].clone()).unwrap();
    let tls = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_all_versions()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// GETs `url`: the response's version, status and body.
async fn get(
    client: &Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: String,
) -> (http::Version, u16, String) {
    let res = client.get(url.parse().unwrap()).await.unwrap();
    let (version, status) = (res.version(), res.status().as_u16());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (version, status, String::from_utf8_lossy(&body).into_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn https_pipelines_http1_serves_http2_by_alpn_and_fans_out_over_tls() {
    let pki = self_signed();
    let files = Files::of(&pki);
    let server = Binary::start(&files.args(&[]), &[]);
    assert_eq!(server.scheme, "https");

    // Pipelined HTTP/1.1 over TLS, in order: the slow one first.
    let out = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .args(["send", &server.url(""), "/delay/100", "/plaintext"])
        .args(["--cacert", files.cert.path(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<_> = report["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r["status"].as_u64()))
        .collect();
    assert_eq!(
        paths,
        [
            ("/delay/100".to_owned(), Some(200)),
            ("/plaintext".to_owned(), Some(200))
        ]
    );

    // The container health check, over TLS: trusted with --cacert or -k; refused against
    // system roots (pinned to a CA that did not issue the server's certificate) that do not
    // hold it.
    let roots = unrelated_roots();
    let health = |trust: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pipelined"))
            .args(["health", "--url", &server.url("/healthz")])
            .args(trust)
            .env("SSL_CERT_FILE", roots.path())
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap()
    };
    assert!(health(&["--cacert", files.cert.path()]).status.success());
    assert!(health(&["--insecure"]).status.success());
    let untrusted = health(&[]);
    assert!(
        !untrusted.status.success(),
        "an untrusted certificate passed"
    );
    let why = String::from_utf8_lossy(&untrusted.stderr);
    assert!(why.contains("UnknownIssuer"), "{why}");

    runtime().block_on(async {
        let client = client(&pki);
        let (version, status, body) = get(&client, server.url("/plaintext")).await;
        assert_eq!((version, status), (http::Version::HTTP_2, 200), "ALPN h2");
        assert_eq!(body, "Hello, World!");

        let (_, status, body) = get(&client, server.url("/fanout?n=3&ms=10")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("3 of 3 calls"), "{body}");
    });
    server.terminate();
}

#[test]
fn the_hyper_engine_over_tls_offers_http1_only() {
    let pki = self_signed();
    let files = Files::of(&pki);
    let server = Binary::start(&files.args(&["--engine", "hyper"]), &[]);
    runtime().block_on(async {
        let (version, status, _) = get(&client(&pki), server.url("/plaintext")).await;
        assert_eq!((version, status), (http::Version::HTTP_11, 200));
    });
    server.terminate();
}

/// Runs `pipelined serve` with `args`, expecting it to refuse to start; its stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pipelined"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_certificate_files_are_clear_errors() {
    let pki = self_signed();
    let files = Files::of(&pki);
    let other = Files::of(&self_signed());

    let err = refused(&["serve", "--tls-cert", files.cert.path()]);
    assert!(err.contains("--tls-key"), "{err}");

    let missing = "/nonexistent/cert.pem";
    let err = refused(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        missing,
        "--tls-key",
        files.key.path(),
    ]);
    assert!(err.contains(missing), "{err}");

    // Another certificate's key.
    let err = refused(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        files.cert.path(),
        "--tls-key",
        other.key.path(),
    ]);
    assert!(err.contains("does not match"), "{err}");

    // A key where the certificate should be.
    let err = refused(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        files.key.path(),
        "--tls-key",
        files.key.path(),
    ]);
    assert!(err.contains(files.key.path()), "{err}");
}

/// `curl` with `flags`, printing only the status and the HTTP version it spoke.
fn curl_status(flags: &[&str], args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--insecure", "--output", "/dev/null"])
        .args(["--write-out", "%{http_code} %{http_version}"])
        .args(flags)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 11's four curl lines against `--request-timeout 1`: a 20 MB upload is `413` and an
/// overdue handler `503`, on HTTP/1.1 and HTTP/2, plain and over TLS alike.
#[test]
fn the_same_limits_give_the_same_status_on_every_transport() {
    if installed("curl", "curl").is_none() {
        return;
    }
    let pki = self_signed();
    let files = Files::of(&pki);
    let upload = TempFile::new("20MB", &"x".repeat(20_000_000));
    let upload = format!("@{}", upload.path());
    let limits = ["--request-timeout", "1", "--no-metrics"];
    let plain = Binary::start(
        &[&["serve", "--bind", "127.0.0.1:0"][..], &limits].concat(),
        &[],
    );
    let tls = Binary::start(&files.args(&limits), &[]);
    let transports = [
        (&plain, "--http1.1", "1.1"),
        (&plain, "--http2-prior-knowledge", "2"),
        (&tls, "--http1.1", "1.1"),
        (&tls, "--http2", "2"),
    ];
    for (server, flag, version) in transports {
        let echo = server.url("/echo");
        let posted = curl_status(&[flag], &["--data-binary", &upload, &echo]);
        assert_eq!(posted, format!("413 {version}"), "{flag} {echo}");
        let delay = server.url("/delay/3000");
        assert_eq!(
            curl_status(&[flag], &[&delay]),
            format!("503 {version}"),
            "{flag} {delay}"
        );
    }
    plain.terminate();
    tls.terminate();
}
