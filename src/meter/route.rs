//! How the engine learns which route a request matched, for the `route` label of
//! `pipelined_requests_total`, without reading the request's extensions (gone by the time its
//! answer is written) or allocating.
//!
//! The [`Router`](crate::Router) routes a request while the engine calls the service, on the
//! engine's own thread: it reports the matched pattern into a thread-local slot
//! ([`report`]), and the engine reads it back right after the call ([`expect_route`]). A service
//! that is not a `Router`, or a path no pattern matches, reports nothing: `unmatched`.
//!
//! Each pattern is interned once, when it is routed ([`RouteLabel::intern`]), so the report is
//! a copy of a pointer, labels compare by address, and a counter's label needs no allocation.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

/// A route pattern, interned: one copy per distinct pattern for the life of the process.
///
/// Patterns come from the application's code, so the set is as bounded as the label must be;
/// leaking them is what lets every label be `&'static` (no reference count shared by all
/// worker threads, no allocation per counter).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteLabel(&'static str);

/// Every pattern interned so far.
static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

thread_local! {
    /// The route reported by the service being called on this thread, if any.
    static REPORTED: Cell<Option<RouteLabel>> = const { Cell::new(None) };
}

impl RouteLabel {
    /// The label of `pattern`: the same address for the same text, whichever router routed it.
    pub(crate) fn intern(pattern: &str) -> Self {
        let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(label) = interned.get(pattern) {
            return RouteLabel(label);
        }
        let label: &'static str = String::leak(pattern.to_owned());
        interned.insert(label);
        RouteLabel(label)
    }

    pub(crate) fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for RouteLabel {
    /// Interned: equal text is the same address.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for RouteLabel {}

/// Called by the `Router` when a pattern matched the request it is routing.
pub(crate) fn report(label: RouteLabel) {
    REPORTED.with(|reported| reported.set(Some(label)));
}

/// Starts listening for the route of the service call made next, read with
/// [`Expecting::route`] once it returns. Not a function that takes the call as a closure: a
/// closure would take the request by value and copy it (264 bytes, once more per request).
pub(crate) fn expect_route() -> Expecting {
    REPORTED.with(|reported| reported.set(None));
    Expecting
}

/// A route report being listened for ([`expect_route`]).
pub(crate) struct Expecting;

impl Expecting {
    /// The route reported since [`expect_route`], if any.
    pub(crate) fn route(self) -> Option<RouteLabel> {
        REPORTED.with(Cell::take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_pattern_is_one_label_and_others_differ() {
        let a = RouteLabel::intern("/route-test/{id}");
        let b = RouteLabel::intern(&String::from("/route-test/{id}"));
        assert_eq!(a, b);
        assert_ne!(a, RouteLabel::intern("/route-test/other"));
        assert_eq!(a.as_str(), "/route-test/{id}");
    }

    #[test]
    fn only_a_report_during_the_call_counts() {
        report(RouteLabel::intern("/stale"));
        assert_eq!(expect_route().route(), None);
        let label = RouteLabel::intern("/reported");
        let expecting = expect_route();
        report(label);
        assert_eq!(expecting.route(), Some(label));
        assert_eq!(expect_route().route(), None, "taken");
    }
}
