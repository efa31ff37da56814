//! Waiting on the socket: reads under the deadline of what is awaited, EOF, shutdown, what
//! each expiry means (grace over, idle, a head or a body too slow), and a body that failed.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::Conn;
use crate::body::BodyError;
use crate::conn::deadline::Waiting;
use crate::conn::keep_alive::Stop;
use crate::conn::read::Pumped;
use crate::conn::{ConnBody, ConnService};
use crate::proto::error::EngineError;

impl<'a, I, S, B> Conn<'a, I, S, B>
where
    I: AsyncRead + AsyncWrite + Unpin,
    S: ConnService<B>,
    B: ConnBody,
{
    /// Reads the socket for what `waiting` needs, under its deadline; shutdown stops a wait for
    /// a new request. `Ready` when something changed.
    pub(super) fn poll_socket(
        &mut self,
        waiting: Waiting,
        cx: &mut Context<'_>,
    ) -> io::Result<Poll<()>> {
        let parked = self.input.is_parked();
        let clock = &mut self.clock;
        let now = || *clock.get_or_insert_with(Instant::now);
        let waiting = self.deadline.settle(waiting, parked, self.config, now);
        if waiting != Waiting::Body && self.poll_shutdown(cx) {
            self.keep_alive.stop_reading(Stop::Draining);
            return Ok(Poll::Ready(()));
        }
        match self.input.poll_read(&mut self.io, cx) {
            Poll::Ready(Ok(0)) => {
                self.on_eof(waiting, cx);
                return Ok(Poll::Ready(()));
            }
            Poll::Ready(Ok(_)) => {
                self.deadline.bytes_arrived(waiting);
                return Ok(Poll::Ready(()));
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {}
        }
        if !self.deadline.poll_expired(cx) {
            return Ok(Poll::Pending);
        }
        match waiting {
            Waiting::Grace => {
                self.input.park();
                self.output.release_memory();
                self.order.release_memory();
                // The map the last response left for the next request (`recycle_headers`).
                *self.request.headers_mut() = http::HeaderMap::new();
                let now = self.now();
                self.deadline.grace_over(self.config, now);
            }
            Waiting::Idle => self.keep_alive.stop_reading(Stop::Eof),
            Waiting::Head => self.refuse(
                EngineError::new(
                    http::StatusCode::REQUEST_TIMEOUT,
                    "request head not received in time",
                ),
                cx,
            ),
            Waiting::Body => self.fail_body(BodyError::TimedOut, cx),
        }
        Ok(Poll::Ready(()))
    }

    /// Whether the server has begun shutting down.
    pub(super) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(shutdown) = &mut self.shutdown else {
            return true;
        };
        if shutdown.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.shutdown = None;
        true
    }

    /// The client closed its sending side: gone, unless half-closed connections are served
    /// (`Config::half_close`).
    pub(super) fn on_eof(&mut self, waiting: Waiting, cx: &mut Context<'_>) {
        if !self.config.half_close {
            self.keep_alive.client_gone();
        } else if waiting == Waiting::Body {
            self.fail_body(BodyError::Incomplete, cx);
        } else {
            self.keep_alive.stop_reading(Stop::Eof);
        }
    }

    /// The body being pumped cannot be read to its end: its handler is told, and reading stops.
    pub(super) fn fail_body(&mut self, error: BodyError, cx: &mut Context<'_>) {
        if let Some(pump) = self.keep_alive.body_mut() {
            if let Pumped::Blocked = pump.fail(error, cx) {
                // The error waits for room in the handler's body; the pump delivers it.
                return;
            }
        }
        self.body_failed(error);
    }

    /// The body being pumped failed and its handler has been told: reading stops, and its
    /// request's answer, if not encoded yet, becomes the body's error (`Order::body_failed`).
    pub(super) fn body_failed(&mut self, error: BodyError) {
        self.keep_alive.stop_reading(Stop::Refused);
        self.order.body_failed(error);
    }
}
