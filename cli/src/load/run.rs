//! The run: T threads, each a current-thread runtime with its share of the connections and
//! requests (as wrk's `-t`), and the calling thread drawing the live view and watching for
//! Ctrl-C until they are done.
//!
//! The run ends when the requests are all finished (`-n`), at the deadline (`-z`), or on
//! Ctrl-C; requests still in flight then are counted as aborted, neither answered nor failed.

use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::task::{JoinSet, LocalSet};

use super::live::View;
use super::plan::Plan;
use super::stats::{Progress, Stats};
use super::worker::{Pace, Worker};
use super::{h2, wire};

/// How the run is shared out and when it ends.
pub struct Shape {
    pub threads: usize,
    pub connections: usize,
    /// `-n`; `None` for a timed run.
    pub requests: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
}

/// What the run did.
pub struct Finished {
    pub stats: Stats,
    /// From the first request to the last thread's end.
    pub elapsed: Duration,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
}

/// How often the live view is redrawn and the threads checked for their end: ten times a
/// second reads as smooth, and costs nothing measurable. The run's elapsed time is the
/// threads' own, so the tick does not lengthen it.
const TICK: Duration = Duration::from_millis(100);

/// Runs the load and gathers every thread's counts.
pub fn run(plan: Arc<Plan>, shape: &Shape, view: &mut View) -> Result<Finished, String> {
    // The watcher's runtime and its Ctrl-C handler exist before the first request: from then
    // on Ctrl-C stops the run and prints the summary, rather than killing the process.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let interrupt = {
        let _entered = runtime.enter();
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?
    };
    let threads = shape.threads.min(shape.connections).max(1);
    let progress: Arc<[Progress]> = (0..threads).map(|_| Progress::default()).collect();
    // One stop signal every thread can wait on: a watch keeps only the latest value, so a
    // thread that looks after Ctrl-C still sees it.
    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let deadline = shape.duration.map(|d| start + d);
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let share = Share {
            connections: split(shape.connections as u64, threads, index) as usize,
            budget: shape
                .requests
                .map_or(u64::MAX, |n| split(n, threads, index)),
            pace: shape.rate.map(|q| Pace::new(start, q, threads, index)),
            deadline,
            index,
        };
        let (plan, progress, stopped) = (plan.clone(), progress.clone(), stopped.clone());
        let handle = thread::Builder::new()
            .name(format!("load-{index}"))
            .spawn(move || share.run(plan, progress, stopped))
            .map_err(|e| format!("cannot start a load thread: {e}"))?;
        handles.push(handle);
    }
    let interrupted =
        runtime.block_on(watch_run(&handles, &progress, start, stop, view, interrupt));
    view.finish();
    let mut stats = Stats::default();
    let mut end = start;
    for handle in handles {
        let (share, ended) = handle
            .join()
            .map_err(|_| "a load thread panicked".to_owned())??;
        stats.merge(&share);
        end = end.max(ended);
    }
    Ok(Finished {
        stats,
        elapsed: end - start,
        interrupted,
    })
}

/// `n` shared out over `parts` as evenly as whole numbers allow: part `index`'s portion.
fn split(n: u64, parts: usize, index: usize) -> u64 {
    let parts = parts as u64;
    n / parts + u64::from((index as u64) < n % parts)
}

/// Redraws the live view until every thread has ended; on Ctrl-C (`interrupt`) tells them to
/// stop. Returns whether Ctrl-C was pressed.
async fn watch_run(
    handles: &[thread::JoinHandle<Result<(Stats, Instant), String>>],
    progress: &[Progress],
    start: Instant,
    stop: watch::Sender<bool>,
    view: &mut View,
    mut interrupt: Signal,
) -> bool {
    let mut tick = tokio::time::interval(TICK);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = interrupt.recv(), if !interrupted => {
                interrupted = true;
                // The threads may have ended already; nobody left to tell is fine.
                let _ = stop.send(true);
            }
            _ = tick.tick() => {
                let answered: u64 = progress.iter().map(Progress::answered).sum();
                let errors: u64 = progress.iter().map(Progress::errors).sum();
                view.update(answered + errors, errors, start.elapsed());
                if handles.iter().all(|h| h.is_finished()) {
                    return interrupted;
                }
            }
        }
    }
}

/// One thread's part of the run.
struct Share {
    connections: usize,
    budget: u64,
    pace: Option<Pace>,
    deadline: Option<Instant>,
    index: usize,
}

impl Share {
    /// Runs this thread's connections until its requests are done, the deadline, or a stop;
    /// returns its counts and when it ended.
    fn run(
        self,
        plan: Arc<Plan>,
        progress: Arc<[Progress]>,
        mut stopped: watch::Receiver<bool>,
    ) -> Result<(Stats, Instant), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let worker = Rc::new(Worker::new(
            plan,
            self.budget,
            self.pace,
            progress,
            self.index,
        ));
        let local = LocalSet::new();
        let mut connections = JoinSet::new();
        let ended = local.block_on(&runtime, async {
            for _ in 0..self.connections {
                let worker = worker.clone();
                connections.spawn_local(async move {
                    if worker.plan.http2 {
                        h2::connection(&worker).await;
                    } else {
                        wire::connection(&worker).await;
                    }
                });
            }
            let all_done = async { while connections.join_next().await.is_some() {} };
            let deadline = async {
                match self.deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = all_done => {}
                () = deadline => {}
                _ = stopped.wait_for(|stop| *stop) => {}
            }
            Instant::now()
        });
        // Dropping the connections counts what they still had in flight as aborted.
        drop(connections);
        drop(local);
        Ok((worker.take_stats(ended), ended))
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn shares_add_up_to_the_whole() {
        for (n, parts) in [(200, 3), (1, 2), (7, 7), (0, 4), (1_000_003, 16)] {
            let shares: Vec<u64> = (0..parts).map(|i| split(n, parts, i)).collect();
            assert_eq!(shares.iter().sum::<u64>(), n, "{n} over {parts}");
            let (min, max) = (shares.iter().min(), shares.iter().max());
            assert!(max.unwrap() - min.unwrap() <= 1, "{shares:?}");
        }
    }
}
