//! The write side of a connection: responses encoded into one buffer, in order, and written
//! out a batch at a time.
//!
//! Nothing here waits except [`Output::flush`]: encoding a whole response is synchronous, and a
//! streaming body is polled frame by frame by the connection ([`Output::poll_stream`]), so a
//! pipelined batch of finished responses leaves in a single write.

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderMap, Response};
use http_body::Body as HttpBody;
use http_body_util::Full;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::slot::Outcome;
use crate::inline::Respond;
use crate::proto::cached_head::CachedHead;
use crate::proto::date;
use crate::proto::encode::{self, BodyFraming, Plan, RequestInfo};
use crate::proto::error::EngineError;
use crate::timing::Measured;
use crate::{BoxError, ResponseBody};

/// Buffered response bytes that trigger a write even when more finished responses could be
/// encoded: bounds the memory a client that pipelines without reading can make us hold, while
/// still batching dozens of small responses per write.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// Write-buffer capacity kept between batches.
const KEEP_IDLE: usize = 4 * 1024;

/// Write-buffer capacity allocated when there is none.
const FIRST_BUF: usize = 512;

/// Body chunks at least this large are written straight from the handler's buffer instead of
/// being copied into ours.
const DIRECT_WRITE: usize = 16 * 1024;

/// The most header fields a response's map may have room for and still be kept for the next
/// request ([`recycle_headers`]): a typical request head fits in it, and a map grown by one
/// large response is not held for the connection's lifetime.
const RECYCLED_HEADERS: usize = 24;

/// The pinned box a streamed body is polled in. The connection keeps the last one
/// ([`Streaming::into_box`]) for the next body: a body that is not the engine's own (`Full`,
/// axum's `Body`) is polled in place, and allocating a box for each would cost a `malloc` and a
/// `free` per response.
pub(crate) type BodyBox<B> = Pin<Box<Option<B>>>;

/// A response whose body is still being streamed.
pub(crate) struct Streaming<B> {
    /// Boxed: only streaming responses pay for the body's state. Always `Some` while streaming.
    body: BodyBox<B>,
    framing: BodyFraming,
    written: u64,
    /// Boxed: rare, and a header map inline would size every connection.
    trailers: Option<Box<HeaderMap>>,
}

/// Gives a written response's header map, emptied, to the connection's next request when that
/// has none: the request's map then costs no allocation (two `malloc`s and two `free`s, ~250
/// instructions per request under callgrind), as in hyper (`role.rs` reuses the drained
/// response map for the next request it parses). A map with room for more than
/// [`RECYCLED_HEADERS`] fields, or holding more values than that (repeated values of one name
/// live apart, in a list `capacity` does not count), is dropped instead.
fn recycle_headers(written: &mut HeaderMap, next: &mut HeaderMap) {
    let small = written.capacity() <= RECYCLED_HEADERS && written.len() <= RECYCLED_HEADERS;
    if next.capacity() == 0 && small {
        std::mem::swap(written, next);
        next.clear();
    }
}

/// The whole body, taken without streaming it, when its type is one that holds it all: the
/// router's own body type, and `Full<Bytes>` (hyper's and tower's usual answer), which is
/// ready on its first poll by construction. `None`: the body is streamed.
fn take_whole<B: 'static>(body: &mut B) -> Option<Bytes> {
    let body = body as &mut dyn Any;
    if let Some(body) = body.downcast_mut::<ResponseBody>() {
        return body.take_whole();
    }
    let full = body.downcast_mut::<Full<Bytes>>()?;
    match Pin::new(full).poll_frame(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Some(Ok(frame))) => frame.into_data().ok(),
        Poll::Ready(None) => Some(Bytes::new()),
        Poll::Pending => None,
    }
}

impl<B> Streaming<B> {
    fn body(&mut self) -> Pin<&mut B> {
        let body = self.body.as_mut().as_pin_mut();
        body.expect("a streaming body stays in its box until it is done")
    }

    /// The body's box, emptied (the body dropped), for the next body to stream.
    pub(crate) fn into_box(mut self) -> BodyBox<B> {
        self.body.set(None);
        self.body
    }
}

/// What encoding a response left to do.
pub(crate) enum Encoded<B> {
    /// Head and body are in the buffer.
    Whole,
    /// The head is in the buffer; the body follows frame by frame.
    Stream(Streaming<B>),
}

/// Where streaming a body got to.
pub(crate) enum Streamed {
    /// Waiting for the body's next frame (the task will be woken).
    Waiting,
    /// The buffer is full: write it out, then poll again.
    Flush,
    /// The body is finished; `failed`: it failed or broke its declared length, which the
    /// client can only be told by closing the connection (`KeepAlive::stream_done`).
    Done { failed: bool },
}

/// The connection's write buffer and what goes into it.
pub(crate) struct Output {
    buf: Vec<u8>,
    /// A large body chunk written right after `buf`, without being copied into it.
    direct: Option<Bytes>,
    /// Put handler and queue times in a `Server-Timing` header.
    server_timing: bool,
    /// The cached `Date` was refreshed for the responses being encoded now.
    dated: bool,
    /// The last inline answer's head, for the next identical one.
    inline_head: CachedHead,
}

impl Output {
    pub(crate) fn new(server_timing: bool) -> Self {
        Output {
            buf: Vec::new(),
            direct: None,
            server_timing,
            dated: false,
            inline_head: CachedHead::default(),
        }
    }

    /// Bytes are waiting to be written.
    pub(crate) fn has_bytes(&self) -> bool {
        !self.buf.is_empty() || self.direct.is_some()
    }

    /// Enough is buffered that it should be written before anything more is encoded.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= HIGH_WATER || self.direct.is_some()
    }

    /// Gives the buffer and the kept inline head back while the connection is idle.
    pub(crate) fn release_memory(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        self.inline_head = CachedHead::default();
    }

    /// Appends the `100 Continue` interim response.
    pub(crate) fn encode_continue(&mut self) {
        self.buf.extend_from_slice(encode::CONTINUE);
    }

    /// Encodes an answer; `last` says nothing follows it on this connection
    /// (`KeepAlive::is_last`, which has already counted the answer's own wish to close). `timing` is the
    /// handler time and head-of-line wait, for `Server-Timing`. A body to stream is pinned in
    /// `spare` when there is one; a service response's header map, emptied, goes to
    /// `next_headers` (the connection's blank request) when that has none ([`recycle_headers`]).
    /// The answer is encoded where it lies, not copied; only a body to stream is taken from it.
    pub(crate) fn encode<B>(
        &mut self,
        outcome: &mut Outcome<B>,
        info: RequestInfo,
        last: bool,
        timing: Option<&Measured>,
        spare: &mut Option<BodyBox<B>>,
        next_headers: &mut HeaderMap,
    ) -> Encoded<B>
    where
        B: HttpBody<Data = Bytes> + 'static,
    {
        if self.buf.capacity() == 0 {
            // One allocation for a typical response head, not a series of small regrowths.
            self.buf.reserve(FIRST_BUF);
        }
        if !self.dated {
            date::refresh();
            self.dated = true;
        }
        let timing = timing.filter(|_| self.server_timing);
        match outcome {
            Outcome::Engine { error, .. } => {
                self.encode_engine(*error, info, last, timing);
                Encoded::Whole
            }
            Outcome::Response(response, plan) => {
                let plan = plan.closing(last);
                match self.encode_response(response, info, plan, timing, next_headers) {
                    None => Encoded::Whole,
                    Some(framing) => {
                        let Outcome::Response(response, _) = outcome.take() else {
                            unreachable!("matched as a response above")
                        };
                        let mut body = spare.take().unwrap_or_else(|| Box::pin(None));
                        body.set(Some(response.into_body()));
                        Encoded::Stream(Streaming {
                            body,
                            framing,
                            written: 0,
                            trailers: None,
                        })
                    }
                }
            }
            Outcome::Inline(respond, plan) => {
                self.encode_inline(respond, info, plan.closing(last), timing);
                Encoded::Whole
            }
        }
    }

    /// A service's response: its head, and its body when that is whole at once. Returns how
    /// the body is framed when it must be streamed instead.
    fn encode_response<B>(
        &mut self,
        response: &mut Response<B>,
        info: RequestInfo,
        plan: Plan,
        timing: Option<&Measured>,
        next_headers: &mut HeaderMap,
    ) -> Option<BodyFraming>
    where
        B: HttpBody<Data = Bytes> + 'static,
    {
        let body = response.body_mut();
        let whole = if body.is_end_stream() {
            Some(Bytes::new())
        } else {
            take_whole(body)
        };
        let (status, headers) = (response.status(), response.headers());
        let framing = encode::response_head(&mut self.buf, status, headers, info, plan, timing);
        recycle_headers(response.headers_mut(), next_headers);
        if let Some(data) = whole {
            if framing != BodyFraming::None {
                self.buf.extend_from_slice(&data);
            }
            return None;
        }
        (framing != BodyFraming::None).then_some(framing)
    }

    /// An inline handler's answer: head and body straight into the buffer.
    fn encode_inline(
        &mut self,
        respond: &Respond,
        info: RequestInfo,
        plan: Plan,
        timing: Option<&Measured>,
    ) {
        let framing = self
            .inline_head
            .write(&mut self.buf, respond, info, plan, timing);
        if framing != BodyFraming::None {
            self.buf.extend_from_slice(&respond.body);
        }
    }

    /// A response the engine makes itself: the status and a one-line reason.
    fn encode_engine(
        &mut self,
        error: EngineError,
        info: RequestInfo,
        close: bool,
        timing: Option<&Measured>,
    ) {
        let text = error.text();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(crate::response::TEXT),
        );
        let len = Some(text.len() as u64);
        let plan = encode::plan(error.status, &headers, len, info, close);
        let framing =
            encode::response_head(&mut self.buf, error.status, &headers, info, plan, timing);
        if framing != BodyFraming::None {
            self.buf.extend_from_slice(text.as_bytes());
        }
    }

    /// Moves a streaming body's ready frames into the buffer.
    pub(crate) fn poll_stream<B>(&mut self, s: &mut Streaming<B>, cx: &mut Context<'_>) -> Streamed
    where
        B: HttpBody<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        loop {
            if self.is_full() {
                return Streamed::Flush;
            }
            // Errors become `BoxError` at once: a body's own error type need not be `Send`.
            // A body that panics is a body that failed: the responses before it still go out.
            let polled = catch_unwind(AssertUnwindSafe(|| s.body().poll_frame(cx)));
            let frame = match polled {
                Ok(Poll::Pending) => return Streamed::Waiting,
                Ok(Poll::Ready(frame)) => frame.map(|f| f.map_err(Into::<BoxError>::into)),
                Err(_) => Some(Err("the response body panicked".into())),
            };
            let frame = match frame {
                None => return self.end_stream(s),
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "response body failed; closing the connection");
                    return Streamed::Done { failed: true };
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    s.trailers = frame.into_trailers().ok().map(Box::new);
                    continue;
                }
            };
            s.written += data.len() as u64;
            if let BodyFraming::Length(declared) = s.framing {
                if s.written > declared {
                    tracing::warn!(declared, "response body longer than its length; closing");
                    return Streamed::Done { failed: true };
                }
            }
            self.push_data(data, s.framing);
        }
    }

    /// Finishes a body that ended: the last chunk, or a check of the declared length (a
    /// shorter body can only be told to the client by closing).
    fn end_stream<B>(&mut self, s: &mut Streaming<B>) -> Streamed {
        match s.framing {
            BodyFraming::Chunked => encode::chunked_end(&mut self.buf, s.trailers.as_deref()),
            BodyFraming::Length(declared) if s.written != declared => {
                tracing::warn!(
                    declared,
                    written = s.written,
                    "response body shorter than its length; closing"
                );
                return Streamed::Done { failed: true };
            }
            _ => {}
        }
        Streamed::Done { failed: false }
    }

    fn push_data(&mut self, data: Bytes, framing: BodyFraming) {
        if data.is_empty() {
            return;
        }
        let chunked = framing == BodyFraming::Chunked;
        if chunked {
            encode::chunk_start(&mut self.buf, data.len());
        }
        if data.len() >= DIRECT_WRITE && !chunked {
            self.direct = Some(data);
            return;
        }
        self.buf.extend_from_slice(&data);
        if chunked {
            encode::chunk_end(&mut self.buf);
        }
    }

    /// Writes everything buffered. The buffer is kept, up to [`KEEP_IDLE`], for the next
    /// batch (regrowing it every time would cost more than it saves); a connection that goes
    /// idle gives it back ([`Output::release_memory`]).
    pub(crate) async fn flush<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> io::Result<()> {
        if !self.buf.is_empty() {
            io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        if let Some(data) = self.direct.take() {
            io.write_all(&data).await?;
        }
        self.buf.shrink_to(KEEP_IDLE);
        // The next batch re-reads the clock for its `Date`.
        self.dated = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use http_body::Frame;

    use http::HeaderMap;

    use super::{recycle_headers, BodyBox, Encoded, Output, Streamed, RECYCLED_HEADERS};
    use crate::conn::slot::Outcome;
    use crate::proto::encode::{BodyFraming, RequestInfo};

    /// What an HTTP/1.1 GET asks of its response.
    fn get11() -> RequestInfo {
        RequestInfo {
            version: http::Version::HTTP_11,
            head_method: false,
        }
    }

    /// Encodes `outcome` as the answer to an HTTP/1.1 GET, not the last, untimed; a body to
    /// stream goes into `spare`'s box when there is one.
    fn encode<B>(
        output: &mut Output,
        outcome: &mut Outcome<B>,
        spare: &mut Option<BodyBox<B>>,
    ) -> Encoded<B>
    where
        B: http_body::Body<Data = Bytes> + 'static,
    {
        let next = &mut HeaderMap::new();
        output.encode(outcome, get11(), false, None, spare, next)
    }

    /// Fills the buffer with `n` bytes' worth of interim responses.
    fn fill(output: &mut Output, n: usize) {
        while output.buf.len() < n {
            output.encode_continue();
        }
    }

    #[tokio::test]
    async fn a_flushed_buffer_keeps_4_kib_for_the_next_batch_and_no_more() {
        let mut output = Output::new(false);
        fill(&mut output, 20 * 1024);
        let mut written = Vec::new();
        output.flush(&mut written).await.unwrap();
        assert!(written.len() >= 20 * 1024);
        assert!(!output.has_bytes());
        assert!(
            output.buf.capacity() >= 4 * 1024,
            "the next batch reuses it"
        );
        assert!(
            output.buf.capacity() < 20 * 1024,
            "a big batch's excess goes"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_gives_its_write_buffer_back() {
        let mut output = Output::new(false);
        fill(&mut output, 100);
        output.release_memory();
        assert!(output.buf.capacity() > 0, "bytes still owed are kept");
        output.flush(&mut Vec::new()).await.unwrap();
        output.release_memory();
        assert_eq!(output.buf.capacity(), 0);
    }

    #[test]
    fn body_chunks_of_16_kib_or_more_are_written_without_a_copy() {
        let mut output = Output::new(false);
        let framing = BodyFraming::Length(64 * 1024);
        output.push_data(Bytes::from(vec![b'a'; 2 * 1024]), framing);
        assert!(output.direct.is_none(), "a small chunk is copied");
        assert_eq!(output.buf.len(), 2 * 1024);
        assert!(!output.is_full());
        output.push_data(Bytes::from(vec![b'b'; 16 * 1024]), framing);
        assert_eq!(output.direct.as_ref().map(Bytes::len), Some(16 * 1024));
        assert_eq!(output.buf.len(), 2 * 1024, "not copied");
        assert!(output.is_full(), "written before anything more is encoded");
    }

    #[test]
    fn a_large_chunk_of_a_chunked_body_is_copied_with_its_framing() {
        let mut output = Output::new(false);
        output.push_data(Bytes::from(vec![b'c'; 16 * 1024]), BodyFraming::Chunked);
        assert!(output.direct.is_none(), "its framing goes around it");
        assert!(output.buf.starts_with(b"4000\r\n"));
        assert!(output.buf.ends_with(b"c\r\n"));
        assert_eq!(output.buf.len(), 16 * 1024 + 8);
    }

    /// A body of unknown length (so it is streamed) that sends `frames` and ends.
    struct Frames(VecDeque<Bytes>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    /// Streams a response declaring `content-length: declared` whose body sends `sent` bytes.
    fn stream(declared: u64, sent: usize) -> Streamed {
        let mut output = Output::new(false);
        let mut response =
            http::Response::new(Frames(VecDeque::from([Bytes::from(vec![b'x'; sent])])));
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, declared.into());
        let info = get11();
        let mut outcome = Outcome::response(response, info);
        let Encoded::Stream(mut streaming) = encode(&mut output, &mut outcome, &mut None) else {
            panic!("a body of unknown length is streamed");
        };
        output.poll_stream(&mut streaming, &mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_streamed_body_is_pinned_in_the_spare_box_and_gives_it_back_empty() {
        let mut output = Output::new(false);
        let info = get11();
        let mut spare = Some(Box::pin(None));
        let spare_at = spare.as_deref().map(|b| b as *const Option<Frames>);
        let body = Frames(VecDeque::from([Bytes::from_static(b"hi")]));
        let mut outcome = Outcome::response(http::Response::new(body), info);
        let Encoded::Stream(streaming) = encode(&mut output, &mut outcome, &mut spare) else {
            panic!("a body of unknown length is streamed");
        };
        assert!(spare.is_none(), "taken, not copied");
        let back = streaming.into_box();
        assert_eq!(
            Some(&*back as *const Option<Frames>),
            spare_at,
            "the same box"
        );
        assert!(back.is_none(), "the body is dropped");
    }

    #[test]
    fn a_full_body_is_written_whole_without_streaming() {
        let mut output = Output::new(false);
        let info = get11();
        let body = http_body_util::Full::new(Bytes::from_static(b"whole"));
        let mut outcome = Outcome::response(http::Response::new(body), info);
        let encoded = encode(&mut output, &mut outcome, &mut None);
        assert!(matches!(encoded, Encoded::Whole), "not streamed");
        assert!(output.buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(output.buf.ends_with(b"content-length: 5\r\n\r\nwhole"));
    }

    #[test]
    fn a_streamed_body_that_breaks_its_declared_length_fails() {
        assert!(matches!(stream(5, 5), Streamed::Done { failed: false }));
        assert!(
            matches!(stream(5, 3), Streamed::Done { failed: true }),
            "shorter: only closing tells the client"
        );
        assert!(
            matches!(stream(5, 7), Streamed::Done { failed: true }),
            "longer"
        );
    }

    /// A map with `fields` header fields, as a handler's response might carry.
    fn map_with(fields: usize) -> HeaderMap {
        let mut map = HeaderMap::new();
        for i in 0..fields {
            let name = http::HeaderName::try_from(format!("x-{i}")).unwrap();
            map.insert(name, http::HeaderValue::from_static("v"));
        }
        map
    }

    #[test]
    fn a_written_map_goes_to_the_next_request_emptied() {
        let mut written = map_with(3);
        let room = written.capacity();
        let mut next = HeaderMap::new();
        recycle_headers(&mut written, &mut next);
        assert!(
            next.is_empty(),
            "the response's fields must not reach a request"
        );
        assert_eq!(next.capacity(), room, "its room is kept");
        assert_eq!(written.capacity(), 0, "moved, not copied");
    }

    #[test]
    fn a_map_is_recycled_only_into_one_without_room_and_only_when_small() {
        let mut next = map_with(1);
        next.clear();
        let mut written = map_with(1);
        recycle_headers(&mut written, &mut next);
        assert_eq!(
            written.len(),
            1,
            "the next request already had a map: kept as it was"
        );

        let mut big = map_with(RECYCLED_HEADERS + 1);
        let mut next = HeaderMap::new();
        recycle_headers(&mut big, &mut next);
        assert_eq!(
            next.capacity(),
            0,
            "a map grown past RECYCLED_HEADERS is not held"
        );

        let mut repeated = map_with(1);
        for _ in 0..RECYCLED_HEADERS {
            repeated.append("x-0", http::HeaderValue::from_static("again"));
        }
        assert!(
            repeated.capacity() <= RECYCLED_HEADERS,
            "one name: a small table"
        );
        recycle_headers(&mut repeated, &mut next);
        assert_eq!(next.capacity(), 0, "nor one holding more values than that");
    }
}
