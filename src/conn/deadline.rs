//! The one timer a connection needs: the deadline of what it waits for from the socket.
//!
//! Each limit bounds how long a client can hold a connection without progress: the idle limit
//! (nothing buffered), the header-read limit (a head has started; counted from its first
//! byte, so trickling bytes does not extend it) and the body-read limit (counted afresh
//! whenever body bytes arrive). An idle connection first keeps its buffers for [`IDLE_GRACE`].

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::Config;

/// How long an idle connection keeps its buffers before giving them back: a busy client is
/// back within moments, a parked keep-alive connection should cost little memory.
pub(crate) const IDLE_GRACE: Duration = Duration::from_millis(100);

/// What the connection is waiting for from the socket, which decides its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// Nothing buffered, keeping its buffers for a moment ([`IDLE_GRACE`]).
    Grace,
    /// Nothing buffered (`Config::idle_timeout`).
    Idle,
    /// A request head has started (`Config::header_read_timeout`).
    Head,
    /// A request body (`Config::body_read_timeout`).
    Body,
}

/// The timer is moved later lazily: a later deadline leaves it armed where it was, and when it
/// fires early it is re-armed for the real one. A keep-alive client that sends a request every
/// few microseconds would otherwise move the timer in the runtime's wheel on every request.
#[derive(Default)]
pub(crate) struct Deadline {
    /// Boxed: a `Sleep` is large, and only connections that wait pay for it.
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline of the current wait (the timer may be armed earlier).
    due: Option<Instant>,
    /// The wait the timer is armed for.
    waiting: Option<Waiting>,
    /// When the idle wait began (the idle limit counts from there, grace included).
    idle_since: Option<Instant>,
    /// When the request head being read must be complete.
    head_due: Option<Instant>,
}

impl Deadline {
    /// Arms the timer for `wanted` unless it is armed for that wait already, and returns the
    /// wait it is armed for: an idle connection that still has its buffers (`parked` false)
    /// first waits out the grace period. `now` is read only when the timer is re-armed.
    pub(crate) fn settle(
        &mut self,
        wanted: Waiting,
        parked: bool,
        c: &Config,
        now: impl FnOnce() -> Instant,
    ) -> Waiting {
        let current = self.waiting;
        let waiting = match (wanted, current) {
            (Waiting::Idle, Some(idle @ (Waiting::Grace | Waiting::Idle))) => return idle,
            (Waiting::Idle, _) if !parked => Waiting::Grace,
            (wanted, _) => wanted,
        };
        if current != Some(waiting) {
            self.arm(waiting, c, now());
        }
        waiting
    }

    /// The grace period is over (the buffers were given back): wait out the idle limit.
    pub(crate) fn grace_over(&mut self, c: &Config, now: Instant) {
        self.arm(Waiting::Idle, c, now);
    }

    fn arm(&mut self, waiting: Waiting, c: &Config, now: Instant) {
        self.waiting = Some(waiting);
        let at = match waiting {
            Waiting::Grace | Waiting::Idle => {
                let idle = *self.idle_since.get_or_insert(now) + c.idle_timeout;
                if waiting == Waiting::Grace {
                    idle.min(now + IDLE_GRACE)
                } else {
                    idle
                }
            }
            Waiting::Head => *self.head_due.get_or_insert(now + c.header_read_timeout),
            Waiting::Body => now + c.body_read_timeout,
        };
        if !matches!(waiting, Waiting::Grace | Waiting::Idle) {
            self.idle_since = None;
        }
        self.due = Some(at);
        match &mut self.sleep {
            Some(sleep) if sleep.deadline() <= at => {}
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Bytes arrived while waiting for `waiting`: the idle and body limits count again from
    /// the next wait; a head's limit still counts from its first byte.
    pub(crate) fn bytes_arrived(&mut self, waiting: Waiting) {
        self.idle_since = None;
        if waiting != Waiting::Head {
            self.waiting = None;
        }
    }

    /// A whole head was parsed: the next one gets a limit of its own.
    pub(crate) fn head_parsed(&mut self) {
        self.head_due = None;
        self.waiting = None;
    }

    /// Whether the deadline of the current wait has passed.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(sleep), Some(due)) = (&mut self.sleep, self.due) else {
            return false;
        };
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            if sleep.deadline() >= due {
                return true;
            }
            // Armed for an earlier wait: move it to this one's deadline.
            sleep.as_mut().reset(due);
        }
    }
}
