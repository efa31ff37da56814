//! `pipelined_requests_total{method, route, status}`, counted around the router.
//!
//! The route label is the matched route pattern (`/delay/{ms}`), never the raw path: a label
//! per distinct path would grow without bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use metrics::Counter;
use pipelined::{Body, BoxError, ResponseBody, RouteFuture, Router};
use tower::Service;

/// The router, counting each request by method, matched route and status.
pub struct Counted {
    inner: Router,
    routes: Arc<matchit::Router<&'static str>>,
    /// Counter handles already registered, per label set. Registering builds and hashes the
    /// labels; with handles kept, counting a request is one atomic add. Each connection (each
    /// clone) keeps its own, so the lock is never contended.
    counters: Arc<Mutex<HashMap<Labels, Counter>>>,
}

/// Method, matched route, status.
type Labels = (&'static str, &'static str, u16);

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted {
            inner: self.inner.clone(),
            routes: Arc::clone(&self.routes),
            counters: Arc::default(),
        }
    }
}

impl Counted {
    /// Counts requests to `inner`, labelled with the first of `patterns` that matches.
    pub fn new(inner: Router, patterns: &[&'static str]) -> Self {
        let mut routes = matchit::Router::new();
        for pattern in patterns {
            // The demo's own patterns: a bad one is a programming error caught by the tests.
            let _ = routes.insert(*pattern, *pattern);
        }
        Counted {
            inner,
            routes: Arc::new(routes),
            counters: Arc::default(),
        }
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
        let method = method_label(req.method());
        let route = match self.routes.at(req.uri().path()) {
            Ok(found) => *found.value,
            Err(_) => "unmatched",
        };
        CountedFuture {
            answer: self.inner.call(req),
            labels: (method, route),
            counters: Arc::clone(&self.counters),
        }
    }
}

/// The router's answer, counted when it is ready.
pub struct CountedFuture {
    answer: RouteFuture,
    labels: (&'static str, &'static str),
    counters: Arc<Mutex<HashMap<Labels, Counter>>>,
}

impl Future for CountedFuture {
    type Output = Result<Response<ResponseBody>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = std::task::ready!(self.answer.as_mut().poll(cx));
        let status = answer.as_ref().map_or(500, |res| res.status().as_u16());
        let (method, route) = self.labels;
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .entry((method, route, status))
            .or_insert_with(|| {
                metrics::counter!(
                    "pipelined_requests_total",
                    "method" => method,
                    "route" => route,
                    "status" => status.to_string()
                )
            })
            .increment(1);
        Poll::Ready(answer)
    }
}

/// A bounded label for the method: the standard ones, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}
