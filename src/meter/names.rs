//! The engine's metric names, one place for HTTP/1.1 (`conn/meter.rs`), HTTP/2
//! (`h2/measure.rs`), the connection gauge (`stats.rs`) and the request counter of both
//! protocols (`requests.rs`), so a rename cannot split the two protocols' series.

pub(crate) const IN_FLIGHT: &str = "pipelined_in_flight_requests";
pub(crate) const HANDLER_SECONDS: &str = "pipelined_handler_seconds";
pub(crate) const OPEN_CONNECTIONS: &str = "pipelined_open_connections";
pub(crate) const PIPELINE_DEPTH: &str = "pipelined_pipeline_depth";
pub(crate) const HEAD_OF_LINE_SECONDS: &str = "pipelined_head_of_line_wait_seconds";
pub(crate) const REQUESTS_TOTAL: &str = "pipelined_requests_total";
