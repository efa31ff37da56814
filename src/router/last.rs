//! Routing a connection's repeated path once: the route the engine matched last ([`LastRoute`])
//! answers the next request on the same path without a matchit lookup, on the inline path
//! and, through a [`RouteHint`], on the Service path too.
//!
//! The hint crosses the `tower::Service::call` boundary in a thread-local, as the matched route
//! comes back out of it for the metrics (`meter::expect_route`): `Service::call` takes a request and
//! nothing else, and carrying it in the request's extensions would cost an allocation, more
//! than the lookup it saves. It is safe by construction: the engine makes a hint only from
//! `LastRoute` for the very path of the request it is handing over, only for the router it is
//! serving, and sets it only for that call ([`offer`]); the router takes it first thing
//! ([`take`]), so a router called from inside a handler never sees it, and a router that is
//! not the one it was made for ignores it.

use std::cell::Cell;

/// The longest path [`LastRoute`] keeps.
const LAST_ROUTE_PATH: usize = 256;

/// The last path a connection's inline path matched, and its route, kept when the route has
/// no parameters: a client that repeats a path (a health check, a poller, a load generator)
/// skips matchit's lookup (~180-240 instructions). A path matches the same route every time
/// (the router cannot change once served), so the answer is the same.
#[derive(Debug, Default)]
pub(crate) struct LastRoute {
    path: Vec<u8>,
    /// The route's position; `None` while nothing is kept.
    index: Option<usize>,
}

impl LastRoute {
    pub(super) fn remember(&mut self, path: &str, index: usize, plain: bool) {
        self.path.clear();
        self.index = None;
        if plain && path.len() <= LAST_ROUTE_PATH {
            self.path.extend_from_slice(path.as_bytes());
            self.index = Some(index);
        }
    }

    /// The route kept, if it was kept for `path`.
    pub(super) fn find(&self, path: &str) -> Option<usize> {
        self.index.filter(|_| self.path == path.as_bytes())
    }
}

thread_local! {
    /// The route the engine found for the request it is handing to a router on this thread,
    /// while that call runs ([`offer`]).
    static HINT: Cell<Option<RouteHint>> = const { Cell::new(None) };
}

/// A route of one router, found by the engine for the request it is about to give that router
/// (`Router::hint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RouteHint {
    /// Which router: the address of its shared state (clones share it).
    pub(super) router: usize,
    /// The route's position in that router.
    pub(super) index: usize,
}

/// Leaves `hint` for the served router's `call`, made while the returned guard lives; none is
/// left once the guard is dropped (also when the call panics), whether it was taken or not. A
/// guard, not a closure around the call: a closure would take the 264-byte request by value
/// and copy it twice on its way (callgrind: ~120 instructions per request).
#[must_use = "the hint is withdrawn when the guard is dropped"]
pub(crate) fn offer(hint: Option<RouteHint>) -> Offered {
    if hint.is_some() {
        HINT.set(hint);
    }
    Offered(hint.is_some())
}

/// Withdraws an offered hint when dropped ([`offer`]).
pub(crate) struct Offered(bool);

impl Drop for Offered {
    fn drop(&mut self) {
        if self.0 {
            HINT.set(None);
        }
    }
}

/// The route left for the router whose state is at `router`, if one was; taken either way.
pub(super) fn take(router: usize) -> Option<usize> {
    let hint = HINT.take()?;
    (hint.router == router).then_some(hint.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_only_its_own_route() {
        let mut last = LastRoute::default();
        assert_eq!(last.find("/a"), None);
        last.remember("/a", 3, true);
        assert_eq!(last.find("/a"), Some(3));
        assert_eq!(last.find("/b"), None);
        assert_eq!(last.find("/a/"), None);
        last.remember("/p/1", 4, false);
        assert_eq!(
            last.find("/p/1"),
            None,
            "a route with parameters is not kept"
        );
        assert_eq!(last.find("/a"), None, "nor the one before it");
    }

    #[test]
    fn a_hint_is_taken_once_by_its_own_router_during_the_call_only() {
        let hint = RouteHint {
            router: 7,
            index: 2,
        };
        let hinted = |call: fn() -> Option<usize>| {
            let _offered = offer(Some(hint));
            call()
        };
        assert_eq!(hinted(|| take(7)), Some(2));
        assert_eq!(hinted(|| take(7).and(take(7))), None, "taken once");
        assert_eq!(hinted(|| take(8)), None, "another router's");
        assert_eq!(hinted(|| take(8).or(take(7))), None, "taken by the first");
        hinted(|| None);
        assert_eq!(take(7), None, "not left after the call");
        let panicked = std::panic::catch_unwind(|| {
            let _offered = offer(Some(hint));
            panic!("the call panics");
        });
        assert!(panicked.is_err());
        assert_eq!(take(7), None, "not left after a call that panicked");
    }
}
