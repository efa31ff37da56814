//! `pipelined_requests_total{method, route, status}`: every answer written, counted by the
//! status on the wire, whoever made it (the service, or the engine: a refusal, a timeout, a
//! failed body).
//!
//! Both protocols count where the final answer is fixed, HTTP/1.1 where its head is encoded
//! (`Conn::answer`) and HTTP/2 where a stream's response is handed to hyper
//! (`h2::service`), so an answer the engine learns to give later is counted without anyone
//! remembering to.
//!
//! This runs for every request, so nothing here looks a counter up by name: a server's
//! [`Requests`] keeps the handle of each (method, route, status) it has seen, found by a short
//! probe of a fixed table, and an HTTP/1.1 connection adds up its answers in a [`Tally`] and
//! hands them over once per written batch (one `increment(n)` per distinct key).

use std::sync::OnceLock;

use http::{Method, StatusCode};
use metrics::Counter;

use super::names::REQUESTS_TOTAL;
use super::route::RouteLabel;

/// The method labels; any other method is counted as `other`, so the label stays bounded.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
];

/// The index of `other` in [`METHODS`].
const OTHER: u8 = 9;

/// The route label of a request no route matched (or that was refused before routing).
const UNMATCHED: &str = "unmatched";

/// Counter handles a server keeps: room for every (method, route, status) an application
/// answers with (a few per route) at most half full, so a probe is short; past that, a key
/// is still counted, through the recorder's own lookup.
const SLOTS: usize = 128;

/// What a request's answer is counted under, besides its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Labels {
    /// Index in [`METHODS`].
    method: u8,
    /// The pattern its `Router` matched; `None`: `unmatched`.
    route: Option<RouteLabel>,
}

impl Labels {
    /// A request with `method`, before it is routed.
    pub(crate) fn new(method: &Method) -> Self {
        Labels {
            method: method_index(method),
            route: None,
        }
    }

    /// A request refused before its head was accepted (its method is not trusted: `other`),
    /// or whose service's call panicked: it reached no route.
    pub(crate) fn unknown() -> Self {
        Labels {
            method: OTHER,
            route: None,
        }
    }

    /// The same request, once its service reported `route` (see `route::expect_route`).
    pub(crate) fn routed_to(self, route: Option<RouteLabel>) -> Self {
        Labels { route, ..self }
    }

    fn key(self, status: StatusCode) -> Key {
        Key {
            labels: self,
            status: status.as_u16(),
        }
    }
}

/// One series of the counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    labels: Labels,
    status: u16,
}

impl Key {
    /// Where its probe of the table starts: the route's address, method and status mixed
    /// (Fibonacci hashing), so the keys of one route spread over the table.
    fn home(self) -> usize {
        let route = self
            .labels
            .route
            .map_or(0, |r| r.as_str().as_ptr() as usize);
        let mixed = (route as u64) ^ (u64::from(self.status) << 8) ^ u64::from(self.labels.method);
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57) as usize
    }

    /// Registers the series with the recorder.
    fn register(self) -> Counter {
        let route = self.labels.route.map_or(UNMATCHED, RouteLabel::as_str);
        metrics::counter!(
            REQUESTS_TOTAL,
            "method" => METHODS[usize::from(self.labels.method)],
            "route" => route,
            "status" => self.status.to_string()
        )
    }
}

/// One server's counter handles (shared by its connections, both protocols), registered on
/// first use so the recorder only shows series that were answered. `OnceLock` slots let any
/// task claim or read one without a lock.
pub(crate) struct Requests {
    slots: Box<[OnceLock<(Key, Counter)>]>,
}

/// Shown in `ServerStats`' `Debug`, which has no use for the handles.
impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").finish_non_exhaustive()
    }
}

impl Requests {
    pub(crate) fn new() -> Self {
        Requests {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Counts `n` answers with `status` to requests labelled `labels` (an HTTP/2 stream's; an
    /// HTTP/1.1 connection's come through its [`Tally`]).
    #[cfg(feature = "http2")]
    pub(crate) fn count(&self, labels: Labels, status: StatusCode, n: u64) {
        self.add(labels.key(status), n);
    }

    fn add(&self, key: Key, n: u64) {
        let home = key.home();
        for i in 0..SLOTS {
            let slot = &self.slots[(home + i) % SLOTS];
            // The first empty slot is claimed for this key; one claimed concurrently for
            // another key is passed over like any other.
            let (seen, counter) = slot.get_or_init(|| (key, key.register()));
            if *seen == key {
                counter.increment(n);
                return;
            }
        }
        key.register().increment(n);
    }
}

/// Distinct keys a connection adds up between batches: a batch is mostly one route's answers.
const TALLIED: usize = 4;

/// One HTTP/1.1 connection's answers since its last batch, by key.
#[derive(Default)]
pub(crate) struct Tally {
    counts: [Option<(Key, u64)>; TALLIED],
}

impl Tally {
    /// One answer; when the tally has no room for a new key, what it holds goes to `requests`
    /// first. The batch's first key is looked at before the call to look further (inlined
    /// where the answer is counted: a batch is mostly one route's answers).
    #[inline(always)]
    pub(crate) fn add(&mut self, labels: Labels, status: StatusCode, requests: &Requests) {
        let key = labels.key(status);
        if let Some((seen, n)) = &mut self.counts[0] {
            if *seen == key {
                *n += 1;
                return;
            }
        }
        self.add_key(key, requests);
    }

    /// [`Tally::add`] past the first key.
    fn add_key(&mut self, key: Key, requests: &Requests) {
        for entry in &mut self.counts {
            match entry {
                Some((seen, n)) if *seen == key => {
                    *n += 1;
                    return;
                }
                Some(_) => {}
                None => {
                    *entry = Some((key, 1));
                    return;
                }
            }
        }
        self.flush(requests);
        self.counts[0] = Some((key, 1));
    }

    /// Hands everything counted to `requests` and starts over.
    pub(crate) fn flush(&mut self, requests: &Requests) {
        for (key, n) in self.counts.iter_mut().map_while(Option::take) {
            requests.add(key, n);
        }
    }
}

/// The index in [`METHODS`] of the method's label.
fn method_index(method: &Method) -> u8 {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::CONNECT => 8,
        _ => OTHER,
    }
}
