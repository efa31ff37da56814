//! One HTTP/1.1 connection of the run: the request's bytes, encoded once, written up to
//! `--pipeline` deep; responses read in place off one buffer and matched to requests in order.
//!
//! Why not `pipelined::client`: its per-request future and per-response `http::Response`
//! (a `HeaderMap` built and dropped) cost ~8,000 instructions a response under callgrind,
//! 2.7x wrk's whole budget, which made this tool the bottleneck of every pipelined figure
//! (issue #21 point 5). A load generator needs four facts of a response (status, framing,
//! keep-alive, the `Server-Timing` queue wait), read here by [`super::framing`] with the
//! client's rules; the same request sent over and over needs encoding once.
//!
//! The ordering is `queue`: the requests written or waiting to be, oldest first; each complete
//! response answers its front. A request is in flight from the write that carries its first
//! byte (a server may answer before the rest arrives, as `/echo` streams). When the connection
//! ends early, what it owed fails as the client's would: the front request with the cause
//! (`incomplete`, `protocol`, `reset`, `timeout`), the other ones in flight `not answered`, the
//! rest `not sent`. Latency runs from the write that carried a request's first byte (under
//! `-q`, from its scheduled time) to its response's last byte.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::framing::{parse_head, Chunked, Framing, MAX_HEAD};
use super::plan::Stream;
use super::stats::Failure;
use super::worker::{Start, Worker};

/// Bytes asked of the socket per read: 16 KiB holds a hundred small responses.
const READ_SIZE: usize = 16 * 1024;
/// Under `-q`, how early the timer is set before a request is due; the rest of the wait is
/// spent yielding to the thread's other connections, because tokio's timer fires on 1 ms ticks
/// and would add up to a millisecond to every latency.
const SPIN: Duration = Duration::from_millis(1);

/// Opens connections one after another for as long as the run has requests for them.
pub async fn connection(worker: &Worker) {
    // A scheduled request taken but not yet written goes on to the next connection.
    let mut held = None;
    while worker.more() || held.is_some() {
        held = match worker.plan.open().await {
            Ok(Stream::Plain(tcp)) => Conn::new(worker, tcp, held).run().await,
            Ok(Stream::Tls(tls)) => Conn::new(worker, tls, held).run().await,
            Err(()) => {
                match held {
                    Some(_) => {
                        worker.begin();
                        worker.failed(Failure::Connect);
                    }
                    None => worker.connect_failed(),
                }
                None
            }
        };
    }
}

/// A request on this connection.
struct Entry {
    /// Where its bytes begin in what the connection has written and will write.
    offset: u64,
    /// Its time in the `-q` schedule: its latency counts from there.
    scheduled: Option<Instant>,
    /// When the write that carried its first byte returned: from then on it is in flight
    /// (the server may answer it, even before the rest of it arrives); its latency counts
    /// from here without `-q`, and its `-t` limit always.
    started: Option<Instant>,
}

impl Entry {
    fn since(&self) -> Option<Instant> {
        self.scheduled.or(self.started)
    }
}

/// Where the reader is in the response stream.
enum Reading {
    Head,
    Body {
        status: u16,
        hol_wait: Option<f64>,
        closes: bool,
        body: Body,
        bytes: u64,
    },
}

enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// Why the connection ended.
#[derive(Clone, Copy)]
enum End {
    /// The server closed its side.
    Eof,
    /// The server said its last response was its last (`Connection: close` and the like).
    Closed,
    Io(Failure),
    /// Bytes that are not the response owed.
    Protocol,
    /// The oldest request passed its `-t` limit: every written request is behind it, and
    /// HTTP/1.1 cannot take one back, so the connection is given up.
    TimedOut,
}

struct Conn<'w, T> {
    worker: &'w Worker,
    io: T,
    /// One request's bytes.
    request: &'w [u8],
    /// Requests outstanding at most.
    depth: usize,
    request_is_head: bool,
    timeout: Option<Duration>,
    /// Request bytes not yet written, from `out_at` on (what is before it went out).
    out: Vec<u8>,
    out_at: usize,
    flushed: bool,
    /// Bytes of requests queued and written on this connection so far.
    queued: u64,
    sent: u64,
    /// The requests owed a response, oldest first; the last `unstarted` have none of their
    /// bytes written yet.
    queue: VecDeque<Entry>,
    unstarted: usize,
    /// Bytes read and not yet used: `input[used..filled]`.
    input: Vec<u8>,
    used: usize,
    filled: usize,
    reading: Reading,
    /// A scheduled request whose time has not come.
    held: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    /// Writing failed (with this kind): nothing more is written, and the connection ends when
    /// reading does. The reading reports the same end as a plain close (Linux reports a reset
    /// once, to whichever call meets it first), so the write's kind is kept for it.
    broken: Option<Failure>,
}

/// A connection dropped with requests in flight (the run ended): they are aborted, neither
/// answered nor failed.
impl<T> Drop for Conn<'_, T> {
    fn drop(&mut self) {
        self.worker.aborted(self.queue.len());
    }
}

impl<'w, T: AsyncRead + AsyncWrite + Unpin> Conn<'w, T> {
    fn new(worker: &'w Worker, io: T, held: Option<Instant>) -> Self {
        let plan = &*worker.plan;
        Conn {
            worker,
            io,
            request: &plan.template.wire,
            // A request that asks the server to close is the last its connection answers.
            depth: if plan.template.closes { 1 } else { plan.depth },
            request_is_head: plan.template.is_head,
            timeout: plan.timeout,
            out: Vec::with_capacity(plan.depth * plan.template.wire.len()),
            out_at: 0,
            flushed: true,
            queued: 0,
            sent: 0,
            queue: VecDeque::with_capacity(plan.depth),
            unstarted: 0,
            input: vec![0; READ_SIZE],
            used: 0,
            filled: 0,
            reading: Reading::Head,
            held,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            broken: None,
        }
    }

    /// Runs until the run has nothing more for this connection or it ends; returns the
    /// scheduled request it was holding, if any.
    async fn run(mut self) -> Option<Instant> {
        match poll_fn(|cx| self.poll(cx)).await {
            Ok(()) => {}
            Err(end) => self.fail_owed(end),
        }
        self.held
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), End>> {
        loop {
            let spin = self.fill();
            let wrote = self.write_unless_broken(cx);
            // After a failed write the reading goes on: answers the server sent before it
            // reset are still in the socket (Linux hands them over before the error), and the
            // reset that failed the write ends the reading too, once they are read.
            let read = match (self.read(cx), self.broken) {
                (Err(End::Eof), Some(failure)) => return Poll::Ready(Err(End::Io(failure))),
                (read, _) => read?,
            };
            self.expire()?;
            if self.queue.is_empty() && self.held.is_none() && !self.worker.more() {
                return Poll::Ready(Ok(()));
            }
            if wrote || read {
                continue;
            }
            if spin {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.poll_timer(cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Takes requests up to the depth and queues their bytes (none once writing has failed).
    /// Returns whether a scheduled one is due within `SPIN` (the caller yields rather than
    /// sleeps).
    fn fill(&mut self) -> bool {
        while self.queue.len() < self.depth && self.broken.is_none() {
            let scheduled = match self.held.take() {
                Some(at) => Some(at),
                None => match self.worker.take() {
                    None => return false,
                    Some(Start::Now) => None,
                    Some(Start::At(at)) => Some(at),
                },
            };
            if let Some(at) = scheduled.filter(|at| *at > Instant::now()) {
                self.held = Some(at);
                return at <= Instant::now() + SPIN;
            }
            self.worker.begin();
            self.queue.push_back(Entry {
                offset: self.queued,
                scheduled,
                started: None,
            });
            self.unstarted += 1;
            if self.out_at > 0 {
                // What went out is dropped before more is queued: the buffer holds at most
                // `depth` requests, however slowly the server reads.
                self.out.drain(..self.out_at);
                self.out_at = 0;
            }
            self.out.extend_from_slice(self.request);
            self.queued += self.request.len() as u64;
        }
        false
    }

    /// Writes what is queued, unless writing has failed before; a failure is kept in
    /// `broken`. Returns whether some went out.
    fn write_unless_broken(&mut self, cx: &mut Context<'_>) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.write(cx).unwrap_or_else(|end| {
            self.broken = Some(match end {
                End::Io(failure) => failure,
                _ => Failure::Other,
            });
            false
        })
    }

    /// Writes what is queued. `Ok(true)`: some went out.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        if self.out_at == self.out.len() {
            if !self.flushed {
                // TLS: records the last write left in rustls' buffer.
                if let Poll::Ready(r) = Pin::new(&mut self.io).poll_flush(cx) {
                    r.map_err(|e| End::Io(Failure::of_io(&e)))?;
                    self.flushed = true;
                }
            }
            return Ok(false);
        }
        let n = match Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_at..]) {
            Poll::Pending => return Ok(false),
            Poll::Ready(Ok(0)) => return Err(End::Io(Failure::Reset)),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Err(End::Io(Failure::of_io(&e))),
        };
        self.out_at += n;
        self.sent += n as u64;
        self.mark_started();
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
        }
        self.flushed = false;
        Ok(true)
    }

    /// Notes the requests whose first byte the last write carried.
    fn mark_started(&mut self) {
        let mut now = None;
        while self.unstarted > 0 {
            let next = self.queue.len() - self.unstarted;
            let entry = &mut self.queue[next];
            if entry.offset >= self.sent {
                break;
            }
            entry.started = Some(*now.get_or_insert_with(Instant::now));
            self.unstarted -= 1;
        }
    }

    /// Reads once and takes every complete response off the buffer. `Ok(true)`: bytes came.
    fn read(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        self.make_room();
        let mut buf = ReadBuf::new(&mut self.input[self.filled..]);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Pending => Ok(false),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Err(End::Eof),
            Poll::Ready(Ok(())) => {
                self.filled += buf.filled().len();
                self.parse()?;
                Ok(true)
            }
            // A TLS peer that closes without close_notify: the close it would be on TCP (a
            // response cut short is still `incomplete`).
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Err(End::Eof),
            Poll::Ready(Err(e)) => Err(End::Io(Failure::of_io(&e))),
        }
    }

    /// Moves unread bytes to the front, and grows the buffer when a head needs more.
    fn make_room(&mut self) {
        if self.used == self.filled {
            (self.used, self.filled) = (0, 0);
        } else if self.filled == self.input.len() {
            self.input.copy_within(self.used..self.filled, 0);
            (self.filled, self.used) = (self.filled - self.used, 0);
            if self.filled == self.input.len() {
                // A head longer than the buffer (parse_head refuses one past MAX_HEAD).
                let grown = (self.input.len() * 2).min(MAX_HEAD + READ_SIZE);
                self.input.resize(grown, 0);
            }
        }
    }

    /// Takes complete responses (and parts of a body) off the buffer.
    fn parse(&mut self) -> Result<(), End> {
        loop {
            let buf = &self.input[self.used..self.filled];
            match &mut self.reading {
                Reading::Head => {
                    if buf.is_empty() {
                        return Ok(());
                    }
                    // An answer to nothing written is not an answer to anything.
                    if self.queue.front().is_none_or(|e| e.started.is_none()) {
                        return Err(End::Protocol);
                    }
                    let Some(head) =
                        parse_head(buf, self.request_is_head).map_err(|_| End::Protocol)?
                    else {
                        return Ok(());
                    };
                    self.used += head.len;
                    match head.status {
                        // Switching protocols was never asked for.
                        101 => return Err(End::Protocol),
                        // 1xx: the final answer follows.
                        100..=199 => continue,
                        _ => {}
                    }
                    let body = match head.framing {
                        Framing::Empty => {
                            self.answered(head.status, 0, head.hol_wait, head.closes)?;
                            continue;
                        }
                        Framing::Length(n) => Body::Length(n),
                        Framing::Chunked => Body::Chunked(Chunked::Size),
                        Framing::UntilClose => Body::UntilClose,
                    };
                    self.reading = Reading::Body {
                        status: head.status,
                        hol_wait: head.hol_wait,
                        closes: head.closes,
                        body,
                        bytes: 0,
                    };
                }
                Reading::Body { body, bytes, .. } => {
                    let (used, done) = match body {
                        Body::Length(left) => {
                            let take = (*left).min(buf.len() as u64);
                            *left -= take;
                            *bytes += take;
                            (take as usize, *left == 0)
                        }
                        Body::Chunked(state) => {
                            let step = state.decode(buf).map_err(|_| End::Protocol)?;
                            *bytes += step.data;
                            (step.used, step.done)
                        }
                        Body::UntilClose => {
                            *bytes += buf.len() as u64;
                            (buf.len(), false)
                        }
                    };
                    self.used += used;
                    if !done {
                        return Ok(());
                    }
                    self.finish_body()?;
                }
            }
        }
    }

    /// The body being read has ended: its response is complete.
    fn finish_body(&mut self) -> Result<(), End> {
        if let Reading::Body {
            status,
            hol_wait,
            closes,
            bytes,
            ..
        } = std::mem::replace(&mut self.reading, Reading::Head)
        {
            self.answered(status, bytes, hol_wait, closes)?;
        }
        Ok(())
    }

    /// Counts a complete response for the front request.
    fn answered(
        &mut self,
        status: u16,
        bytes: u64,
        hol_wait: Option<f64>,
        closes: bool,
    ) -> Result<(), End> {
        let entry = self
            .queue
            .pop_front()
            .expect("checked before its head was read");
        let since = entry.since().expect("started before its head was read");
        self.worker.answered(since, status, bytes, hol_wait);
        if closes {
            return Err(End::Closed);
        }
        Ok(())
    }

    /// Ends the connection when its oldest request has passed its `-t` limit.
    fn expire(&self) -> Result<(), End> {
        match self.deadline() {
            Some(deadline) if deadline <= Instant::now() => Err(End::TimedOut),
            _ => Ok(()),
        }
    }

    /// When the oldest request passes its `-t` limit.
    fn deadline(&self) -> Option<Instant> {
        Some(self.queue.front()?.started? + self.timeout?)
    }

    /// Sets the timer for the next scheduled request or `-t` limit. `true`: it has passed.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        // Once writing has failed a held request will not be queued: no wake for it.
        let due = self
            .held
            .filter(|_| self.broken.is_none())
            .map(|at| at - SPIN);
        let Some(wake) = due.into_iter().chain(self.deadline()).min() else {
            return false;
        };
        let wake = tokio::time::Instant::from_std(wake);
        if self.timer.deadline() != wake {
            self.timer.as_mut().reset(wake);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    /// The connection ended with `end`: a response running to the close is complete; every
    /// other request it owed fails with what is known of it.
    fn fail_owed(&mut self, mut end: End) {
        if let (
            End::Eof,
            Reading::Body {
                body: Body::UntilClose,
                ..
            },
        ) = (end, &self.reading)
        {
            // Its end is the close: complete (`Err(Closed)`: it was the last, as its framing
            // said). Whatever was owed after it is not answered.
            let _ = self.finish_body();
            end = End::Closed;
        }
        let mid_response = matches!(self.reading, Reading::Body { .. }) || self.used < self.filled;
        // Only the front request meets the cause; the others written were cut off by it.
        for (i, entry) in self.queue.drain(..).enumerate() {
            let failure = match (entry.started.is_some(), i, end) {
                (false, _, _) => Failure::NotSent,
                (true, 0, End::TimedOut) => Failure::Timeout,
                (true, 0, End::Io(failure)) => failure,
                (true, 0, End::Protocol) => Failure::Protocol,
                (true, 0, End::Eof) if mid_response => Failure::Incomplete,
                (true, _, _) => Failure::NotAnswered,
            };
            self.worker.failed(failure);
        }
        self.unstarted = 0;
    }
}
