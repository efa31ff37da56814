//! The demo's Prometheus metrics: the engine's own (see `pipelined::Config::metrics`),
//! `pipelined_requests_total{method, route, status}` included, kept by our own recorder and
//! rendered on `/metrics`.

mod exposition;
mod model;
mod recorder;

use std::sync::Arc;

use metrics::Unit;

pub use recorder::Registry;

/// Installs the process-wide recorder and describes every metric the engine emits; the
/// registry renders `/metrics`.
pub fn install() -> Result<Arc<Registry>, String> {
    let registry = Arc::new(Registry::default());
    metrics::set_global_recorder(Arc::clone(&registry))
        .map_err(|e| format!("cannot start metrics: {e}"))?;
    describe();
    Ok(registry)
}

/// HELP text for every metric name, engine's included: the exposition needs one per family,
/// and this is the one place that lists them all.
fn describe() {
    metrics::describe_counter!(
        "pipelined_requests_total",
        Unit::Count,
        "Requests answered, by method, matched route pattern (or unmatched) and status written."
    );
    metrics::describe_gauge!(
        "pipelined_open_connections",
        Unit::Count,
        "Connections being served."
    );
    metrics::describe_gauge!(
        "pipelined_in_flight_requests",
        Unit::Count,
        "Requests read and not yet answered, on all connections."
    );
    metrics::describe_histogram!(
        "pipelined_pipeline_depth",
        Unit::Count,
        "Requests read per written batch: how deep clients pipeline."
    );
    metrics::describe_histogram!(
        "pipelined_handler_seconds",
        Unit::Seconds,
        "How long handlers took to produce a response."
    );
    metrics::describe_histogram!(
        "pipelined_head_of_line_wait_seconds",
        Unit::Seconds,
        "How long finished responses waited for earlier responses on their connection."
    );
}
