//! `pipelined::client::Client`: connections per authority, the retries RFC 9112 §9.3.1 allows
//! (an idempotent request left unanswered is sent again on a new connection, once; a POST is
//! not), connect errors, and HTTPS with ALPN `http/1.1`.

mod common;

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use pipelined::client::{Builder, Client, ErrorKind};
use pipelined::{get, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Body = Full<Bytes>;

/// Reads until `count` bodiless request heads are in; their paths, in order.
async fn read_paths(io: &mut TcpStream, count: usize) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    while got.windows(4).filter(|w| w == b"\r\n\r\n").count() < count {
        let n = tokio::time::timeout(common::HANG, io.read(&mut buf))
            .await
            .expect("the client wrote its requests")
            .unwrap();
        assert!(n > 0, "the client closed early");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got)
        .unwrap()
        .split("\r\n\r\n")
        .filter(|h| !h.is_empty())
        .map(|h| h.split(' ').nth(1).unwrap().to_owned())
        .collect()
}

fn answer(path: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
        path.len()
    )
}

async fn body_text(response: http::Response<pipelined::client::Incoming>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The first connection answers one of three pipelined GETs and closes; the other two are sent
/// again on a second connection and answered there, each with its own answer.
#[tokio::test]
async fn unanswered_gets_are_sent_again_on_a_new_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut first, _) = listener.accept().await.unwrap();
        let paths = read_paths(&mut first, 3).await;
        first.write_all(answer(&paths[0]).as_bytes()).await.unwrap();
        drop(first);
        let (mut second, _) = listener.accept().await.unwrap();
        let again = read_paths(&mut second, 2).await;
        for path in &again {
            second.write_all(answer(path).as_bytes()).await.unwrap();
        }
        (paths, again)
    });
    let client = Client::builder().connections(1).build::<Body>();
    let calls = (0..3).map(|i| {
        let client = client.clone();
        let uri = format!("http://{addr}/{i}");
        async move {
            let response = client
                .request(Request::get(uri).body(Body::default()).unwrap())
                .await;
            body_text(response.unwrap()).await
        }
    });
    let bodies = futures_join(calls.collect()).await;
    assert_eq!(bodies, ["/0", "/1", "/2"]);
    let (first, again) = server.await.unwrap();
    assert_eq!(first, ["/0", "/1", "/2"]);
    assert_eq!(again, ["/1", "/2"]);
}

/// A POST left unanswered is not sent again: its caller hears that it may or may not have
/// been processed.
#[tokio::test]
async fn an_unanswered_post_is_not_sent_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf).await;
        }
    });
    let client = Client::builder().build::<Body>();
    let post = Request::post(format!("http://{addr}/p"))
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    let error = client.request(post).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnswered);
    assert!(error
        .to_string()
        .contains("may or may not have been processed"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// A server that never answers: a GET is sent once more (the default), then fails.
#[tokio::test]
async fn retries_are_bounded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            read_paths(&mut stream, 1).await;
        }
    });
    let client = Client::builder().build::<Body>();
    let get = Request::get(format!("http://{addr}/"))
        .body(Body::default())
        .unwrap();
    let error = client.request(get).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnswered);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// Light traffic stays on one connection; a connection is added only when every open one owes
/// a response, up to the limit.
#[tokio::test]
async fn connections_are_opened_only_when_needed_and_up_to_the_limit() {
    let (addr, accepted) = counting_server().await;
    let client = Client::builder()
        .connections(2)
        .connection(Builder::new().pipeline_depth(4))
        .build::<Body>();
    for i in 0..5 {
        let uri = format!("http://{addr}/{i}");
        let response = client
            .request(Request::get(uri).body(Body::default()).unwrap())
            .await;
        assert_eq!(body_text(response.unwrap()).await, format!("/{i}"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let calls = (0..40).map(|i| {
        let client = client.clone();
        let uri = format!("http://{addr}/{i}");
        async move {
            let response = client
                .request(Request::get(uri).body(Body::default()).unwrap())
                .await;
            body_text(response.unwrap()).await
        }
    });
    let bodies = futures_join(calls.collect()).await;
    let expected: Vec<String> = (0..40).map(|i| format!("/{i}")).collect();
    assert_eq!(bodies, expected);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_and_a_relative_or_ftp_uri_a_request_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Client::builder().build::<Body>();
    let get = Request::get(format!("http://{addr}/"))
        .body(Body::default())
        .unwrap();
    let error = client.request(get).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Connect);
    assert!(!error.may_have_been_processed());
    assert!(error
        .to_string()
        .starts_with(&format!("cannot connect to 127.0.0.1:{}", addr.port())));
    let relative = Request::get("/x").body(Body::default()).unwrap();
    assert_eq!(
        client.request(relative).await.unwrap_err().kind(),
        ErrorKind::Request
    );
    let other_scheme = Request::get("ftp://127.0.0.1/x")
        .body(Body::default())
        .unwrap();
    let error = client.request(other_scheme).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Request, "{error}");
}

/// This project's server answering each path with itself, counting the connections it
/// accepts.
async fn counting_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let app = Router::new().route(
        "/{n}",
        get(|req: Request<pipelined::Body>| async move { req.uri().path().to_owned() }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(pipelined::serve_connection(stream, app.clone()).into_future());
        }
    });
    (addr, accepted)
}

/// Runs the futures concurrently on this task and returns their outputs in order.
async fn futures_join<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for (i, future) in futures.into_iter().enumerate() {
        set.push(Box::pin(async move { (i, future.await) }));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    let mut pending: Vec<_> = set;
    std::future::poll_fn(|cx| {
        pending.retain_mut(|f| match f.as_mut().poll(cx) {
            std::task::Poll::Ready((i, out)) => {
                outputs[i] = Some(out);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

/// HTTPS through `ClientBuilder::tls`, against this project's TLS listener: the client offers
/// only `http/1.1`, so the server's pipelining engine answers.
#[cfg(feature = "tls-ring")]
#[tokio::test]
async fn https_goes_through_tls_with_alpn_http_1_1() {
    use pipelined::tls::rustls::pki_types::PrivatePkcs8KeyDer;
    use pipelined::tls::rustls::{ClientConfig, RootCertStore, ServerConfig};
    use pipelined::tls::TlsListener;

    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let server_config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key.into())
        .unwrap();
    let app = Router::new().route(
        "/{n}",
        get(|req: Request<pipelined::Body>| async move {
            format!("{:?} {}", req.version(), req.uri().path())
        }),
    );
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener::new(tcp, Arc::new(server_config));
    tokio::spawn(pipelined::serve(listener, app).into_future());

    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let tls = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = Client::builder().tls(tls).build::<Body>();
    for i in 0..3 {
        let uri = format!("https://localhost:{port}/{i}");
        let response = client
            .request(Request::get(uri).body(Body::default()).unwrap())
            .await;
        assert_eq!(body_text(response.unwrap()).await, format!("HTTP/1.1 /{i}"));
    }
}

/// A request dropped while its connection is being opened gives that place back: the next
/// request to the authority is not left waiting for a connection nobody opens (found in
/// review).
#[tokio::test]
async fn a_request_dropped_mid_connect_gives_its_place_back() {
    let (addr, _accepted) = counting_server().await;
    let client = Client::builder().connections(1).build::<Body>();
    let uri = format!("http://localhost:{}/0", addr.port());
    {
        let mut first = Box::pin(client.request(Request::get(&uri).body(Body::default()).unwrap()));
        let pending =
            std::future::poll_fn(|cx| std::task::Poll::Ready(first.as_mut().poll(cx).is_pending()))
                .await;
        assert!(pending, "the first request is still connecting");
    }
    let second = client.request(Request::get(&uri).body(Body::default()).unwrap());
    let response = tokio::time::timeout(common::HANG, second)
        .await
        .expect("the second request found a connection");
    assert_eq!(body_text(response.unwrap()).await, "/0");
}

/// `retries(0)`: a GET left unanswered is not sent again.
#[tokio::test]
async fn retries_zero_sends_nothing_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            read_paths(&mut stream, 1).await;
        }
    });
    let client = Client::builder().retries(0).build::<Body>();
    let get = Request::get(format!("http://{addr}/"))
        .body(Body::default())
        .unwrap();
    let error = client.request(get).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnswered);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
