//! The end of a graceful shutdown, bounded by `Config::shutdown_timeout`: shared by the
//! accept loop (every connection) and `serve_connection` (one connection).

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::watch;

use crate::shutdown::Phase;

/// Waits until `finished` (the connections a drain is waiting for have ended), for at most
/// `deadline` from the call; `None` waits as long as the connections take.
///
/// When the deadline passes first, `on_deadline` says so (the caller's words: it knows what
/// is left), and `phase` turns to `Abort`: every engine watching it drops its connection, and
/// with it every handler still running, because a client that outstays the deadline must not
/// hold the process up. `finished` is still awaited then, so that nothing outlives the call.
/// Call it once the phase is `Draining`.
pub(crate) async fn drain_with_deadline<F>(
    phase: &watch::Sender<Phase>,
    finished: F,
    deadline: Option<Duration>,
    on_deadline: impl FnOnce(),
) where
    F: Future<Output = ()>,
{
    let mut finished = pin!(finished);
    if let Some(deadline) = deadline {
        if tokio::time::timeout(deadline, finished.as_mut())
            .await
            .is_ok()
        {
            return;
        }
        on_deadline();
        phase.send_replace(Phase::Abort);
    }
    finished.await;
}
