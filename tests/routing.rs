//! The router's matched pattern (`MatchedPath`), services mounted on a path or as the
//! fallback, nested routers, and the route index a wrapper reads (`call_with_route`), called
//! directly as a tower service: what the engine would hand it.

use std::convert::Infallible;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use pipelined::{get, Body, MatchedPath, PathParams, Router};
use tower::ServiceExt;

/// Sends one request with no body and returns its status and body text.
async fn call(app: &Router, method: Method, target: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(target)
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Answers with the matched pattern and the `id` parameter, as the handler saw them.
async fn describe(req: Request<Body>) -> String {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let params = req.extensions().get::<PathParams>();
    let id = params.and_then(|p| p.get("id"));
    format!("{} {}", matched.unwrap_or("none"), id.unwrap_or("-"))
}

/// A service answering every method with the method and path it got.
fn echo_service(
) -> impl tower::Service<Request<Body>, Response = String, Error = Infallible, Future: Send>
       + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|req: Request<Body>| async move {
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        Ok(format!(
            "{} {} {}",
            req.method(),
            req.uri().path(),
            matched.unwrap_or("none")
        ))
    })
}

#[tokio::test]
async fn handlers_see_the_pattern_that_matched_not_the_path() {
    let app = Router::new()
        .route("/items/{id}", get(describe))
        .route("/plain", get(describe))
        .fallback(describe);
    let (status, body) = call(&app, Method::GET, "/items/42").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "/items/{id} 42"));
    let (_, body) = call(&app, Method::GET, "/plain").await;
    assert_eq!(body, "/plain -");
    let (_, body) = call(&app, Method::GET, "/elsewhere").await;
    assert_eq!(body, "none -", "the fallback matched no pattern");
}

#[tokio::test]
async fn a_route_service_answers_every_method_beside_routed_handlers() {
    let app = Router::new()
        .route_service("/svc/{*rest}", echo_service())
        .route("/mixed", get(|_req| async { "handler" }))
        .route_service("/mixed", echo_service());
    let (status, body) = call(&app, Method::DELETE, "/svc/a/b").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "no 405: the service answers for itself"
    );
    assert_eq!(body, "DELETE /svc/a/b /svc/{*rest}");
    assert_eq!(call(&app, Method::GET, "/mixed").await.1, "handler");
    assert_eq!(
        call(&app, Method::PUT, "/mixed").await.1,
        "PUT /mixed /mixed"
    );
}

#[tokio::test]
async fn a_fallback_service_answers_unmatched_paths() {
    let app = Router::new()
        .route("/known", get(|_req| async { "known" }))
        .fallback_service(echo_service());
    assert_eq!(call(&app, Method::GET, "/known").await.1, "known");
    let (status, body) = call(&app, Method::POST, "/unknown").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "POST /unknown none")
    );
}

#[tokio::test]
async fn a_nested_router_answers_under_its_prefix_with_the_whole_pattern() {
    let api = Router::new()
        .route("/", get(describe))
        .route("/users/{id}", get(describe));
    let app = Router::new()
        .route("/", get(|_req| async { "root" }))
        .nest("/api/v1", api);
    assert_eq!(call(&app, Method::GET, "/api/v1").await.1, "/api/v1 -");
    assert_eq!(
        call(&app, Method::GET, "/api/v1/users/7").await.1,
        "/api/v1/users/{id} 7"
    );
    assert_eq!(
        call(&app, Method::GET, "/users/7").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(call(&app, Method::GET, "/").await.1, "root");
    let (status, _) = call(&app, Method::POST, "/api/v1/users/7").await;
    assert_eq!(
        status,
        StatusCode::METHOD_NOT_ALLOWED,
        "method routing kept"
    );
}

#[test]
#[should_panic(expected = "must start with '/' and not end with it")]
fn a_nest_prefix_ending_in_a_slash_is_refused() {
    let _ = Router::new().nest("/api/", Router::new());
}

#[tokio::test]
async fn call_with_route_reports_the_pattern_index_for_every_answer() {
    let app = Router::new()
        .route("/a", get(|_req| async { "a" }))
        .route("/b/{x}", get(|_req| async { "b" }));
    let patterns: Vec<&str> = app.matched_paths().map(MatchedPath::as_str).collect();
    assert_eq!(patterns, ["/a", "/b/{x}"]);
    for (method, target, expected) in [
        (Method::GET, "/b/1", Some(1)),
        (Method::POST, "/b/1", Some(1)),  // the router's own 405
        (Method::OPTIONS, "/a", Some(0)), // the router's own 204 with Allow
        (Method::GET, "/nope", None),
        (Method::OPTIONS, "*", None),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(target)
            .body(Body::empty())
            .unwrap();
        let (route, answer) = app.call_with_route(req);
        assert_eq!(route, expected, "{method} {target}");
        answer.await.unwrap();
    }
}

#[tokio::test]
async fn without_matched_path_leaves_the_extensions_to_the_parameters() {
    let app = Router::new()
        .route("/items/{id}", get(describe))
        .without_matched_path();
    assert_eq!(call(&app, Method::GET, "/items/3").await.1, "none 3");
    let req = Request::get("/items/3").body(Body::empty()).unwrap();
    let (route, _) = app.call_with_route(req);
    assert_eq!(route, Some(0), "the route is still reported to a wrapper");
}
