//! The live view: a progress bar with the running request rate, on stderr, redrawn every tick.
//! Nothing is drawn with `--no-tui`, `--json`, or when stderr is not a terminal, so scripts and
//! CI see only the summary.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How far along the run is measured.
pub enum Goal {
    /// `-n`: requests finished out of this many.
    Requests(u64),
    /// `-z`: time elapsed out of this long.
    Time(Duration),
}

pub struct View {
    bar: ProgressBar,
    goal: Goal,
    /// Finished requests and time at the previous tick, for the rate over the last tick.
    last: (u64, Duration),
}

impl View {
    pub fn new(goal: Goal, quiet: bool) -> View {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let length = match goal {
            Goal::Requests(n) => n,
            Goal::Time(d) => d.as_millis() as u64,
        };
        let bar = ProgressBar::with_draw_target(Some(length), target);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {percent:>3}% {msg}")
                .expect("a constant, valid template")
                .progress_chars("=> "),
        );
        View {
            bar,
            goal,
            last: (0, Duration::ZERO),
        }
    }

    /// Redraws with `finished` requests (`errors` of them failed) after `elapsed`.
    pub fn update(&mut self, finished: u64, errors: u64, elapsed: Duration) {
        let position = match self.goal {
            Goal::Requests(_) => finished,
            Goal::Time(_) => elapsed.as_millis() as u64,
        };
        self.bar.set_position(position);
        let (before, then) = self.last;
        let window = (elapsed - then).as_secs_f64();
        if window > 0.0 {
            let rate = (finished - before) as f64 / window;
            self.bar.set_message(format!(
                "{finished} done, {rate:.0} req/s now, {errors} errors"
            ));
        }
        self.last = (finished, elapsed);
    }

    /// Takes the bar off the screen before the summary is printed.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
