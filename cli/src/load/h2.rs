//! One HTTP/2 connection of the run (`--http2`), through hyper's client, for comparison with
//! HTTP/1.1 pipelining: up to `--pipeline` streams at once, each timed as it ends (HTTP/2
//! answers in any order).

use std::error::Error as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::plan::{Body, Stream};
use super::stats::Failure;
use super::worker::{Start, Worker};
use crate::send::report::timing_of;

/// Opens connections one after another for as long as the run has requests for them.
pub async fn connection(worker: &Worker) {
    while worker.more() {
        match worker.plan.open().await {
            Ok(Stream::Plain(tcp)) => drive(worker, tcp).await,
            Ok(Stream::Tls(tls)) => drive(worker, tls).await,
            Err(()) => worker.connect_failed(),
        }
    }
}

/// What one stream ends with: its latency's start, then its status, body bytes and
/// head-of-line wait, or why it failed.
type Outcome = (Instant, Result<(u16, u64, Option<f64>), Failure>);

/// Keeps `--pipeline` streams open on one connection until the run has no more requests or
/// the connection ends.
async fn drive<T>(worker: &Worker, io: T)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let plan = &worker.plan;
    let (send, connection) = match http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await {
        Ok(pair) => pair,
        Err(_) => return worker.connect_failed(),
    };
    let connection = tokio::task::spawn_local(connection);
    let mut open = Open {
        worker,
        streams: Streams::new(),
    };
    loop {
        while open.streams.len() < plan.depth && !send.is_closed() {
            let Some(start) = worker.take() else { break };
            let since = match start {
                Start::Now => Instant::now(),
                Start::At(at) => {
                    wait_until(worker, at, &mut open.streams).await;
                    at
                }
            };
            worker.begin();
            let request = plan.template.request();
            open.streams
                .push(stream(send.clone(), request, since, plan.timeout));
        }
        let Some(outcome) = open.streams.next().await else {
            break;
        };
        count(worker, outcome);
    }
    drop(send);
    connection.abort();
}

/// One request's stream: its response read to the end, within `-t` of being sent when given.
/// Its latency counts from `since`.
fn stream(
    mut send: http2::SendRequest<Body>,
    request: http::Request<Body>,
    since: Instant,
    limit: Option<Duration>,
) -> Pin<Box<dyn Future<Output = Outcome>>> {
    let sent = Instant::now();
    Box::pin(async move {
        let exchange = async {
            let response = send.send_request(request).await.map_err(failure)?;
            let status = response.status().as_u16();
            let values = response.headers().get_all("server-timing");
            let hol_wait = timing_of(values.iter().map(HeaderValue::as_bytes)).map(|t| t.queue);
            let mut body = response.into_body();
            let mut bytes = 0;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(failure)?;
                bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            Ok((status, bytes, hol_wait))
        };
        let outcome = match limit {
            None => exchange.await,
            Some(limit) => tokio::time::timeout_at((sent + limit).into(), exchange)
                .await
                .unwrap_or(Err(Failure::Timeout)),
        };
        (since, outcome)
    })
}

/// A connection's open streams; those still open when it is dropped (the run ended) are
/// aborted, neither answered nor failed.
struct Open<'w> {
    worker: &'w Worker,
    streams: Streams,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.worker.aborted(self.streams.len());
    }
}

/// The streams of one connection, each timed as it ends.
type Streams = FuturesUnordered<Pin<Box<dyn Future<Output = Outcome>>>>;

/// Waits for a scheduled time, counting the streams that end meanwhile.
async fn wait_until(worker: &Worker, at: Instant, streams: &mut Streams) {
    let sleep = tokio::time::sleep_until(at.into());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            biased;
            () = &mut sleep => return,
            Some(outcome) = streams.next(), if !streams.is_empty() => count(worker, outcome),
        }
    }
}

fn count(worker: &Worker, (since, outcome): Outcome) {
    match outcome {
        Ok((status, bytes, hol_wait)) => worker.answered(since, status, bytes, hol_wait),
        Err(failure) => worker.failed(failure),
    }
}

/// The summary's kind of a hyper error.
fn failure(e: hyper::Error) -> Failure {
    if let Some(io) = e.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        return Failure::of_io(io);
    }
    if e.is_incomplete_message() {
        Failure::Incomplete
    } else if e.is_canceled() || e.is_closed() {
        Failure::NotAnswered
    } else if e.is_parse() {
        Failure::Protocol
    } else {
        Failure::Other
    }
}
