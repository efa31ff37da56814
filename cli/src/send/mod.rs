//! `pipelined send` and `pipelined health`: a small HTTP/1.1 client built into the binary.
//!
//! curl removed pipelining in 7.65, and no mainstream Rust client pipelines, so the binary
//! carries its own: every request goes out in one write on one connection (plain or TLS; over
//! TLS the one write is one batch of records), and the report shows
//! what the server did with them — when each handler ran, how long each finished answer waited
//! for earlier ones, and when it arrived. `health` reuses the same client so a container image
//! needs no curl for its HEALTHCHECK.

mod cacert;
mod client;
mod decode;
mod report;
pub mod tls;
mod url;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use client::Exchange;
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
    /// Extra header for every request, 'Name: value' (repeatable).
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

/// How `https://` servers are trusted, for `send` and `health` alike.
#[derive(Args)]
struct TlsArgs {
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
    fn trust(&self) -> Trust {
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
    let (target, wire, sent) = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(e) => return fail(&e),
    };
    let head = args.method.eq_ignore_ascii_case("HEAD");
    let exchange = client::exchange(
        &target,
        &args.tls.trust(),
        &wire,
        sent.len(),
        head,
        args.timeout,
    );
    let mut exchange = match exchange {
        Ok(exchange) => exchange,
        Err(e) => return fail(&e),
    };
    let out = if args.raw {
        std::mem::take(&mut exchange.raw)
    } else if args.json {
        report::json(&target, &sent, &exchange).into_bytes()
    } else {
        report::text(&target, &sent, &exchange, wire.len()).into_bytes()
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
    let wire = request(
        "GET",
        &target.path,
        &target,
        &["Connection: close".to_owned()],
        None,
    );
    let exchange = client::exchange(&target, &args.tls.trust(), &wire, 1, false, args.timeout);
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
        Ok(r) if (200..300).contains(&r.status) => {
            let ms = r.arrival.as_secs_f64() * 1000.0;
            println!(
                "healthy: {url} answered {} {} in {ms:.1} ms",
                r.status, r.reason
            );
            ExitCode::SUCCESS
        }
        Ok(r) => fail(&format!(
            "unhealthy: {url} answered {} {}",
            r.status, r.reason
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

/// Checks the arguments and builds the bytes of the whole pipeline.
fn prepare(args: &SendArgs) -> Result<(Target, Vec<u8>, Vec<Sent>), String> {
    let target = Target::parse(&args.url)?;
    if target.path.contains('?') {
        return Err(format!(
            "put the query in each PATH, not in the URL `{}`",
            args.url
        ));
    }
    if args.method.is_empty() || !args.method.bytes().all(is_token) {
        return Err(format!("`{}` is not a method name", args.method));
    }
    for header in &args.header {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header `{header}` needs the form 'Name: value'"))?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(format!("`{name}` is not a header name"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!(
                "header `{name}` has a line break or NUL in its value"
            ));
        }
    }
    let data = args.data.as_deref().map(read_data).transpose()?;
    let prefix = target.path.trim_end_matches('/');
    let mut wire = Vec::new();
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
            wire.extend(request(
                &args.method,
                &path,
                &target,
                &args.header,
                data.as_deref(),
            ));
            sent.push(Sent { path: path.clone() });
        }
    }
    Ok((target, wire, sent))
}

/// One request's bytes. `Host` and the body's `Content-Length` are added unless the user
/// set them (or `Transfer-Encoding`) with `-H`: the user's header wins, so odd framing can be
/// tried on purpose.
fn request(
    method: &str,
    path: &str,
    target: &Target,
    headers: &[String],
    data: Option<&[u8]>,
) -> Vec<u8> {
    let has = |name: &str| {
        headers.iter().any(|h| {
            h.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
    };
    let mut wire = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        wire.push_str(&format!("Host: {}\r\n", target.authority));
    }
    for header in headers {
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        wire.push_str(&format!("{name}: {}\r\n", value.trim()));
    }
    if let Some(data) = data {
        if !has("content-length") && !has("transfer-encoding") {
            wire.push_str(&format!("Content-Length: {}\r\n", data.len()));
        }
    }
    wire.push_str("\r\n");
    let mut wire = wire.into_bytes();
    wire.extend_from_slice(data.unwrap_or_default());
    wire
}

/// `--data`: the string itself, or a file's bytes for `@FILE` (`@-`: standard input).
fn read_data(data: &str) -> Result<Vec<u8>, String> {
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

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
