//! The clock of each request's handler time and head-of-line wait: what `Server-Timing`
//! reports, the handler and head-of-line histograms record, and request spans carry.
//!
//! It is read once or twice for every request, so it is the processor's cycle counter read
//! through [`quanta`] (a counter read; a multiply and a shift to turn a difference of two
//! readings into nanoseconds; calibrated against the monotonic clock once per process, or that
//! clock itself where the counter is not invariant), not `Instant::now` and `duration_since`
//! (a vDSO call, and a checked subtraction of seconds and nanoseconds). What it measures is an
//! [`Elapsed`], a count of nanoseconds, not a `Duration`: every consumer wants one number
//! (microsecond digits, seconds as `f64`), and `Duration`'s two fields cost a division to
//! build and a multiply-add to read, on every request.
//!
//! Deadlines stay on tokio's clock: they need its timer, and tests pause it. What is measured
//! here is real time even under a paused tokio clock.

use std::sync::OnceLock;

/// The process's timing clock, calibrated on first use, and nanoseconds per tick as a 32.32
/// fixed-point factor: a difference of readings is scaled by one multiply and a constant
/// shift (quanta's own scaling shifts by a variable amount and asks which clock it is first).
static CLOCK: OnceLock<(quanta::Clock, u64)> = OnceLock::new();

/// Ticks over which the factor is taken: long enough that its rounding is below a part in a
/// million.
const SPAN: u64 = 1 << 40;

fn clock() -> &'static (quanta::Clock, u64) {
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        // Nanoseconds for 2^40 ticks, times 2^32 / 2^40. A counter of a few GHz gives a factor
        // under 2^32; the monotonic fallback (ticks are nanoseconds) gives exactly 2^32.
        let factor = clock.delta_as_nanos(0, SPAN) >> 8;
        (clock, factor)
    })
}

/// Calibrates the clock (under a millisecond, once per process) before the first request,
/// which would otherwise pay for it in its handler time.
pub(crate) fn calibrate() {
    clock();
}

/// A reading of the timing clock (raw counter ticks: scaled only when two are subtracted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The clock now.
    #[inline]
    pub(crate) fn now() -> Self {
        Stamp(clock().0.raw())
    }

    /// The time from `earlier` to this reading; zero if `earlier` is later (readings taken on
    /// two cores whose counters disagree by a few cycles).
    #[inline]
    pub(crate) fn since(self, earlier: Stamp) -> Elapsed {
        let ticks = self.0.saturating_sub(earlier.0);
        Elapsed(((u128::from(ticks) * u128::from(clock().1)) >> 32) as u64)
    }
}

/// A time the clock measured, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Elapsed(u64);

impl Elapsed {
    pub(crate) const ZERO: Elapsed = Elapsed(0);

    pub(crate) const fn from_nanos(nanos: u64) -> Self {
        Elapsed(nanos)
    }

    pub(crate) fn as_nanos(self) -> u64 {
        self.0
    }

    /// For the histograms (feature `metrics`).
    #[cfg(any(feature = "metrics", test))]
    pub(crate) fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    pub(crate) fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

/// What is measured of one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Measured {
    /// From the handler's start to its answer.
    pub(crate) handler: Elapsed,
    /// From the answer to its encoding: the time it waited for earlier answers (head-of-line
    /// wait).
    pub(crate) queue: Elapsed,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn it_measures_what_the_monotonic_clock_measures() {
        let (start, before) = (Stamp::now(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (after, end) = (Instant::now(), Stamp::now());
        let measured = Duration::from_nanos(end.since(start).as_nanos());
        let window = after - before;
        // Within 2 %: the calibration's error, not a unit or a scale gone wrong.
        assert!(
            measured.abs_diff(window) <= window / 50,
            "{measured:?} measured, {window:?} by the monotonic clock"
        );
        assert_eq!(start.since(end), Elapsed::ZERO, "saturates, never wraps");
    }

    #[test]
    fn a_difference_is_scaled_as_quanta_scales_it() {
        let (quanta, _) = clock();
        for ticks in [1, 999, 1_000_000, 3_000_000_000, 1 << 45] {
            let ours = Stamp(ticks + 7).since(Stamp(7)).as_nanos();
            let theirs = quanta.delta_as_nanos(7, ticks + 7);
            assert!(
                ours.abs_diff(theirs) <= 1 + theirs / 1_000_000,
                "{ticks}: {ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn elapsed_reads_as_seconds_and_milliseconds() {
        let e = Elapsed::from_nanos(1_500_000);
        assert_eq!((e.as_secs_f64(), e.as_millis_f64()), (0.0015, 1.5));
    }
}
