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

    /// A head began before the connection came here (while its first bytes were sniffed): its
    /// limit counts from then, so a client gains nothing by making the sniff wait.
    pub(crate) fn head_began(&mut self, due: Instant) {
        self.head_due = Some(due);
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

#[cfg(test)]
mod tests {
    use std::task::{Context, Waker};
    use std::time::Duration;

    use tokio::time::{advance, Instant};

    use super::{Deadline, Waiting, IDLE_GRACE};
    use crate::Config;

    const SECOND: Duration = Duration::from_secs(1);

    /// Whether the deadline of the current wait has passed, polled with a waker nobody needs:
    /// the clock is paused and moved by the test.
    fn expired(deadline: &mut Deadline) -> bool {
        deadline.poll_expired(&mut Context::from_waker(Waker::noop()))
    }

    /// Moves the paused clock by `by` and reports whether the deadline has passed.
    async fn expired_after(deadline: &mut Deadline, by: Duration) -> bool {
        advance(by).await;
        expired(deadline)
    }

    #[tokio::test(start_paused = true)]
    async fn an_unarmed_deadline_never_expires() {
        let mut deadline = Deadline::default();
        assert!(!expired_after(&mut deadline, 3600 * SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_with_buffers_waits_out_the_grace_then_the_idle_limit_from_its_start() {
        let config = Config::default().idle_timeout(60 * SECOND);
        let mut deadline = Deadline::default();
        let armed = deadline.settle(Waiting::Idle, false, &config, Instant::now);
        assert_eq!(armed, Waiting::Grace);
        assert!(!expired_after(&mut deadline, IDLE_GRACE - Duration::from_millis(1)).await);
        assert!(expired_after(&mut deadline, Duration::from_millis(1)).await);
        deadline.grace_over(&config, Instant::now());
        assert_eq!(
            deadline.settle(Waiting::Idle, true, &config, || unreachable!(
                "already armed"
            )),
            Waiting::Idle
        );
        // The idle limit counts from the start of the wait, grace included.
        assert!(!expired_after(&mut deadline, 60 * SECOND - IDLE_GRACE - SECOND).await);
        assert!(expired_after(&mut deadline, SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_while_in_grace_is_not_rearmed() {
        let config = Config::default();
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Idle, false, &config, Instant::now);
        let again = deadline.settle(Waiting::Idle, false, &config, || unreachable!("re-armed"));
        assert_eq!(again, Waiting::Grace);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_connection_waits_for_the_idle_limit_directly() {
        let config = Config::default().idle_timeout(10 * SECOND);
        let mut deadline = Deadline::default();
        let armed = deadline.settle(Waiting::Idle, true, &config, Instant::now);
        assert_eq!(armed, Waiting::Idle);
        assert!(!expired_after(&mut deadline, 10 * SECOND - Duration::from_millis(1)).await);
        assert!(expired_after(&mut deadline, Duration::from_millis(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_grace_never_outlasts_a_shorter_idle_limit() {
        let short = IDLE_GRACE / 2;
        let config = Config::default().idle_timeout(short);
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Idle, false, &config, Instant::now);
        assert!(expired_after(&mut deadline, short).await);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_while_idle_start_the_idle_limit_afresh() {
        let config = Config::default().idle_timeout(10 * SECOND);
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Idle, true, &config, Instant::now);
        advance(8 * SECOND).await;
        deadline.bytes_arrived(Waiting::Idle);
        deadline.settle(Waiting::Idle, true, &config, Instant::now);
        assert!(!expired_after(&mut deadline, 8 * SECOND).await);
        assert!(expired_after(&mut deadline, 2 * SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_limit_counts_from_its_first_byte_however_bytes_trickle() {
        let config = Config::default().header_read_timeout(30 * SECOND);
        let mut deadline = Deadline::default();
        assert_eq!(
            deadline.settle(Waiting::Head, false, &config, Instant::now),
            Waiting::Head
        );
        for _ in 0..29 {
            advance(SECOND).await;
            deadline.bytes_arrived(Waiting::Head);
            deadline.settle(Waiting::Head, false, &config, Instant::now);
            assert!(!expired(&mut deadline));
        }
        assert!(expired_after(&mut deadline, SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_parsed_head_gives_the_next_head_a_limit_of_its_own() {
        let config = Config::default().header_read_timeout(30 * SECOND);
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Head, false, &config, Instant::now);
        advance(20 * SECOND).await;
        deadline.head_parsed();
        deadline.settle(Waiting::Head, false, &config, Instant::now);
        assert!(!expired_after(&mut deadline, 20 * SECOND).await);
        assert!(expired_after(&mut deadline, 10 * SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_limit_counts_afresh_whenever_body_bytes_arrive() {
        let config = Config::default().body_read_timeout(30 * SECOND);
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Body, false, &config, Instant::now);
        advance(20 * SECOND).await;
        deadline.bytes_arrived(Waiting::Body);
        deadline.settle(Waiting::Body, false, &config, Instant::now);
        assert!(!expired_after(&mut deadline, 20 * SECOND).await);
        assert!(expired_after(&mut deadline, 10 * SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_armed_earlier_fires_early_and_moves_to_the_real_deadline() {
        let config = Config::default().header_read_timeout(30 * SECOND);
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Idle, false, &config, Instant::now);
        deadline.bytes_arrived(Waiting::Grace);
        let start = Instant::now();
        deadline.settle(Waiting::Head, false, &config, Instant::now);
        // The timer stays at the grace's end (lazily), fires there, and is moved on.
        assert!(!expired_after(&mut deadline, IDLE_GRACE).await);
        let sleep = deadline.sleep.as_ref().unwrap();
        assert_eq!(sleep.deadline(), start + 30 * SECOND);
        assert!(!expired_after(&mut deadline, 30 * SECOND - IDLE_GRACE - SECOND).await);
        assert!(expired_after(&mut deadline, SECOND).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_moves_the_timer_back() {
        let config = Config::default()
            .body_read_timeout(30 * SECOND)
            .idle_timeout(60 * SECOND);
        let mut deadline = Deadline::default();
        deadline.settle(Waiting::Body, false, &config, Instant::now);
        deadline.bytes_arrived(Waiting::Body);
        deadline.settle(Waiting::Idle, false, &config, Instant::now);
        assert!(expired_after(&mut deadline, IDLE_GRACE).await);
    }
}
