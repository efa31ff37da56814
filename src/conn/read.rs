//! The read side of a connection: the read buffer, the request-head parser, and the pump that
//! decodes a request body to its exact end before the next head is parsed.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::Request;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

use crate::body::{Body, BodyError, Chunk};
use crate::proto::decode::{Decoded, Decoder};
use crate::proto::error::EngineError;
use crate::proto::request::{Framing, Meta, Parsed, Parser};
use crate::proto::trusted::Validated;
use crate::Config;

/// Bytes reserved in the read buffer before each socket read: enough for a pipelined batch of
/// small requests in one read, small enough to keep idle connections cheap.
pub(crate) const READ_CHUNK: usize = 8 * 1024;

/// The stack buffer an idle connection without a read buffer reads with: big enough for most
/// single requests, small enough to cost nothing while parked.
const IDLE_READ: usize = 512;

/// The connection's input: bytes read and not yet parsed.
pub(crate) struct Input {
    pub(crate) buf: BytesMut,
    parser: Parser,
    /// The buffer was given back while idle: read through a small stack buffer instead.
    parked: bool,
}

impl Input {
    pub(crate) fn new(buf: BytesMut) -> Self {
        Input {
            buf,
            parser: Parser::default(),
            parked: false,
        }
    }

    /// Parses and checks the next request head from the buffer; `None` when more bytes are
    /// needed.
    #[inline]
    pub(crate) fn next_parsed(&mut self, c: &Config) -> Result<Option<Parsed>, EngineError> {
        self.parser
            .parse_head(&mut self.buf, c.max_header_bytes, c.max_headers)
    }

    /// Builds the head [`Input::next_parsed`] gave last into `request` (a blank one).
    #[inline]
    pub(crate) fn build_into(
        &mut self,
        parsed: &mut Parsed,
        c: &Config,
        request: &mut Request<Body>,
    ) -> Result<Meta, EngineError> {
        self.parser.build_into(parsed, c.max_body_bytes, request)
    }

    /// The header fields of the head [`Input::next_parsed`] gave last.
    pub(crate) fn fields<'a>(&'a self, parsed: &'a Parsed) -> (&'a Validated, &'a Bytes) {
        self.parser.fields(parsed)
    }

    /// Reads whatever the socket has; `Ok(0)` is EOF.
    pub(crate) fn poll_read<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if self.parked {
            return self.poll_read_parked(io, cx);
        }
        self.buf.reserve(READ_CHUNK);
        pin!(io.read_buf(&mut self.buf)).poll(cx)
    }

    /// One read through a small stack buffer, for a connection that gave its buffer back; what
    /// arrives starts a new, right-sized buffer.
    fn poll_read_parked<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        let mut small = [0u8; IDLE_READ];
        let mut read = ReadBuf::new(&mut small);
        std::task::ready!(Pin::new(io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        self.buf.extend_from_slice(read.filled());
        self.parked = false;
        Poll::Ready(Ok(n))
    }

    /// The buffer was given back (see [`Input::park`]).
    pub(crate) fn is_parked(&self) -> bool {
        self.parked
    }

    /// Gives the read buffer and the parser's scratch space back while the connection is idle.
    pub(crate) fn park(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
            self.parser.release_memory();
            self.parked = true;
        }
    }
}

/// Where a body pump got to.
pub(crate) enum Pumped {
    /// The body was decoded to its end; the next head may be parsed.
    Done,
    /// More bytes are needed from the socket.
    NeedBytes,
    /// The handler's body channel is full (the task will be woken when it has room).
    Blocked,
    /// The body could not be read to its end, for this reason (the handler was told): read
    /// nothing more.
    Failed(BodyError),
}

/// Decodes one request body, streaming it to the handler's [`Body`](crate::Body). Once the
/// handler drops its body, the rest is decoded and discarded.
pub(crate) struct Pump {
    decoder: Decoder,
    chunked: bool,
    tx: Option<mpsc::Sender<Chunk>>,
    /// A chunk waiting for room in the channel; boxed, since only a handler that reads slower
    /// than the client sends makes one.
    sending: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// What the pump reports once `sending` has gone out.
    then: Option<Pumped>,
}

impl Pump {
    /// A pump for a body framed as `framing` feeding `tx`; `None` for an empty body.
    pub(crate) fn new(framing: Framing, tx: mpsc::Sender<Chunk>, c: &Config) -> Option<Self> {
        let decoder = Decoder::new(framing, c.max_body_bytes, c.max_header_bytes)?;
        Some(Pump {
            decoder,
            chunked: framing == Framing::Chunked,
            tx: Some(tx),
            sending: None,
            then: None,
        })
    }

    /// Decodes what `buf` holds and hands it to the handler, as far as possible without waiting.
    pub(crate) fn poll(&mut self, buf: &mut BytesMut, cx: &mut Context<'_>) -> Pumped {
        loop {
            if let Some(stop) = self.drive(cx) {
                return stop;
            }
            let chunk = match self.decoder.decode(buf) {
                Ok(Decoded::Data(data)) => Chunk::Data(data),
                Ok(Decoded::Trailers(map)) => Chunk::Trailers(map),
                Ok(Decoded::Done) if self.chunked => Chunk::End,
                Ok(Decoded::Done) => return Pumped::Done,
                Ok(Decoded::NeedMore) => return Pumped::NeedBytes,
                Err(error) => return self.fail(error, cx),
            };
            let last = matches!(chunk, Chunk::Trailers(_) | Chunk::End);
            if let Some(stop) = self.send(chunk, last.then_some(Pumped::Done)) {
                return stop;
            }
        }
    }

    /// The body cannot be read to its end: tell the handler, then stop.
    pub(crate) fn fail(&mut self, error: BodyError, cx: &mut Context<'_>) -> Pumped {
        if let Some(stop) = self.send(Chunk::Error(error), Some(Pumped::Failed(error))) {
            return stop;
        }
        self.drive(cx).unwrap_or(Pumped::Failed(error))
    }

    /// Sends a chunk unless the handler dropped its body; `then` is what to report once it
    /// has gone. Returns `None` when the chunk waits for room (see [`Pump::drive`]).
    fn send(&mut self, chunk: Chunk, then: Option<Pumped>) -> Option<Pumped> {
        let Some(tx) = &self.tx else {
            return then;
        };
        match tx.try_send(chunk) {
            Ok(()) => then,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.tx = None;
                then
            }
            Err(mpsc::error::TrySendError::Full(chunk)) => {
                let tx = tx.clone();
                self.sending = Some(Box::pin(async move {
                    let _ = tx.send(chunk).await;
                }));
                self.then = then;
                None
            }
        }
    }

    /// Moves a chunk that waits for room: `Blocked` while it waits, then what was to be
    /// reported after it, if anything.
    fn drive(&mut self, cx: &mut Context<'_>) -> Option<Pumped> {
        let sending = self.sending.as_mut()?;
        if sending.as_mut().poll(cx).is_pending() {
            return Some(Pumped::Blocked);
        }
        self.sending = None;
        self.then.take()
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::{Input, READ_CHUNK};

    #[test]
    fn an_idle_connection_gives_its_read_buffer_back() {
        let mut input = Input::new(BytesMut::with_capacity(READ_CHUNK));
        assert!(!input.is_parked(), "a new connection reads into its buffer");
        input.park();
        assert!(input.is_parked());
        assert_eq!(input.buf.capacity(), 0, "the buffer is given back");
    }

    #[test]
    fn a_buffer_holding_bytes_is_kept() {
        let mut input = Input::new(BytesMut::from(&b"GET / HT"[..]));
        input.park();
        assert!(!input.is_parked(), "a head has begun: it is not idle");
        assert_eq!(&input.buf[..], b"GET / HT");
    }
}
