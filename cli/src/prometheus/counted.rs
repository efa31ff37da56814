//! `pipelined_requests_total{method, route, status}`, counted around the router.
//!
//! The route label is the matched route pattern (`/delay/{ms}`), never the raw path: a label
//! per distinct path would grow without bound.
//!
//! Counting runs on every request, so it looks nothing up by name or hash: the router says
//! which of its patterns matched as an index (`Router::call_with_route`), the method becomes
//! one too, both pick a cell in a table built once from the router's patterns, and each
//! (method, route) cell keeps the counter handles of the few statuses it has answered with.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use metrics::Counter;
use pipelined::{Body, BoxError, ResponseBody, RouteFuture, Router};
use tower::Service;

/// The method labels; anything else is counted as `other`, so the label stays bounded.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
];

/// Distinct statuses one (method, route) keeps handles for. Routes answer with a handful; a
/// handler answering with more is still counted right, each extra status through a registry
/// lookup.
const STATUSES: usize = 8;

/// The router, counting each request by method, matched route and status.
#[derive(Clone)]
pub struct Counted {
    inner: Router,
    table: &'static Table,
}

/// Every (method, route) pair's counters.
struct Table {
    /// Route labels: the router's patterns in its order, then `unmatched`.
    labels: usize,
    /// `METHODS.len() × labels` cells, method-major.
    cells: Box<[Cell]>,
}

/// One (method, route) pair: the counters of the statuses it answered with, registered on
/// first use so `/metrics` only shows pairs that were seen. `OnceLock` slots let any task
/// claim or read one without a lock.
struct Cell {
    method: &'static str,
    route: &'static str,
    statuses: [OnceLock<(u16, Counter)>; STATUSES],
}

impl Cell {
    fn count(&self, status: u16) {
        for slot in &self.statuses {
            // The first empty slot is claimed for this status; one claimed concurrently for
            // another status is skipped like any other.
            let (seen, counter) = slot.get_or_init(|| (status, self.register(status)));
            if *seen == status {
                counter.increment(1);
                return;
            }
        }
        self.register(status).increment(1);
    }

    fn register(&self, status: u16) -> Counter {
        metrics::counter!(
            "pipelined_requests_total",
            "method" => self.method,
            "route" => self.route,
            "status" => status.to_string()
        )
    }
}

impl Counted {
    /// Counts requests to `inner`, labelled with the pattern that matched.
    ///
    /// The table is built once per process and lives as long as it: every in-flight request
    /// points at its cell without a reference count that all worker threads would share. The
    /// labels are leaked with it, once.
    pub fn new(inner: Router) -> Self {
        let patterns = inner.matched_paths();
        let patterns = patterns.map(|matched| &*String::leak(matched.as_str().to_owned()));
        let labels: Vec<&'static str> = patterns.chain(["unmatched"]).collect();
        let cells = METHODS
            .iter()
            .flat_map(|method| labels.iter().map(move |route| (*method, *route)))
            .map(|(method, route)| Cell {
                method,
                route,
                statuses: Default::default(),
            })
            .collect();
        let table = Box::leak(Box::new(Table {
            labels: labels.len(),
            cells,
        }));
        Counted { inner, table }
    }
}

impl Service<Request<Body>> for Counted {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = CountedFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> CountedFuture {
        let table = self.table;
        let method = method_index(req.method());
        let (route, answer) = self.inner.call_with_route(req);
        let route = route.unwrap_or(table.labels - 1);
        let cell = &table.cells[method * table.labels + route];
        CountedFuture { answer, cell }
    }
}

/// The router's answer, counted when it is ready.
pub struct CountedFuture {
    answer: RouteFuture,
    cell: &'static Cell,
}

impl Future for CountedFuture {
    type Output = Result<Response<ResponseBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = std::task::ready!(self.answer.as_mut().poll(cx));
        let status = answer.as_ref().map_or(500, |res| res.status().as_u16());
        self.cell.count(status);
        Poll::Ready(answer)
    }
}

/// The index in `METHODS` of the method's label.
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::CONNECT => 8,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use pipelined::{get, IntoResponse, PathParams};
    use tower::ServiceExt;

    use super::*;
    use crate::prometheus::Registry;

    /// Answers with the status in the path.
    async fn status(req: Request<Body>) -> Response<ResponseBody> {
        let code = req
            .extensions()
            .get::<PathParams>()
            .and_then(|p| p.get("code"))
            .and_then(|c| c.parse::<u16>().ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        (code, "").into_response()
    }

    /// Sends each (method, path) through a fresh clone (as each connection has) and renders.
    async fn count(requests: &[(&str, &str)]) -> String {
        let registry = Registry::default();
        let _recorder = metrics::set_default_local_recorder(&registry);
        let app = Router::new().route("/status/{code}", get(status));
        let app = Counted::new(app);
        for (method, path) in requests {
            let req = Request::builder()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(*path)
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        registry.render()
    }

    /// The `pipelined_requests_total` sample lines.
    fn samples(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("pipelined_requests_total{"))
            .collect()
    }

    #[tokio::test]
    async fn counts_by_method_matched_route_and_status() {
        let text = count(&[
            ("GET", "/status/200"),
            ("GET", "/status/201"),
            ("GET", "/status/200"),
            ("POST", "/status/200"),
            ("GET", "/nope"),
            ("PROPFIND", "/status/200"),
        ])
        .await;
        assert_eq!(
            samples(&text),
            [
                "pipelined_requests_total{method=\"GET\",route=\"/status/{code}\",status=\"200\"} 2",
                "pipelined_requests_total{method=\"GET\",route=\"/status/{code}\",status=\"201\"} 1",
                "pipelined_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
                "pipelined_requests_total{method=\"POST\",route=\"/status/{code}\",status=\"405\"} 1",
                "pipelined_requests_total{method=\"other\",route=\"/status/{code}\",status=\"405\"} 1",
            ]
        );
    }

    #[tokio::test]
    async fn more_statuses_than_slots_are_still_counted() {
        let codes: Vec<String> = (200..200 + 2 * STATUSES)
            .map(|code| format!("/status/{code}"))
            .collect();
        let requests: Vec<(&str, &str)> = codes
            .iter()
            .chain(&codes)
            .map(|path| ("GET", path.as_str()))
            .collect();
        let text = count(&requests).await;
        let samples = samples(&text);
        assert_eq!(samples.len(), 2 * STATUSES, "{text}");
        assert!(samples.iter().all(|l| l.ends_with(" 2")), "{text}");
    }
}
