//! Where a server (or one connection of [`serve_connection`](crate::serve_connection())) is in
//! its life, and how a connection waits for each step of a shutdown.
//!
//! A graceful shutdown has two steps every connection reacts to, on either protocol: first
//! stop taking requests and finish those taken (drain), then, if the drain outlasts its
//! deadline, drop everything at once (abort). The owner moves the [`Phase`] forward through a
//! `watch` channel: a new connection sees the current phase as soon as it starts, and a
//! connection that missed a step still sees where things are. Each connection holds a
//! [`Shutdown`] and awaits the step it cares about by name (as mini-redis's `Shutdown` does).

use tokio::sync::watch;

/// Where the server is in its life; it only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Stop reading new requests; answer those already read.
    Draining,
    /// The drain deadline passed: drop everything now.
    Abort,
}

/// One connection's view of its server's [`Phase`].
///
/// Each method waits for one step and resolves at once when the phase is already there or
/// past it, so awaiting it again (in a `select!` loop) is free. A closed channel (whoever
/// moves the phase is gone, and nobody can drain or abort in order any more) counts as every
/// step, as it always has: the server holds its end until its last connection has finished,
/// so only a dropped server closes it.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown {
    phase: watch::Receiver<Phase>,
}

impl Shutdown {
    /// Watches `phase`.
    pub(crate) fn new(phase: watch::Receiver<Phase>) -> Self {
        Shutdown { phase }
    }

    /// Resolves once the server stops taking requests (draining, or aborting outright): the
    /// connection must stop reading new requests and answer those it has.
    pub(crate) async fn draining(&mut self) {
        let _closed = self.phase.wait_for(|p| *p != Phase::Running).await;
    }

    /// Resolves once the drain deadline has passed: the connection must end now, without
    /// writing what it still owes, and cancel the handlers still running.
    pub(crate) async fn aborted(&mut self) {
        let _closed = self.phase.wait_for(|p| *p == Phase::Abort).await;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    use super::*;

    /// Whether `future` is finished on its first poll.
    fn ready(future: impl Future<Output = ()>) -> bool {
        pin!(future)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    #[test]
    fn each_step_resolves_from_its_phase_on() {
        let (tx, rx) = watch::channel(Phase::Running);
        let mut shutdown = Shutdown::new(rx);
        assert!(!ready(shutdown.draining()));
        assert!(!ready(shutdown.aborted()));
        tx.send_replace(Phase::Draining);
        assert!(ready(shutdown.draining()));
        assert!(!ready(shutdown.aborted()), "draining is not aborting");
        tx.send_replace(Phase::Abort);
        assert!(ready(shutdown.draining()), "an abort is a shutdown too");
        assert!(ready(shutdown.aborted()));
    }

    #[test]
    fn a_closed_channel_is_every_step() {
        let (tx, rx) = watch::channel(Phase::Running);
        let mut shutdown = Shutdown::new(rx);
        drop(tx);
        assert!(ready(shutdown.draining()));
        assert!(ready(shutdown.aborted()));
    }
}
