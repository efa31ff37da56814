//! `GET /fanout?n=&ms=`: `n` concurrent calls to this server's own `/delay/{ms}`, joined — a
//! parallel for-loop, answered after about `ms` rather than `n × ms`.
//!
//! Every call is an outbound connection, so an unbounded fanout lets one client multiply
//! itself: 32 pipelined `n=100` requests would open 3,200 sockets (6,400 descriptors, both
//! ends being ours). So all fanouts share one client and one server-wide budget of
//! [`MAX_CALLS_IN_FLIGHT`] calls; a fanout that does not fit in what is left is refused at
//! once with `503` and `Retry-After`, never queued (a queue would only turn the overload into
//! memory and latency). Each call in flight or idle in the pool is one connection with both
//! ends in this process, so fanouts hold at most 2 × ([`MAX_CALLS_IN_FLIGHT`] + 100 idle) =
//! 600 descriptors, whatever `--max-connections` says.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use pipelined::{Body, IntoResponse, ResponseBody};
use tokio::sync::Semaphore;

use crate::send::tls::{client_config, Trust};

/// Most calls one `/fanout` may make.
pub const MAX_FANOUT: usize = 100;

/// Longest delay a `/fanout` call may ask for.
pub const MAX_FANOUT_MS: u64 = 10_000;

/// Calls in flight for all fanouts together: two full-size fanouts at once. Beyond it a
/// fanout answers `503` at once.
pub const MAX_CALLS_IN_FLIGHT: usize = 2 * MAX_FANOUT;

/// Idle connections the shared client keeps to us between fanouts, so a steady fanout load
/// reuses its connections instead of opening new ones, while a burst does not leave hundreds
/// of idle sockets behind.
const MAX_IDLE: usize = MAX_FANOUT;

/// How long an idle pooled connection is kept; well under the server's idle timeout, so the
/// client, not the server, closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `Retry-After` says when the budget is spent: a fanout takes about its `ms`, so the
/// budget comes back within seconds.
const RETRY_AFTER_SECS: &str = "1";

/// The calls' client: hyper's pooled HTTP/1.1 client, over TLS when the server is.
type Calls = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The shared client and the server-wide call budget.
#[derive(Clone)]
pub struct Fanout {
    client: Calls,
    /// `http://ADDR` or `https://ADDR`: where the calls go.
    base: String,
    budget: Arc<Semaphore>,
}

/// Where this process serves the demo: the address `/fanout` calls back into, and whether
/// those calls speak HTTPS (`--tls-cert`).
#[derive(Clone, Copy, Debug)]
pub struct ServedAt {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl Fanout {
    /// Fanouts to the server at `own`. Over TLS the calls do not check its certificate: they
    /// go to the address this very process listens on, whatever name the certificate has.
    pub fn new(own: ServedAt) -> Result<Self, String> {
        // No ALPN of its own: hyper-rustls sets it from the versions enabled below.
        let tls = client_config(&Trust::Anything)?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let scheme = if own.tls { "https" } else { "http" };
        Ok(Fanout {
            client,
            base: format!("{scheme}://{}", own.addr),
            budget: Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT)),
        })
    }

    /// Answers one `/fanout` request.
    pub async fn answer(self, req: Request<Body>) -> http::Response<ResponseBody> {
        let Some((n, ms)) = params(req.uri().query().unwrap_or("")) else {
            let msg = format!("fanout needs n=1..{MAX_FANOUT} and ms=0..{MAX_FANOUT_MS}\n");
            return (StatusCode::BAD_REQUEST, msg).into_response();
        };
        // `n` fits in u32: it is at most MAX_FANOUT.
        let Ok(permits) = Arc::clone(&self.budget).try_acquire_many_owned(n as u32) else {
            return busy();
        };
        let Ok(url) = format!("{}/delay/{ms}", self.base).parse::<Uri>() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "bad fanout address\n").into_response();
        };
        let started = tokio::time::Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..n {
            let request = self.client.get(url.clone());
            calls.spawn(async move {
                let res = request.await.ok()?;
                let ok = res.status().is_success();
                // Read to the end, so the connection goes back to the pool.
                res.into_body().collect().await.ok()?;
                Some(ok)
            });
        }
        let mut ok = 0;
        while let Some(joined) = calls.join_next().await {
            if matches!(joined, Ok(Some(true))) {
                ok += 1;
            }
        }
        drop(permits);
        let took = started.elapsed().as_millis();
        let status = if ok == n {
            StatusCode::OK
        } else {
            StatusCode::BAD_GATEWAY
        };
        let body = format!("{ok} of {n} calls to /delay/{ms} answered, in parallel: {took} ms\n");
        (status, body).into_response()
    }
}

/// `n` and `ms` from the query, each within its bounds.
fn params(query: &str) -> Option<(usize, u64)> {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse::<u64>().ok())
    };
    let n = param("n").filter(|n| (1..=MAX_FANOUT as u64).contains(n))?;
    let ms = param("ms").filter(|ms| *ms <= MAX_FANOUT_MS)?;
    Some((n as usize, ms))
}

/// `503` with `Retry-After`: the server-wide budget of calls is spent.
fn busy() -> http::Response<ResponseBody> {
    let msg = format!(
        "too many fanout calls in flight (at most {MAX_CALLS_IN_FLIGHT} server-wide), try again\n"
    );
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_bounded() {
        assert_eq!(params("n=3&ms=20"), Some((3, 20)));
        assert_eq!(params("ms=0&n=100"), Some((100, 0)));
        for bad in [
            "",
            "n=0&ms=1",
            "n=101&ms=1",
            "n=2&ms=10001",
            "n=x&ms=1",
            "n=2",
        ] {
            assert_eq!(params(bad), None, "{bad:?}");
        }
    }

    /// With the budget spent, a fanout is refused at once, before any call is made: the
    /// address is one nothing listens on, so a call would fail as 502, not 503.
    #[tokio::test]
    async fn a_spent_budget_answers_503_with_retry_after() {
        let fanout = Fanout::new(ServedAt {
            addr: "127.0.0.1:9".parse().unwrap(),
            tls: false,
        })
        .unwrap();
        let held = Arc::clone(&fanout.budget)
            .try_acquire_many_owned((MAX_CALLS_IN_FLIGHT - 1) as u32)
            .unwrap();
        let req = |q: &str| {
            Request::builder()
                .uri(format!("/fanout?{q}"))
                .body(Body::empty())
                .unwrap()
        };
        let res = fanout.clone().answer(req("n=2&ms=0")).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], RETRY_AFTER_SECS);
        drop(held);
        let res = fanout.answer(req("n=2&ms=0")).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY, "the calls were made");
    }
}
