//! The demo's Prometheus metrics: the engine's own (see `pipelined::Config::metrics`) plus
//! `pipelined_requests_total{method, route, status}`, counted here around the router.
//!
//! The route label is the matched route pattern (`/delay/{ms}`), never the raw path: a label
//! per distinct path would grow without bound.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pipelined::{Body, BoxError, ResponseBody, Router};
use tower::Service;

/// Histogram buckets (seconds) for handler time and head-of-line wait: 10 µs to 60 s.
const SECONDS: &[f64] = &[
    0.00001, 0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Buckets for the pipeline depth (requests queued behind the one being written).
const DEPTH: &[f64] = &[0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Installs the process-wide Prometheus recorder.
pub fn install() -> Result<PrometheusHandle, String> {
    let suffix = |s: &str| metrics_exporter_prometheus::Matcher::Suffix(s.to_owned());
    PrometheusBuilder::new()
        .set_buckets_for_metric(suffix("_seconds"), SECONDS)
        .and_then(|b| b.set_buckets_for_metric(suffix("_pipeline_depth"), DEPTH))
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot start metrics: {e}"))
}

/// The router, counting each request by method, matched route and status.
#[derive(Clone)]
pub struct Counted {
    inner: Router,
    routes: Arc<matchit::Router<&'static str>>,
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
        }
    }
}

impl Service<Request<Body>> for Counted {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = pipelined::RouteFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let method = method_label(req.method());
        let route = match self.routes.at(req.uri().path()) {
            Ok(found) => *found.value,
            Err(_) => "unmatched",
        };
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await;
            let status = match &response {
                Ok(res) => res.status().as_u16().to_string(),
                Err(_) => "500".to_owned(),
            };
            metrics::counter!(
                "pipelined_requests_total",
                "method" => method,
                "route" => route,
                "status" => status
            )
            .increment(1);
            response
        })
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
