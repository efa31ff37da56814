//! The one URL shape the client needs: `http[s]://HOST[:PORT][/PATH]`, parsed by `http::Uri`
//! (the crate the requests are built with anyway). What `Uri` accepts but the client does not
//! support (credentials, other schemes, port 0) is refused here, each with a sentence that
//! says why, and `Uri`'s own refusals are named with the URL they came from.

use http::uri::{Authority, Uri};

/// Whether the connection is plain TCP or TLS over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// As written in a URL, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Where to connect, and what to put in `Host` and in front of each request's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host name or IP address, without IPv6 brackets (what the resolver wants).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written in the URL: the `Host` header and error messages use it.
    pub authority: String,
    /// The URL's path and query, `/` when it has none.
    pub path: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL; the error is a sentence for the user.
    pub fn parse(url: &str) -> Result<Target, String> {
        if !url.contains("://") {
            return Err(format!(
                "not a URL: `{url}` (expected http[s]://HOST[:PORT], e.g. http://{url})"
            ));
        }
        // The fragment is the client's own business (curl drops it too), and `Uri` refuses it.
        let sent = url.split('#').next().unwrap_or_default();
        let uri: Uri = sent.parse().map_err(|e| refused(url, &e))?;
        let scheme = scheme(&uri, url)?;
        let authority = uri
            .authority()
            .ok_or_else(|| format!("no host in `{url}`"))?;
        if authority.as_str().contains('@') {
            return Err(format!("credentials in the URL are not supported: `{url}`"));
        }
        let port = port(authority, scheme.default_port()).map_err(|e| format!("{e} in `{url}`"))?;
        let host = authority.host();
        // `Uri` keeps an IPv6 literal's brackets; the resolver wants the address alone.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.is_empty() {
            return Err(format!("no host in `{url}`"));
        }
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("") => "/".to_owned(),
            Some(p) if p.starts_with('?') => format!("/{p}"),
            Some(p) => p.to_owned(),
        };
        Ok(Target {
            scheme,
            host: bare.to_owned(),
            port,
            authority: authority.as_str().to_owned(),
            path,
        })
    }
}

/// Why `Uri` refused `url`, as a sentence: a space or control character (the usual mistake in a
/// path) gets the fix, anything else `Uri`'s own reason.
fn refused(url: &str, e: &http::uri::InvalidUri) -> String {
    match url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        Some(bad) => format!("the URL contains {bad:?}; percent-encode it: `{url}`"),
        None => format!("not a valid URL ({e}): `{url}`"),
    }
}

/// `http` or `https`, in any case (`Uri` reads the scheme case-insensitively).
fn scheme(uri: &Uri, url: &str) -> Result<Scheme, String> {
    match uri.scheme() {
        Some(s) if *s == http::uri::Scheme::HTTP => Ok(Scheme::Http),
        Some(s) if *s == http::uri::Scheme::HTTPS => Ok(Scheme::Https),
        Some(none) if none.as_str().is_empty() => Err(format!(
            "no scheme in `{url}`: only http:// and https:// URLs"
        )),
        Some(other) => Err(format!(
            "unsupported scheme `{other}` in `{url}`: only http:// and https:// URLs"
        )),
        None => Err(format!(
            "not a URL: `{url}` (expected http[s]://HOST[:PORT], e.g. http://{url})"
        )),
    }
}

/// The authority's port, `default_port` when it names none (`host` or `host:`). `Uri` keeps
/// any digits after the colon and reports a number past 65535 as no port at all, so the text
/// after the host is what tells "none" from "bad".
fn port(authority: &Authority, default_port: u16) -> Result<u16, String> {
    let after_host = &authority.as_str()[authority.host().len()..];
    match after_host.strip_prefix(':') {
        None | Some("") => Ok(default_port),
        Some(written) => authority
            .port_u16()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port `{written}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_the_client_takes() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("127.0.0.1", 8080, "127.0.0.1:8080", "/")
        );
        let t = Target::parse("HTTP://example.com/healthz?x=1#frag").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.com", 80, "/healthz?x=1")
        );
        let t = Target::parse("http://[::1]:9000/a").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 9000, "[::1]:9000")
        );
        assert_eq!(Target::parse("http://[::1]").unwrap().port, 80);
        assert_eq!(t.scheme, Scheme::Http);
    }

    /// The shapes the hand-written parser took, each still read the same way by `Uri`.
    #[test]
    fn edge_cases_of_the_authority_and_path() {
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("::1", 8080, "[::1]:8080", "/")
        );
        let t = Target::parse("https://[2001:db8::7]/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("2001:db8::7", 443, "[2001:db8::7]")
        );
        // No port, or a colon with nothing after it: the scheme's port.
        for (url, port) in [
            ("http://localhost", 80),
            ("http://localhost:", 80),
            ("https://localhost", 443),
            ("https://localhost:/a", 443),
        ] {
            assert_eq!(Target::parse(url).unwrap().port, port, "{url}");
        }
        // A query with no path gets the root path in front of it.
        let t = Target::parse("http://h?x=1").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("h", "/?x=1"));
        assert_eq!(Target::parse("http://h/#top").unwrap().path, "/");
    }

    #[test]
    fn https_urls_default_to_port_443() {
        let t = Target::parse("HTTPS://example.com/base").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port, t.authority.as_str()),
            (Scheme::Https, "example.com", 443, "example.com")
        );
        let t = Target::parse("https://[::1]:8443").unwrap();
        assert_eq!(
            (t.scheme, t.host.as_str(), t.port),
            (Scheme::Https, "::1", 8443)
        );
    }

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("ftp://localhost", "unsupported scheme `ftp`"),
            ("https://host:0", "bad port `0`"),
            ("127.0.0.1:8080", "e.g. http://127.0.0.1:8080"),
            ("http://:80", "no host"),
            ("http://host:99999", "bad port `99999`"),
            ("http://host:0", "bad port `0`"),
            ("http://u:p@host", "credentials"),
            (
                "http://[::1",
                "not a valid URL (invalid authority): `http://[::1`",
            ),
            ("http://a:1:2", "not a valid URL (invalid authority)"),
            ("http://host/a b", "percent-encode"),
            ("http://host/a\tb", "contains '\\t'; percent-encode"),
            ("gopher://host:70/", "only http:// and https:// URLs"),
            ("://host", "no scheme in `://host`"),
        ];
        for (url, expected) in cases {
            let err = Target::parse(url).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
        }
    }
}
