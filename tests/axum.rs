//! An axum app served by `pipelined` as-is: `pipelined::serve(listener, axum_router)`, no
//! adapter. axum's `Router` is a `Service<Request<B>>` for any `B: http_body::Body<Data =
//! Bytes>` with a boxable error, and `pipelined::Body` is one, so path, JSON, state and
//! `ConnectInfo` extractors, rejections and the fallback all work through the ordered
//! concurrent engine.

mod common;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{get as get_req, Client, RawResponse};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

#[derive(Debug, Deserialize)]
struct NewUser {
    name: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u32,
    name: String,
}

/// The axum app under test. `/slow` waits until `/release` is called: with a serial engine a
/// pipelined `/slow` followed by `/release` would wait for ever.
fn app() -> Router {
    let signal = Arc::new(Notify::new());
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move {
                Json(User {
                    id,
                    name: format!("user{id}"),
                })
            }),
        )
        .route(
            "/users",
            post(|Json(new): Json<NewUser>| async move {
                let user = User {
                    id: 42,
                    name: new.name,
                };
                (StatusCode::CREATED, Json(user))
            }),
        )
        .route(
            "/whoami",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/slow",
            get(|State(signal): State<Arc<Notify>>| async move {
                signal.notified().await;
                "released\n"
            }),
        )
        .route(
            "/release",
            get(|State(signal): State<Arc<Notify>>| async move {
                // notify_one keeps a permit if `/slow` is not waiting yet.
                signal.notify_one();
                "releasing\n"
            }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such route\n") })
        .with_state(signal)
}

/// A server running an axum app on `pipelined`.
struct AxumServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<std::io::Result<()>>,
}

impl AxumServer {
    /// Serves `app`, with axum's `ConnectInfo<SocketAddr>` when `connect_info` is set.
    async fn start(app: Router, connect_info: bool) -> AxumServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = async move {
            let _ = stopped.await;
        };
        // The one-line switch from `axum::serve(listener, app)`.
        let handle = if connect_info {
            let server = pipelined::serve(listener, app).connect_info(ConnectInfo);
            tokio::spawn(server.with_graceful_shutdown(signal).into_future())
        } else {
            let server = pipelined::serve(listener, app);
            tokio::spawn(server.with_graceful_shutdown(signal).into_future())
        };
        AxumServer { addr, stop, handle }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(common::HANG, self.handle)
            .await
            .expect("server did not shut down")
            .expect("server task panicked")
            .expect("server returned an error");
    }
}

fn json_request(method: &str, path: &str, json: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{json}",
        json.len()
    )
}

fn user(response: &RawResponse) -> User {
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_slice(&response.body).expect("a User as JSON")
}

/// Eight requests in one write — path and JSON extractors, ConnectInfo, a HEAD, rejections
/// and the fallback — come back in request order with the right content.
#[tokio::test]
async fn pipelined_requests_through_axum_answer_in_order() {
    let server = AxumServer::start(app(), true).await;
    let mut client = Client::connect(server.addr).await;
    let mine = client.stream.local_addr().unwrap();
    let batch = [
        get_req("/users/7"),
        json_request("POST", "/users", r#"{"name":"ada"}"#),
        get_req("/whoami"),
        "HEAD /users/9 HTTP/1.1\r\nHost: test\r\n\r\n".to_owned(),
        get_req("/users/not-a-number"),
        json_request("POST", "/users", r#"{"nom":"x"}"#),
        get_req("/no/such/route"),
        get_req("/users/8"),
    ]
    .concat();
    client.send(batch).await;

    let r = client.response().await;
    assert_eq!(r.status, 200);
    let expected = User {
        id: 7,
        name: "user7".into(),
    };
    assert_eq!(user(&r), expected);

    let r = client.response().await;
    assert_eq!(r.status, 201);
    let expected = User {
        id: 42,
        name: "ada".into(),
    };
    assert_eq!(user(&r), expected);

    let r = client.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        mine.to_string(),
        "ConnectInfo is the client's address"
    );

    // HEAD: axum answers with GET's headers; the engine must send no body, or the next
    // response would not parse.
    let r = client.head_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));

    let r = client.response().await;
    assert_eq!(r.status, 400, "Path<u32> rejection: {}", r.text());

    let r = client.response().await;
    assert_eq!(r.status, 422, "Json<NewUser> rejection: {}", r.text());

    let r = client.response().await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "no such route\n");

    let r = client.response().await;
    assert_eq!(r.status, 200);
    let expected = User {
        id: 8,
        name: "user8".into(),
    };
    assert_eq!(user(&r), expected);

    assert!(!r.closes(), "the connection stays open");
    drop(client);
    server.shutdown().await;
}

/// axum handlers of one connection run concurrently: `/slow` can only finish after the later
/// `/release` handler ran, yet the answers still leave in request order.
#[tokio::test]
async fn slow_axum_handler_is_released_by_a_later_pipelined_request() {
    let server = AxumServer::start(app(), true).await;
    let mut client = Client::connect(server.addr).await;
    let batch = [get_req("/slow"), get_req("/users/1"), get_req("/release")];
    client.send(batch.concat()).await;
    let responses = client.responses(3).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200]);
    assert_eq!(responses[0].text(), "released\n");
    assert_eq!(user(&responses[1]).id, 1);
    assert_eq!(responses[2].text(), "releasing\n");
    drop(client);
    server.shutdown().await;
}

/// Ordinary, one-at-a-time requests from a real HTTP client.
#[tokio::test]
async fn reqwest_talks_to_the_axum_app() {
    let server = AxumServer::start(app(), true).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    let res = http.get(format!("{base}/users/5")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let got: User = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    let expected = User {
        id: 5,
        name: "user5".into(),
    };
    assert_eq!(got, expected);

    let res = http
        .post(format!("{base}/users"))
        .header("content-type", "application/json")
        .body(r#"{"name":"grace"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let got: User = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(got.name, "grace");

    // reqwest does not expose its local address; the raw test checks equality.
    let res = http.get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let peer: SocketAddr = res.text().await.unwrap().parse().unwrap();
    assert!(peer.ip().is_loopback());
    assert_ne!(peer.port(), server.addr.port());

    let res = http.get(format!("{base}/missing")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.text().await.unwrap(), "no such route\n");

    server.shutdown().await;
}

/// `ConnectInfo` comes from the engine: without `.connect_info(...)` axum's extractor finds no
/// extension and rejects with 500, in order, and the connection goes on.
#[tokio::test]
async fn connect_info_is_only_there_when_asked_for() {
    let server = AxumServer::start(app(), false).await;
    let mut client = Client::connect(server.addr).await;
    client
        .send([get_req("/whoami"), get_req("/users/3")].concat())
        .await;
    let r = client.response().await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("ConnectInfo"), "{}", r.text());
    let r = client.response().await;
    assert_eq!(r.status, 200);
    assert_eq!(user(&r).id, 3);
    drop(client);
    server.shutdown().await;
}
