//! `pipelined send` and `pipelined health`: a small HTTP/1.1 client built into the binary.
//!
//! curl removed pipelining in 7.65, and no mainstream Rust client pipelines, so the binary
//! uses the project's own, `pipelined::client`: every request goes out in one write on one
//! connection (plain or TLS; over TLS the one write is one batch of records), and the report
//! shows what the server did with them — when each handler ran, how long each finished answer
//! waited for earlier ones, and when it arrived. `health` reuses the same client so a container
//! image needs no curl for its HEALTHCHECK.

mod cacert;
pub(crate) mod client;
pub(crate) mod report;
pub mod tls;
pub(crate) mod url;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};

use client::{Body, Exchange};
use tls::Trust;
use url::Target;

#[derive(Args)]
pub struct SendArgs {
    /// Server to send to: http://HOST[:PORT] or https://HOST[:PORT] (a path here is put in
    /// front of every PATH).
    url: String,
    /// Request targets, sent in this order, e.g. /delay/300 /delay/100 /plaintext.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Request method for every request.
    #[arg(long, short = 'X', default_value = "GET")]
    method: String,
    /// Extra header for every request, 'Name: value' (repeatable). Not Content-Length or
    /// Transfer-Encoding: the client frames each body itself.
    #[arg(long, short = 'H', value_name = "NAME: VALUE")]
    header: Vec<String>,
    /// Body for every request, sent with Content-Length; @FILE reads a file, @- stdin.
    #[arg(long, short = 'd', value_name = "STRING")]
    data: Option<String>,
    /// Send each path N times in a row.
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    repeat: u32,
    /// One JSON document on stdout instead of the table and timeline.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Print the response bytes exactly as received, nothing else.
    #[arg(long)]
    raw: bool,
    /// Seconds to wait, from connecting to the last response, before giving up.
    #[arg(long, default_value = "30", value_name = "SECS", value_parser = parse_secs)]
    timeout: Duration,
    #[command(flatten)]
    tls: TlsArgs,
}

/// How `https://` servers are trusted, for `send`, `health` and `load` alike.
#[derive(Args)]
pub struct TlsArgs {
    /// https: accept any server certificate (self-signed, expired, for another name). Still
    /// encrypted, but the server is not authenticated: for test servers only.
    #[arg(long, short = 'k', conflicts_with = "cacert")]
    insecure: bool,
    /// https: trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "PATH")]
    cacert: Option<PathBuf>,
}

impl TlsArgs {
    /// Which server certificates `--insecure` and `--cacert` let through.
    pub(crate) fn trust(&self) -> Trust {
        match (&self.cacert, self.insecure) {
            (_, true) => Trust::Anything,
            (Some(path), false) => Trust::CaFile(path.clone()),
            (None, false) => Trust::System,
        }
    }
}

#[derive(Args)]
pub struct HealthArgs {
    /// URL to check (default: http://$PIPELINED_BIND/healthz, else http://127.0.0.1:8080/healthz).
    #[arg(long)]
    url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value = "5", value_name = "SECS", value_parser = parse_secs)]
    timeout: Duration,
    #[command(flatten)]
    tls: TlsArgs,
}

/// One request of the pipeline, for the report.
pub struct Sent {
    pub path: String,
}

/// Runs `pipelined send`: exit 0 when every request got a response (whatever its status).
pub fn send(args: SendArgs) -> ExitCode {
    let Batch {
        target,
        requests,
        sent,
    } = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(e) => return fail(&e),
    };
    let exchange = client::exchange(&target, &args.tls.trust(), requests, args.timeout);
    let mut exchange = match exchange {
        Ok(exchange) => exchange,
        Err(e) => return fail(&e),
    };
    let out = if args.raw {
        std::mem::take(&mut exchange.raw)
    } else if args.json {
        report::json(&target, &sent, &exchange).into_bytes()
    } else {
        report::text(&target, &sent, &exchange).into_bytes()
    };
    // A closed stdout (`| head`) is not worth a panic or a second error.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
    match exchange.error {
        Some(e) => fail(&e),
        None => ExitCode::SUCCESS,
    }
}

/// Runs `pipelined health`: exit 0 on a 2xx answer, 1 on anything else, one line either way.
pub fn health(args: HealthArgs) -> ExitCode {
    let url = match args.url {
        Some(url) => url,
        None => match default_health_url() {
            Ok(url) => url,
            Err(e) => return fail(&e),
        },
    };
    let target = match Target::parse(&url) {
        Ok(target) => target,
        Err(e) => return fail(&e),
    };
    let check = fields(&["Connection: close".to_owned()], &target)
        .and_then(|fields| request(&Method::GET, &target.path, &fields, &Bytes::new()));
    let check = match check {
        Ok(check) => check,
        Err(e) => return fail(&e),
    };
    let exchange = client::exchange(&target, &args.tls.trust(), vec![check], args.timeout);
    let answer = exchange.and_then(|exchange| {
        let Exchange {
            responses, error, ..
        } = exchange;
        responses
            .into_iter()
            .next()
            .ok_or(error.unwrap_or_default())
    });
    match answer {
        Ok(r) if r.status.is_success() => {
            let ms = r.arrival.as_secs_f64() * 1000.0;
            println!(
                "healthy: {url} answered {} {} in {ms:.1} ms",
                r.status.as_u16(),
                r.reason()
            );
            ExitCode::SUCCESS
        }
        Ok(r) => fail(&format!(
            "unhealthy: {url} answered {} {}",
            r.status.as_u16(),
            r.reason()
        )),
        Err(e) => fail(&format!("unhealthy: {e}")),
    }
}

/// Where the server listens by default: `PIPELINED_BIND` as `serve` reads it, with a
/// wildcard address (0.0.0.0, as in a container) replaced by loopback, which reaches it.
fn default_health_url() -> Result<String, String> {
    let Ok(bind) = std::env::var("PIPELINED_BIND") else {
        return Ok("http://127.0.0.1:8080/healthz".to_owned());
    };
    let mut addr: std::net::SocketAddr = bind
        .parse()
        .map_err(|_| format!("PIPELINED_BIND is not a socket address: `{bind}`; pass --url"))?;
    if addr.port() == 0 {
        return Err(
            "PIPELINED_BIND has port 0, which is not where anything listens; pass --url".into(),
        );
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}/healthz"))
}

/// What `send` writes: where, every request in order, and each one's path for the report.
struct Batch {
    target: Target,
    requests: Vec<Request<Body>>,
    sent: Vec<Sent>,
}

/// Checks the arguments and builds every request of the pipeline, in order.
fn prepare(args: &SendArgs) -> Result<Batch, String> {
    let target = Target::parse(&args.url)?;
    if target.path.contains('?') {
        return Err(format!(
            "put the query in each PATH, not in the URL `{}`",
            args.url
        ));
    }
    let method = Method::from_bytes(args.method.as_bytes())
        .map_err(|_| format!("`{}` is not a method name", args.method))?;
    let fields = fields(&args.header, &target)?;
    let data = match args.data.as_deref() {
        Some(data) => Bytes::from(read_data(data)?),
        None => Bytes::new(),
    };
    let prefix = target.path.trim_end_matches('/');
    let mut requests = Vec::new();
    let mut sent = Vec::new();
    for path in &args.paths {
        if !path.starts_with('/') && path != "*" {
            return Err(format!("each PATH must start with '/': `{path}`"));
        }
        if let Some(bad) = path.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("path `{path}` contains {bad:?}; percent-encode it"));
        }
        let path = if path == "*" {
            path.clone()
        } else {
            format!("{prefix}{path}")
        };
        for _ in 0..args.repeat {
            requests.push(request(&method, &path, &fields, &data)?);
            sent.push(Sent { path: path.clone() });
        }
    }
    Ok(Batch {
        target,
        requests,
        sent,
    })
}

/// The `-H` fields every request carries, after `Host` (the URL's authority) unless one of
/// them is a `Host`: the user's header wins. `Content-Length` and `Transfer-Encoding` are
/// refused rather than dropped: the client frames each body itself.
fn fields(headers: &[String], target: &Target) -> Result<HeaderMap, String> {
    let given = parse_fields(headers)?;
    if given.contains_key(HOST) {
        return Ok(given);
    }
    // RFC 9112 §3.2: Host goes first.
    let mut fields = HeaderMap::with_capacity(given.len() + 1);
    let host = HeaderValue::from_str(&target.authority)
        .expect("a URL's authority is visible ASCII, a valid field value");
    fields.insert(HOST, host);
    fields.extend(given);
    Ok(fields)
}

/// The `-H` fields as given, each checked: a name and a value without control characters,
/// and no framing field.
pub(crate) fn parse_fields(headers: &[String]) -> Result<HeaderMap, String> {
    let mut given = HeaderMap::new();
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header `{header}` needs the form 'Name: value'"))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a header name"))?;
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            return Err(format!(
                "-H {name}: the client frames each body itself (Content-Length from --data)"
            ));
        }
        let value = HeaderValue::from_str(value.trim()).map_err(|_| {
            format!("header `{name}` has a line break or another control character in its value")
        })?;
        given.append(name, value);
    }
    Ok(given)
}

/// One request of the pipeline: `method` on `path` (origin form, or `*`), with `fields`
/// and `data` as its body (none when empty); the client adds the body's framing.
fn request(
    method: &Method,
    path: &str,
    fields: &HeaderMap,
    data: &Bytes,
) -> Result<Request<Body>, String> {
    let uri: Uri = path
        .parse()
        .map_err(|e| format!("path `{path}` is not a request target ({e}); percent-encode it"))?;
    // `Uri` drops a fragment, which no request carries: sending the rest would be another path.
    if uri.path_and_query().map(|p| p.as_str()) != Some(path) {
        return Err(format!(
            "path `{path}` has a #fragment, which a request does not carry; percent-encode '#' as %23"
        ));
    }
    let mut request = Request::new(Body::new(data.clone()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = fields.clone();
    Ok(request)
}

/// `--data`: the string itself, or a file's bytes for `@FILE` (`@-`: standard input).
pub(crate) fn read_data(data: &str) -> Result<Vec<u8>, String> {
    match data.strip_prefix('@') {
        None => Ok(data.as_bytes().to_vec()),
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            Ok(bytes)
        }
        Some(file) => std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}")),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "expected seconds, more than 0 and at most 86400".to_owned())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("pipelined: {message}");
    ExitCode::FAILURE
}
