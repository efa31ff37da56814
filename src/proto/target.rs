//! The request target (RFC 9112 §3.2): which forms each method may use, the bytes no form may
//! hold, and a one-entry cache of the last target's `Uri`.

use bytes::Bytes;
use http::{Method, StatusCode, Uri};

use super::error::EngineError;

/// The longest target cached: longer ones are parsed every time, so a connection's cache
/// stays small.
const CACHED_TARGET_LEN: usize = 256;

/// The last origin-form target and its `Uri`, per connection. A client that sends the same
/// target again and again (a load generator, a health check, a poller) then pays a compare and
/// a clone instead of the URI parser (~400 instructions of a plaintext request, issue #19).
/// The cached `Uri` owns a copy of its bytes, made the second time in a row a target is seen,
/// so it never pins a read buffer, and a client whose targets all differ pays a copy into a
/// reused buffer, no allocation. The answer is the same either way: it depends on the method
/// only for targets not in origin-form, which are never cached.
#[derive(Debug, Default)]
pub(crate) struct TargetCache {
    /// The last target seen, while it is short enough to cache.
    last: Vec<u8>,
    /// Its `Uri`, once it was seen twice in a row.
    uri: Option<Uri>,
}

impl TargetCache {
    /// The `Uri` of a request target, checked against the method (RFC 9112 §3.2).
    pub(crate) fn parse(&mut self, method: &Method, target: Bytes) -> Result<Uri, EngineError> {
        let repeated = self.last == target;
        if repeated {
            if let Some(uri) = &self.uri {
                return Ok(uri.clone());
            }
        }
        let uri = parse_target(method, target.clone())?;
        self.uri = None;
        self.last.clear();
        if target.len() <= CACHED_TARGET_LEN && target.first() == Some(&b'/') {
            self.last.extend_from_slice(&target);
            if repeated {
                self.uri = parse_origin_form(Bytes::copy_from_slice(&target)).ok();
            }
        }
        Ok(uri)
    }
}

/// Validates the request target form against the method (RFC 9112 §3.2): origin-form and
/// absolute-form for every method, `*` only for OPTIONS, authority-form only for CONNECT.
fn parse_target(method: &Method, target: Bytes) -> Result<Uri, EngineError> {
    check_target_bytes(&target)?;
    if target.first() == Some(&b'/') {
        parse_origin_form(target)
    } else {
        parse_other_form(method, target)
    }
}

/// The common case, `/path?query`, in one pass over the target: the URI parser stops at a
/// `#` and drops the rest, so a path and query shorter than the target means there was a
/// fragment, which no request-target form has (RFC 9112 §3.2): refused rather than dropped.
fn parse_origin_form(target: Bytes) -> Result<Uri, EngineError> {
    let len = target.len();
    Uri::from_maybe_shared(target)
        .ok()
        .filter(|uri| uri.path_and_query().map(|pq| pq.as_str().len()) == Some(len))
        .ok_or_else(bad_target)
}

/// Absolute-form (without userinfo) for any method, `*` for OPTIONS; authority-form only
/// belongs to CONNECT, which is answered `501`.
fn parse_other_form(method: &Method, target: Bytes) -> Result<Uri, EngineError> {
    // No fragments here either; the URI parser would drop one silently, so look first.
    if target.contains(&b'#') {
        return Err(bad_target());
    }
    let asterisk = &target[..] == b"*";
    let uri = Uri::from_maybe_shared(target).map_err(|_| bad_target())?;
    let absolute_form = uri.scheme().is_some();
    let authority_form = !asterisk && !absolute_form;
    if absolute_form && uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated as an error (it hides
        // the real host from a reader of logs: `http://trusted@evil/`).
        return Err(EngineError::bad_request("userinfo in the request target"));
    }
    if authority_form && method == Method::CONNECT {
        // A tunnel is not something this server opens. Closing after the answer matters: a
        // client that sent CONNECT may already be sending the tunnel's bytes (a TLS hello),
        // which must never be parsed as requests.
        return Err(EngineError::new(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT (tunnels) is not supported",
        ));
    }
    if absolute_form || (asterisk && method == Method::OPTIONS) {
        Ok(uri)
    } else {
        Err(bad_target())
    }
}

/// Bytes no target form may hold, whatever the URI parser allows. The request target is ASCII
/// (RFC 9112 §3.2, RFC 3986): a raw byte above 0x7F is one the client should have
/// percent-encoded, and servers disagree on what it means (bytes, UTF-8, Latin-1), so it is
/// refused rather than guessed. `%00` in the path decodes to NUL, which no path holds and
/// which cuts the path short for anything behind the application that uses C strings (nginx
/// refuses it too). The query is left alone: form data may encode any byte.
fn check_target_bytes(target: &[u8]) -> Result<(), EngineError> {
    if !target.is_ascii() {
        return Err(EngineError::bad_request(
            "non-ASCII byte in the request target",
        ));
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path
        .split(|&b| b == b'%')
        .skip(1)
        .any(|escape| escape.starts_with(b"00"))
    {
        return Err(EngineError::bad_request("%00 (NUL) in the request path"));
    }
    Ok(())
}

fn bad_target() -> EngineError {
    EngineError::bad_request("invalid request target")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cache: &mut TargetCache, method: Method, target: &'static str) -> Result<Uri, u16> {
        let target = Bytes::from_static(target.as_bytes());
        cache.parse(&method, target).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn a_repeated_target_is_answered_from_the_cache_with_an_owned_copy() {
        let mut cache = TargetCache::default();
        let first = parse(&mut cache, Method::GET, "/a?b=1").unwrap();
        assert!(cache.uri.is_none(), "seen once: not cached yet");
        let second = parse(&mut cache, Method::GET, "/a?b=1").unwrap();
        let cached = cache.uri.clone().expect("seen twice: cached");
        assert_eq!((&first, &second, &cached), (&cached, &cached, &cached));
        let third = parse(&mut cache, Method::GET, "/a?b=1").unwrap();
        assert_eq!(third, cached);
        assert_ne!(
            third.path().as_ptr(),
            second.path().as_ptr(),
            "the cached Uri owns its bytes, apart from any request's"
        );
        assert_eq!(third.path().as_ptr(), cached.path().as_ptr(), "a clone");
    }

    #[test]
    fn another_target_replaces_the_cached_one() {
        let mut cache = TargetCache::default();
        parse(&mut cache, Method::GET, "/a").unwrap();
        parse(&mut cache, Method::GET, "/a").unwrap();
        assert_eq!(parse(&mut cache, Method::GET, "/b").unwrap(), "/b");
        assert!(cache.uri.is_none());
        assert_eq!(parse(&mut cache, Method::GET, "/a").unwrap(), "/a");
    }

    #[test]
    fn refused_long_and_other_form_targets_are_never_cached() {
        let mut cache = TargetCache::default();
        for _ in 0..2 {
            assert_eq!(parse(&mut cache, Method::GET, "/a#f"), Err(400));
            assert_eq!(parse(&mut cache, Method::OPTIONS, "*").unwrap(), "*");
        }
        assert!(cache.uri.is_none() && cache.last.is_empty());
        assert_eq!(
            parse(&mut cache, Method::GET, "*"),
            Err(400),
            "* is OPTIONS's alone"
        );
        let long: &'static str = Box::leak(format!("/{}", "a".repeat(256)).into_boxed_str());
        for _ in 0..2 {
            parse(&mut cache, Method::GET, long).unwrap();
        }
        assert!(cache.uri.is_none() && cache.last.is_empty());
    }

    /// Only CONNECT's authority-form is answered 501; `*` is OPTIONS's alone and an
    /// absolute-form target is any method's.
    #[test]
    fn connect_is_refused_501_only_for_its_authority_form() {
        let status = |method: Method, target: &'static str| {
            parse_other_form(&method, Bytes::from_static(target.as_bytes()))
                .map(|_| ())
                .map_err(|e| e.status)
        };
        assert_eq!(
            status(Method::CONNECT, "a:443"),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
        assert_eq!(status(Method::CONNECT, "*"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(status(Method::CONNECT, "http://a/"), Ok(()));
        assert_eq!(status(Method::OPTIONS, "*"), Ok(()));
        assert_eq!(status(Method::GET, "*"), Err(StatusCode::BAD_REQUEST));
    }
}
