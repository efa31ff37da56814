//! A small pooled client over the connection-level API: per authority, up to N connections,
//! each pipelining up to D requests, and the retries RFC 9112 §9.3.1 allows.

use crate::client::RequestBody;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Scheme;
use http::{Request, Response, Uri};
use http_body::Body;
use tokio::net::TcpStream;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use super::body::Incoming;
use super::encode::is_idempotent;
use super::error::{Error, ErrorKind};
use super::send::{Builder, SendRequest};

/// Where a connection goes: scheme, host and port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Authority {
    https: bool,
    host: String,
    port: u16,
}

impl Authority {
    fn of(uri: &Uri) -> Result<Self, Error> {
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => false,
            Some(s) if *s == Scheme::HTTPS => true,
            _ => {
                return Err(Error::new(
                    ErrorKind::Request,
                    format!("`{uri}` is not an absolute http:// or https:// URI"),
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| Error::new(ErrorKind::Request, format!("`{uri}` has no host")))?;
        // `[::1]` in a URI, `::1` for the resolver.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Authority { https, host, port })
    }
}

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    connection: Builder,
    connections: usize,
    retries: usize,
    connect_timeout: Duration,
    #[cfg(feature = "tls-ring")]
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// The defaults: 4 connections per authority, each with [`Builder::new`]'s settings, one
    /// retry, a 10 s connect timeout.
    pub fn new() -> Self {
        ClientBuilder {
            connection: Builder::new(),
            connections: 4,
            retries: 1,
            connect_timeout: Duration::from_secs(10),
            #[cfg(feature = "tls-ring")]
            tls: None,
        }
    }

    /// The settings of each connection (depth, RFC rules, limits).
    pub fn connection(mut self, builder: Builder) -> Self {
        self.connection = builder;
        self
    }

    /// Connections per authority (at least 1; default 4): a new one is opened only when every
    /// open one has a response owed, so light traffic stays on one.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// How many times a request the server may not have processed is sent again on a new
    /// connection (default 1): one that went unanswered ([`ErrorKind::NotAnswered`]) when its
    /// method is idempotent and its body was empty. A request never written
    /// ([`ErrorKind::NotSent`]) is always sent again, up to this many times plus two.
    pub fn retries(mut self, n: usize) -> Self {
        self.retries = n;
        self
    }

    /// How long opening a connection (TCP, and the TLS handshake) may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The TLS settings for `https://` (roots, client certificates). ALPN is set to
    /// `http/1.1` whatever the config says: this client pipelines HTTP/1.1.
    #[cfg(feature = "tls-ring")]
    pub fn tls(mut self, mut config: rustls::ClientConfig) -> Self {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = Some(Arc::new(config));
        self
    }

    /// The client.
    pub fn build<B>(self) -> Client<B>
    where
        B: RequestBody,
    {
        Client {
            inner: Arc::new(Inner {
                settings: self,
                pools: Mutex::new(HashMap::new()),
            }),
        }
    }
}

struct Inner<B: Body + Send + 'static> {
    settings: ClientBuilder,
    pools: Mutex<HashMap<Authority, Pool<B>>>,
}

/// The connections to one authority.
struct Pool<B: Body + Send + 'static> {
    open: Vec<SendRequest<B>>,
    /// Connections being opened, counted against the limit so that a burst of requests does
    /// not open one each.
    opening: usize,
    /// Woken when a connection being opened is open (or failed).
    opened: Arc<Notify>,
}

impl<B: Body + Send + 'static> Default for Pool<B> {
    fn default() -> Self {
        Pool {
            open: Vec::new(),
            opening: 0,
            opened: Arc::new(Notify::new()),
        }
    }
}

/// Connections that ended before a request could be placed on one, before `checkout` gives
/// up with the last one's error.
const CHECKOUT_ATTEMPTS: usize = 3;

/// A connection being opened, counted in its pool's `opening` until dropped.
struct Opening<'a, B: Body + Send + 'static> {
    inner: &'a Inner<B>,
    authority: &'a Authority,
}

impl<B: Body + Send + 'static> Opening<'_, B> {
    fn pool<R>(&self, f: impl FnOnce(&mut Pool<B>) -> R) -> R {
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(pools.entry(self.authority.clone()).or_default())
    }
}

impl<B: Body + Send + 'static> Drop for Opening<'_, B> {
    fn drop(&mut self) {
        self.pool(|pool| {
            pool.opening -= 1;
            pool.opened.notify_waiters();
        });
    }
}

/// Where a request goes.
enum Pick<B: Body + Send + 'static> {
    Use(SendRequest<B>),
    Connect,
    Wait(Pin<Box<OwnedNotified>>),
}

/// A pooled, pipelining HTTP/1.1 client: `request` picks (or opens) a connection to the URI's
/// authority with room, sends the request there, and sends it again on a new connection when
/// the RFC allows ([`ClientBuilder::retries`]). Plain TCP, and TLS with feature `tls-ring`.
/// Cloning shares the pool.
pub struct Client<B: Body + Send + 'static> {
    inner: Arc<Inner<B>>,
}

impl<B: Body + Send + 'static> Clone for Client<B> {
    fn clone(&self) -> Self {
        Client {
            inner: self.inner.clone(),
        }
    }
}

impl<B: Body + Send + 'static> std::fmt::Debug for Client<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Client<http_body_util::Full<bytes::Bytes>> {
    /// The settings, to [`build`](ClientBuilder::build) a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }
}

impl<B> Client<B>
where
    B: RequestBody,
{
    /// Sends `request` (its URI absolute: `http://host:port/path`) and waits for its response
    /// head; the body streams from the connection.
    ///
    /// # Return Value
    ///
    /// The response, or the last error once retries are spent or not allowed: a
    /// [`ErrorKind::NotAnswered`] error for a non-idempotent request means it may or may not
    /// have been processed; [`ErrorKind::Connect`] that no connection could be made.
    pub async fn request(&self, mut request: Request<B>) -> Result<Response<Incoming>, Error> {
        let authority = Authority::of(request.uri())?;
        let method = request.method().clone();
        let mut unanswered_left = self.inner.settings.retries;
        let mut unsent_left = self.inner.settings.retries + 2;
        loop {
            let mut send = self.checkout(&authority).await?;
            let error = match tower::Service::call(&mut send, request).await {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let budget = match error.kind() {
                ErrorKind::NotSent => &mut unsent_left,
                ErrorKind::NotAnswered if is_idempotent(&method) => &mut unanswered_left,
                _ => return Err(error),
            };
            if *budget == 0 {
                return Err(error);
            }
            *budget -= 1;
            request = error.into_request::<B>()?;
            tracing::debug!(%method, "sending a request again on a new connection");
        }
    }

    /// A sender to `authority` with a place reserved: the open connection with the fewest
    /// requests owed; a new one when every open one owes some and the limit (counting those
    /// being opened) allows; else the least loaded one's next free place.
    async fn checkout(&self, authority: &Authority) -> Result<SendRequest<B>, Error> {
        let mut ended = 0;
        loop {
            let mut send = match self.pick(authority) {
                Pick::Use(send) => send,
                Pick::Connect => self.open(authority).await?,
                Pick::Wait(opened) => {
                    opened.await;
                    continue;
                }
            };
            // The connection may have ended since it was picked: pick again, a few times (a
            // server that closes every connection at once must not be dialled for ever).
            match send.ready().await {
                Ok(()) => return Ok(send),
                Err(error) if ended == CHECKOUT_ATTEMPTS => return Err(error),
                Err(_) => ended += 1,
            }
        }
    }

    /// Decides, under the pool's lock, where the next request to `authority` goes.
    fn pick(&self, authority: &Authority) -> Pick<B> {
        let limit = self.inner.settings.connections;
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let pool = pools.entry(authority.clone()).or_default();
        pool.open.retain(|send| !send.is_closed());
        let least = pool.open.iter().min_by_key(|send| send.outstanding());
        match least {
            Some(send) if send.outstanding() == 0 => Pick::Use(send.clone()),
            _ if pool.open.len() + pool.opening < limit => {
                pool.opening += 1;
                Pick::Connect
            }
            Some(send) => Pick::Use(send.clone()),
            None => {
                // Every allowed connection is still being opened: wait for one.
                let mut opened = Box::pin(pool.opened.clone().notified_owned());
                opened.as_mut().enable();
                Pick::Wait(opened)
            }
        }
    }

    /// Opens a connection counted in `opening`, and adds it to the pool.
    async fn open(&self, authority: &Authority) -> Result<SendRequest<B>, Error> {
        // Counted out of `opening` (and the waiters woken) when this ends, also when the
        // caller is dropped partway through the connect.
        let opening = Opening {
            inner: &self.inner,
            authority,
        };
        let connected = self.connect(authority).await;
        if let Ok(send) = &connected {
            opening.pool(|pool| pool.open.push(send.clone()));
        }
        connected
    }

    /// Opens a connection to `authority` (TLS for `https`) and spawns its task; its end is
    /// logged here, once, where the task ends.
    async fn connect(&self, authority: &Authority) -> Result<SendRequest<B>, Error> {
        let settings = &self.inner.settings;
        let timeout = settings.connect_timeout;
        let tcp = tokio::time::timeout(
            timeout,
            TcpStream::connect((&*authority.host, authority.port)),
        )
        .await
        .map_err(|_| connect_error(authority, &format!("timed out after {timeout:?}")))?
        .map_err(|e| connect_error(authority, &e.to_string()))?;
        // Requests leave in batches anyway; Nagle could only hold back a batch's last segment.
        let _ = tcp.set_nodelay(true);
        if authority.https {
            return self.connect_tls(authority, tcp).await;
        }
        let (send, connection) = settings.connection.handshake(tcp);
        spawn(connection, authority);
        Ok(send)
    }

    #[cfg(feature = "tls-ring")]
    async fn connect_tls(
        &self,
        authority: &Authority,
        tcp: TcpStream,
    ) -> Result<SendRequest<B>, Error> {
        let settings = &self.inner.settings;
        let Some(config) = settings.tls.clone() else {
            return Err(no_tls(authority));
        };
        let name = rustls::pki_types::ServerName::try_from(authority.host.clone())
            .map_err(|e| connect_error(authority, &format!("not a valid TLS server name: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let timeout = settings.connect_timeout;
        let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| {
                connect_error(
                    authority,
                    &format!("TLS handshake timed out after {timeout:?}"),
                )
            })?
            .map_err(|e| connect_error(authority, &format!("TLS handshake failed: {e}")))?;
        let (send, connection) = settings.connection.handshake(tls);
        spawn(connection, authority);
        Ok(send)
    }

    #[cfg(not(feature = "tls-ring"))]
    async fn connect_tls(
        &self,
        authority: &Authority,
        _: TcpStream,
    ) -> Result<SendRequest<B>, Error> {
        Err(no_tls(authority))
    }
}

/// Runs a connection's task; its error is logged here, once (every request it concerned has
/// its own error already).
fn spawn<F>(connection: F, authority: &Authority)
where
    F: Future<Output = Result<(), Error>> + Send + 'static,
{
    let host = format!("{}:{}", authority.host, authority.port);
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%host, %error, "client connection ended");
        }
    });
}

fn connect_error(authority: &Authority, why: &str) -> Error {
    Error::new(
        ErrorKind::Connect,
        format!(
            "cannot connect to {}:{}: {why}",
            authority.host, authority.port
        ),
    )
}

fn no_tls(authority: &Authority) -> Error {
    connect_error(
        authority,
        "https:// needs TLS settings: build the client with feature `tls-ring` and \
         ClientBuilder::tls",
    )
}

/// `Client` as a `tower::Service`: always ready (each request waits for its own place), one
/// boxed future per request.
impl<B> tower::Service<Request<B>> for Client<B>
where
    B: RequestBody,
{
    type Response = Response<Incoming>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.request(request).await })
    }
}
