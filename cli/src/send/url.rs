//! The one URL shape the client needs: `http[s]://HOST[:PORT][/PATH]`. Written out rather than
//! pulling in a URL crate because anything richer (credentials, IDNA) is deliberately not
//! supported, and each refusal should say so plainly.

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
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "not a URL: `{url}` (expected http[s]://HOST[:PORT], e.g. http://{url})"
            ));
        };
        let scheme = if scheme.eq_ignore_ascii_case("http") {
            Scheme::Http
        } else if scheme.eq_ignore_ascii_case("https") {
            Scheme::Https
        } else {
            return Err(format!(
                "unsupported scheme `{scheme}` in `{url}`: only http:// and https:// URLs"
            ));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(format!("credentials in the URL are not supported: `{url}`"));
        }
        let (host, port) =
            split_port(authority, scheme.default_port()).map_err(|e| format!("{e} in `{url}`"))?;
        if host.is_empty() {
            return Err(format!("no host in `{url}`"));
        }
        if let Some(bad) = path.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the URL's path contains {bad:?}; percent-encode it: `{url}`"
            ));
        }
        let path = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Target {
            scheme,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }
}

/// Splits `host[:port]` or `[v6][:port]`; the port defaults to `default_port`.
fn split_port(authority: &str, default_port: u16) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| "an unclosed `[`".to_owned())?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected `{after}` after the IPv6 address")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port `{port}`"))?,
    };
    Ok((host, port))
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
            ("http://[::1", "unclosed"),
            ("http://host/a b", "percent-encode"),
        ];
        for (url, expected) in cases {
            let err = Target::parse(url).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
        }
    }
}
