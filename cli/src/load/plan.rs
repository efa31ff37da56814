//! What a run sends and where: the request every connection repeats, the address found once,
//! TLS set up once, and how a connection is opened during the run.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::Full;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

use super::args::LoadArgs;
use crate::send::client::{connect, handshake};
use crate::send::tls::Tls;
use crate::send::url::{Scheme, Target};
use crate::send::{parse_fields, read_data};

/// A request's body: the whole of `-d` / `-D`, shared by every request, or nothing.
pub type Body = Full<Bytes>;

/// How long opening one connection (TCP and TLS) may take before it counts as a connect error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The request every connection sends, over and over.
pub struct Template {
    method: Method,
    /// Absolute: HTTP/2 takes its `:authority` from it.
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    /// The whole HTTP/1.1 request, encoded once.
    pub wire: Vec<u8>,
    /// The method is HEAD: answers have no body whatever their fields say.
    pub is_head: bool,
    /// A `-H 'Connection: close'` asks the server to close after each answer.
    pub closes: bool,
}

impl Template {
    fn new(method: Method, uri: Uri, headers: HeaderMap, body: Bytes, target: &Target) -> Self {
        let closes = headers.get_all(CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        });
        Template {
            wire: encode(&method, &target.path, &target.authority, &headers, &body),
            is_head: method == Method::HEAD,
            closes,
            method,
            uri,
            headers,
            body,
        }
    }

    /// One more copy. With no `-H` nothing here allocates: the URI is static text and an
    /// empty `HeaderMap` owns no memory.
    pub fn request(&self) -> Request<Body> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        if !self.headers.is_empty() {
            *request.headers_mut() = self.headers.clone();
        }
        request
    }
}

/// The HTTP/1.1 request (RFC 9112 §3): Host first unless `-H` gave one, the user's fields,
/// and Content-Length for a body (or an empty one where the method expects a body, as curl
/// does).
fn encode(
    method: &Method,
    path: &str,
    authority: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + path.len() + body.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let field = |out: &mut Vec<u8>, name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if !headers.contains_key(HOST) {
        field(&mut out, b"host", authority.as_bytes());
    }
    for (name, value) in headers {
        field(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    let expects_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if !body.is_empty() || expects_body {
        field(
            &mut out,
            b"content-length",
            body.len().to_string().as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Everything the load threads share, fixed before the first request.
pub struct Plan {
    pub target: Target,
    /// The address the first connection reached: every later one goes there without asking
    /// the resolver again.
    pub address: SocketAddr,
    pub tls: Option<Tls>,
    pub template: Template,
    /// Outstanding requests per connection (`--pipeline`).
    pub depth: usize,
    pub timeout: Option<Duration>,
    pub http2: bool,
}

/// A connection, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Plan {
    /// Checks the arguments and opens one connection (TCP and TLS), so a bad flag, an
    /// unreachable server or a certificate the client does not trust is reported before the
    /// run, in one line.
    pub async fn new(args: &LoadArgs) -> Result<Plan, String> {
        let target = Target::parse(&args.url)?;
        let method = Method::from_bytes(args.method.as_bytes())
            .map_err(|_| format!("`{}` is not a request method", args.method))?;
        let headers = parse_fields(&args.headers)?;
        let body = match (&args.body, &args.body_file) {
            (Some(body), _) => Bytes::from(body.clone().into_bytes()),
            (None, Some(path)) => Bytes::from(read_data(&format!("@{}", path.display()))?),
            (None, None) => Bytes::new(),
        };
        let tls = match (target.scheme, args.http2) {
            (Scheme::Http, _) => None,
            (Scheme::Https, false) => Some(Tls::new(&args.tls.trust())?),
            (Scheme::Https, true) => Some(Tls::with_alpn(&args.tls.trust(), b"h2")?),
        };
        let url = format!(
            "{}://{}{}",
            target.scheme.as_str(),
            target.authority,
            target.path
        );
        url.parse::<Uri>()
            .map_err(|e| format!("`{url}` is not a request target ({e})"))?;
        // Leaked once, for the life of the process: every request's URI is then a copy of a
        // pointer, where a shared one would cost two atomic operations per request.
        let uri = Uri::from_static(Box::leak(url.into_boxed_str()));
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let tcp = connect(&target, deadline, CONNECT_TIMEOUT).await?;
        let address = tcp
            .peer_addr()
            .map_err(|e| format!("cannot connect to {}: {e}", target.authority))?;
        if let Some(tls) = &tls {
            let stream = handshake(tls, tcp, &target, deadline, CONNECT_TIMEOUT).await?;
            let agreed = stream.get_ref().1.alpn_protocol();
            if args.http2 && agreed != Some(b"h2".as_slice()) {
                return Err(format!(
                    "{} did not agree to HTTP/2 (ALPN h2); leave out --http2",
                    target.authority
                ));
            }
        }
        let template = Template::new(method, uri, headers, body, &target);
        Ok(Plan {
            target,
            address,
            tls,
            template,
            depth: args.pipeline as usize,
            timeout: args.timeout,
            http2: args.http2,
        })
    }

    /// Opens a connection for the run; `Err` is a connect error.
    pub async fn open(&self) -> Result<Stream, ()> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(self.address))
            .await
            .map_err(drop)?
            .map_err(drop)?;
        // As wrk and oha do: each write leaves at once, not held back for an ACK.
        tcp.set_nodelay(true).map_err(drop)?;
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => handshake(tls, tcp, &self.target, deadline, CONNECT_TIMEOUT)
                .await
                .map(|tls| Stream::Tls(Box::new(tls)))
                .map_err(drop),
        }
    }
}
