//! The writing half of a connection: take slots in request order, wait for each one's own
//! response, encode it, and batch every response that is already finished into one write.

use std::any::Any;
use std::future::poll_fn;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::Body as HttpBody;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::meter::Meter;
use super::queue::{self, TakeError};
use super::slot::{Finished, Outcome, Slot, SlotKind, Timing};
use crate::proto::encode::{self, BodyFraming, Plan, RequestInfo};
use crate::proto::error::EngineError;
use crate::{BoxError, Config, ResponseBody};

/// Buffered response bytes that trigger a write even when more finished responses are queued:
/// bounds the memory a client that pipelines without reading can make us hold, while still
/// batching dozens of small responses per write.
const HIGH_WATER: usize = 64 * 1024;

/// Write-buffer capacity kept between batches of a pipelining client.
const KEEP_IDLE: usize = 4 * 1024;

/// Write-buffer capacity allocated when there is none.
const FIRST_BUF: usize = 512;

/// Body chunks at least this large are written straight from the handler's buffer instead of
/// being copied into ours.
const DIRECT_WRITE: usize = 16 * 1024;

pub(crate) struct Writer<'a, W, B> {
    io: &'a mut W,
    buf: Vec<u8>,
    slots: queue::Receiver<Slot<B>>,
    /// `Server-Timing` figures for the response being encoded (when the header is on).
    timing: Option<(Duration, Duration)>,
    /// Responses encoded since the buffer was last written out and waited.
    batch: usize,
    /// Put the timings in a `Server-Timing` header.
    server_timing: bool,
    /// The engine's metrics (see `Config::metrics`).
    meter: Option<Meter>,
}

impl<'a, W, B> Writer<'a, W, B>
where
    W: AsyncWrite + Unpin,
    B: HttpBody<Data = Bytes> + 'static,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(io: &'a mut W, slots: queue::Receiver<Slot<B>>, config: &Config) -> Self {
        Writer {
            io,
            buf: Vec::new(),
            slots,
            timing: None,
            batch: 0,
            server_timing: config.server_timing,
            meter: config.metrics.then(Meter::new),
        }
    }

    /// Writes every response in order until the reader is done and all slots are written, or a
    /// response ends the connection. Then the write side is shut down.
    ///
    /// As in the reader, the common case creates no future: a finished slot whose body is
    /// already whole (every engine answer, and router answers built from bytes or strings) is
    /// taken and encoded synchronously; only a slot still running, a streaming body, or a full
    /// buffer makes the writer await.
    pub(crate) async fn run(mut self) -> io::Result<()> {
        loop {
            let slot = match self.slots.try_recv() {
                Ok(slot) => slot,
                Err(TakeError::Closed) => break,
                Err(TakeError::Empty) => {
                    // The batch is over: write it before waiting for the next slot. A lone
                    // response's buffer is given back (the connection may now sit idle for
                    // long); a pipelining client's is kept up to KEEP_IDLE, since regrowing it
                    // for every batch would cost more than it saves.
                    self.flush().await?;
                    if self.batch <= 1 {
                        self.buf = Vec::new();
                    } else {
                        self.buf.shrink_to(KEEP_IDLE);
                    }
                    self.batch = 0;
                    match self.slots.recv().await {
                        Some(slot) => slot,
                        None => break,
                    }
                }
            };
            let Slot {
                kind,
                info,
                close,
                timing,
                span,
            } = slot;
            let (outcome, timing) = match kind {
                SlotKind::Continue => {
                    self.buf.extend_from_slice(encode::CONTINUE);
                    continue;
                }
                SlotKind::Ready(outcome) => (outcome, timing),
                SlotKind::Pending(rx) => {
                    let (outcome, finished) = self.wait(rx).await?;
                    let timing = timing.map(|t| Timing { finished, ..t });
                    (outcome, timing)
                }
            };
            // Handler time, and how long the finished response waited for earlier ones.
            let timings = timing.map(|t| {
                let now = Instant::now();
                (
                    t.finished - t.started,
                    now.saturating_duration_since(t.finished),
                )
            });
            if let Some(meter) = &self.meter {
                meter.answered(timings);
            }
            self.timing = timings.filter(|_| self.server_timing);
            self.batch += 1;
            if self.buf.capacity() == 0 {
                // One allocation for a typical response head, not a series of small regrowths.
                self.buf.reserve(FIRST_BUF);
            }
            // The reader has stopped and nothing follows: say so in this response.
            let last = close || self.slots.is_finished();
            if !span.is_disabled() {
                record(&span, &outcome, timings);
            }
            let ends = match outcome {
                Outcome::Engine { error, close } => {
                    self.write_engine(error, info, last || close);
                    last || close
                }
                Outcome::Response(response, plan) => {
                    let plan = plan.closing(last);
                    match self.encode_whole(response, info, plan) {
                        Ok(ends) => ends,
                        // Boxed: only streaming bodies pay for the streaming state; inline it
                        // would size the future of every connection.
                        Err(response) => {
                            Box::pin(self.write_response(response, info, plan)).await?
                        }
                    }
                }
            };
            if ends {
                break;
            }
            if self.buf.len() >= HIGH_WATER {
                self.flush().await?;
            }
        }
        self.flush().await?;
        self.io.shutdown().await
    }

    /// Encodes a response whose body is already whole without awaiting anything; gives the
    /// response back when its body must be streamed. Returns whether the connection ends.
    fn encode_whole(
        &mut self,
        mut response: Response<B>,
        info: RequestInfo,
        plan: Plan,
    ) -> Result<bool, Response<B>> {
        let body = response.body_mut();
        let whole = if body.is_end_stream() {
            Some(Bytes::new())
        } else {
            // The router's own body type hands over its bytes without being polled.
            (body as &mut dyn Any)
                .downcast_mut::<ResponseBody>()
                .and_then(ResponseBody::take_whole)
        };
        let Some(data) = whole else {
            return Err(response);
        };
        let (status, headers) = (response.status(), response.headers());
        match encode::head(&mut self.buf, status, headers, info, plan, self.timing) {
            BodyFraming::None => {}
            _ => self.buf.extend_from_slice(&data),
        }
        Ok(plan.close)
    }

    /// Waits for a spawned handler's response, writing what is buffered first so finished
    /// responses never wait behind an unfinished one in our buffer.
    async fn wait(&mut self, mut rx: oneshot::Receiver<Finished<B>>) -> io::Result<Finished<B>> {
        let received = match rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {
                self.flush().await?;
                rx.await.ok()
            }
            other => other.ok(),
        };
        Ok(received.unwrap_or_else(|| {
            tracing::error!("handler panicked; answering 500");
            (Outcome::internal_error(), Instant::now())
        }))
    }

    /// A response the engine makes itself: the status and a one-line reason.
    fn write_engine(&mut self, error: EngineError, info: RequestInfo, close: bool) {
        let reason = error.status.canonical_reason().unwrap_or("Error");
        let text = format!("{reason}: {}\n", error.reason);
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let len = Some(text.len() as u64);
        let plan = encode::plan(error.status, &headers, len, info, close);
        let framing = encode::head(
            &mut self.buf,
            error.status,
            &headers,
            info,
            plan,
            self.timing,
        );
        if framing != BodyFraming::None {
            self.buf.extend_from_slice(text.as_bytes());
        }
    }

    async fn write_response(
        &mut self,
        response: Response<B>,
        info: RequestInfo,
        plan: Plan,
    ) -> io::Result<bool> {
        let (parts, body) = response.into_parts();
        let close = plan.close;
        let framing = encode::head(
            &mut self.buf,
            parts.status,
            &parts.headers,
            info,
            plan,
            self.timing,
        );
        if framing == BodyFraming::None {
            return Ok(close);
        }
        let completed = self.write_body(body, framing).await?;
        Ok(close || !completed)
    }

    /// Streams a body in `framing`. Returns false when the body failed or broke its declared
    /// length: the response is then cut short and the connection must close, since HTTP/1.1
    /// has no other way to tell the client.
    async fn write_body(&mut self, body: B, framing: BodyFraming) -> io::Result<bool> {
        let mut body = pin!(body);
        let mut written: u64 = 0;
        let mut trailers = None;
        loop {
            // Errors become `BoxError` at once: a body's own error type need not be `Send`.
            // A body that panics is a body that failed: the responses before it still go out.
            let mut poll_body = |cx: &mut std::task::Context<'_>| {
                let polled = catch_unwind(AssertUnwindSafe(|| body.as_mut().poll_frame(cx)));
                match polled {
                    Ok(polled) => polled.map(|f| f.map(|r| r.map_err(Into::<BoxError>::into))),
                    Err(_) => Poll::Ready(Some(Err("the response body panicked".into()))),
                }
            };
            let frame = match poll_fn(|cx| Poll::Ready(poll_body(cx))).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    self.flush().await?;
                    poll_fn(&mut poll_body).await
                }
            };
            let frame = match frame {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "response body failed; closing the connection");
                    return Ok(false);
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    trailers = frame.into_trailers().ok();
                    continue;
                }
            };
            written += data.len() as u64;
            if let BodyFraming::Length(declared) = framing {
                if written > declared {
                    tracing::warn!(declared, "response body longer than its length; closing");
                    return Ok(false);
                }
            }
            self.write_data(data, framing).await?;
        }
        match framing {
            BodyFraming::Chunked => encode::chunked_end(&mut self.buf, trailers.as_ref()),
            BodyFraming::Length(declared) if written != declared => {
                tracing::warn!(
                    declared,
                    written,
                    "response body shorter than its length; closing"
                );
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }

    async fn write_data(&mut self, data: Bytes, framing: BodyFraming) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let chunked = framing == BodyFraming::Chunked;
        if chunked {
            encode::chunk_start(&mut self.buf, data.len());
        }
        if data.len() >= DIRECT_WRITE {
            self.flush().await?;
            self.io.write_all(&data).await?;
        } else {
            self.buf.extend_from_slice(&data);
        }
        if chunked {
            encode::chunk_end(&mut self.buf);
        }
        if self.buf.len() >= HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Closes a request's span: its status and, with Server-Timing on, its timings.
fn record<B>(span: &tracing::Span, outcome: &Outcome<B>, timing: Option<(Duration, Duration)>) {
    let status = match outcome {
        Outcome::Response(response, _) => response.status(),
        Outcome::Engine { error, .. } => error.status,
    };
    span.record("status", status.as_u16());
    if let Some((handler, queue)) = timing {
        span.record("handler_ms", handler.as_secs_f64() * 1000.0);
        span.record("queue_ms", queue.as_secs_f64() * 1000.0);
    }
    tracing::debug!(parent: span, "answered");
}

#[cfg(test)]
mod tests {
    //! The writer batches: every response already finished goes out in one write, and a
    //! finished response is written before the writer waits on an unfinished one.

    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use http_body_util::Full;
    use tokio::sync::Notify;

    use super::*;

    /// Records each write call separately.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        wrote: Arc<Notify>,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.lock().unwrap().push(buf.to_vec());
            self.wrote.notify_one();
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn info() -> RequestInfo {
        RequestInfo {
            version: http::Version::HTTP_11,
            head: false,
        }
    }

    fn slot(kind: SlotKind<Full<Bytes>>) -> Slot<Full<Bytes>> {
        Slot {
            kind,
            info: info(),
            close: false,
            timing: None,
            span: tracing::Span::none(),
        }
    }

    fn response(text: &'static str) -> Outcome<Full<Bytes>> {
        let body = Full::new(Bytes::from_static(text.as_bytes()));
        Outcome::response(Response::new(body), info())
    }

    fn count(writes: &[Vec<u8>], needle: &str) -> usize {
        let all: Vec<u8> = writes.concat();
        String::from_utf8_lossy(&all).matches(needle).count()
    }

    #[tokio::test]
    async fn ready_responses_leave_in_one_write() {
        let (tx, rx) = queue::queue(32);
        for _ in 0..16 {
            assert!(tx
                .send(slot(SlotKind::Ready(response("ready"))))
                .await
                .is_ok());
        }
        drop(tx);
        let mut io = Recorder::default();
        Writer::new(&mut io, rx, &Config::default())
            .run()
            .await
            .unwrap();
        let writes = io.writes.lock().unwrap();
        assert_eq!(writes.len(), 1, "16 finished responses, one write");
        assert_eq!(count(&writes, "HTTP/1.1 200 OK"), 16);
    }

    #[tokio::test]
    async fn finished_responses_are_written_before_waiting_on_a_pending_one() {
        let (tx, rx) = queue::queue(32);
        let (answer, pending) = oneshot::channel();
        assert!(tx
            .send(slot(SlotKind::Ready(response("first"))))
            .await
            .is_ok());
        assert!(tx.send(slot(SlotKind::Pending(pending))).await.is_ok());
        assert!(tx
            .send(slot(SlotKind::Ready(response("third"))))
            .await
            .is_ok());
        drop(tx);
        let io = Recorder::default();
        let (writes, wrote) = (Arc::clone(&io.writes), Arc::clone(&io.wrote));
        let writer = tokio::spawn(async move {
            let mut io = io;
            Writer::new(&mut io, rx, &Config::default()).run().await
        });
        wrote.notified().await;
        {
            let writes = writes.lock().unwrap();
            assert_eq!(writes.len(), 1);
            assert_eq!(count(&writes, "first"), 1);
            assert_eq!(count(&writes, "third"), 0, "third must wait for second");
        }
        assert!(answer.send((response("second"), Instant::now())).is_ok());
        writer.await.unwrap().unwrap();
        let writes = writes.lock().unwrap();
        assert_eq!(writes.len(), 2, "second and third leave together");
        let text = String::from_utf8_lossy(&writes[1]).into_owned();
        assert!(text.find("second").unwrap() < text.find("third").unwrap());
    }
}
