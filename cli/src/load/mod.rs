//! `pipelined load`: oha's command line and summary, with `--pipeline N`.
//!
//! oha cannot pipeline (its client is hyper's, which does not), and wrk needs a Lua script to;
//! neither shows per-request latency under pipelining the way oha does without it. HTTP/1.1
//! goes through this module's own engine ([`wire`]: the request encoded once, up to N written
//! ahead, responses read in place with the framing rules of `pipelined::client`), HTTP/2
//! (`--http2`) through hyper's client; on T threads of one current-thread runtime each, as
//! wrk's `-t`.
//!
//! Latency runs from the write that finished a request (HTTP/2: from handing it to hyper) to
//! its response's last byte; under `-q` from the time the schedule gave it, fixed before the
//! run, so a server that stalls is charged for every request it held up, including those the
//! client could not send meanwhile (no coordinated omission, as wrk2 does it).

mod args;
mod framing;
mod h2;
mod live;
mod plan;
mod report;
mod run;
mod stats;
mod wire;
mod worker;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

pub use args::LoadArgs;
use live::{Goal, View};
use plan::Plan;
use report::Settings;
use run::Shape;

/// Runs `pipelined load`: exit 0 when the run finished and at least one request was answered.
pub fn load(args: LoadArgs) -> ExitCode {
    match load_inner(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipelined load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_inner(args: &LoadArgs) -> Result<ExitCode, String> {
    // The checks, and the first connection that proves the server is there, run before the
    // load threads exist.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let plan = Arc::new(runtime.block_on(Plan::new(args))?);
    drop(runtime);
    let threads = match args.threads {
        Some(n) => n as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let shape = Shape {
        threads: threads.min(args.connections as usize),
        connections: args.connections as usize,
        requests: args.duration.is_none().then_some(args.requests),
        duration: args.duration,
        rate: args.rate,
    };
    let goal = match args.duration {
        Some(d) => Goal::Time(d),
        None => Goal::Requests(args.requests),
    };
    let mut view = View::new(goal, args.no_tui || args.json);
    let finished = run::run(plan.clone(), &shape, &mut view)?;
    let settings = Settings {
        url: args.url.clone(),
        method: args.method.clone(),
        http_version: if plan.http2 { "2" } else { "1.1" },
        connections: shape.connections,
        pipeline: plan.depth,
        threads: shape.threads,
        rate: args.rate,
    };
    let out = if args.json {
        report::json(&settings, &finished)
    } else {
        report::text(&settings, &finished)
    };
    // A closed stdout (`| head`) is not worth a panic or a second error.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    Ok(if finished.stats.answers() > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
