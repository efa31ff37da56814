//! What both engines' metrics share (see `Config::metrics`), outside either engine: the
//! series' names ([`names`]), the `pipelined_requests_total` counters and their labels
//! ([`requests`]), and the route a `Router` reports for a request ([`route`]).
//!
//! How each engine measures is its own: the HTTP/1.1 engine aggregates per written batch
//! (`conn/meter.rs`), HTTP/2 records per stream (`h2/measure.rs`).

pub(crate) mod names;
mod requests;
mod route;

pub(crate) use requests::{Labels, Requests, Tally};
pub(crate) use route::{expect_route, report, RouteLabel};
