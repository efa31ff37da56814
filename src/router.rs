//! A small router on `matchit`: method routing, path parameters, the matched pattern
//! ([`MatchedPath`]), 404, 405 with `Allow`, a fallback, nested routers, and tower layers. It is
//! a [`tower::Service`], so any other service works with [`serve`](crate::serve) just as well.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};

mod last;

pub(crate) use last::{offer, LastRoute, RouteHint};

use crate::inline::{Answer, HeadView, Inline};
use crate::response::{IntoResponse, ResponseBody};
use crate::{Body, BoxError};

/// The future a route returns.
pub type RouteFuture =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, BoxError>> + Send>>;

/// One handler, type-erased: a cheap-to-clone [`Service`], which is what layers wrap.
#[derive(Clone)]
pub struct Route(Arc<dyn Fn(Request<Body>) -> RouteFuture + Send + Sync>);

impl Route {
    fn from_handler<F, Fut, R>(handler: F) -> Self
    where
        F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        Route(Arc::new(move |req| {
            let fut = handler(req);
            Box::pin(async move { Ok(fut.await.into_response()) })
        }))
    }

    fn from_service<T>(service: T) -> Self
    where
        T: Service<Request<Body>> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
    {
        Route(Arc::new(move |req| {
            let service = service.clone();
            Box::pin(async move {
                service
                    .oneshot(req)
                    .await
                    .map(IntoResponse::into_response)
                    .map_err(Into::into)
            })
        }))
    }
}

impl Route {
    /// An inline handler as a route, for a router wrapped in a layer: the handler reads a view
    /// of the request; when it passes, `next` (the Service handler for the same method)
    /// answers, or `404` when there is none.
    fn from_inline(inline: Inline, next: Option<Route>) -> Self {
        Route(Arc::new(move |req| answer(&inline, next.as_ref(), req)))
    }
}

/// The Service path's answer for a route with an inline handler: the handler's, from a view of
/// the request, unless it passes; then `next`'s (the Service handler of the method), else `404`.
fn answer(inline: &Inline, next: Option<&Route>, req: Request<Body>) -> RouteFuture {
    match (inline.call(&HeadView::of(&req)).into_response(), next) {
        (Some(response), _) => Box::pin(std::future::ready(Ok(response))),
        (None, Some(route)) => (route.0)(req),
        (None, None) => not_found(),
    }
}

/// The answer to a request no handler takes: what a router with no fallback answers.
fn not_found() -> RouteFuture {
    let response = (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    Box::pin(std::future::ready(Ok(response)))
}

impl Service<Request<Body>> for Route {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> RouteFuture {
        (self.0)(req)
    }
}

/// Handlers for one path, by method; build with [`get`], [`post`], … and chain more methods.
#[derive(Clone, Default)]
pub struct MethodRouter {
    routes: Vec<(Method, Route)>,
    /// Inline handlers ([`get_inline`]), consulted before `routes` for the same method.
    inline: Vec<(Method, Inline)>,
    /// Answers every method not in `routes` ([`Router::route_service`]): no 405 for this path.
    any: Option<Route>,
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            #[doc = concat!("Routes `", stringify!($method), "` requests to `handler`.")]
            pub fn $name<F, Fut, R>(handler: F) -> MethodRouter
            where
                F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
                Fut: Future<Output = R> + Send + 'static,
                R: IntoResponse,
            {
                MethodRouter::default().on(Method::$method, handler)
            }
        )*

        impl MethodRouter {
            $(
                #[doc = concat!("Also routes `", stringify!($method), "` requests to `handler`.")]
                pub fn $name<F, Fut, R>(self, handler: F) -> Self
                where
                    F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
                    Fut: Future<Output = R> + Send + 'static,
                    R: IntoResponse,
                {
                    self.on(Method::$method, handler)
                }
            )*
        }
    };
}

method_fns!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE,
    head => HEAD, options => OPTIONS);

/// Routes `GET` (and so `HEAD`) requests to an inline handler: a function of the parsed head
/// that answers at once, with no `http::Request` built and no future (see [`Answer`] and
/// [`HeadView`]). On HTTP/1.1 the engine calls it straight from the parser; every other request
/// reaches it through the router as a `Service` (module docs of `inline` list which: a body, a
/// layer, HTTP/2, [`Answer::pass`]). A handler that passes may be called twice for one request
/// (inline, then on the Service path), so it should decide from the head alone.
///
/// ```
/// use pipelined::{get_inline, Answer, Router};
/// let app = Router::new()
///     .route("/health", get_inline(|_head| Answer::text("ok\n")))
///     .route("/items/{id}", get_inline(|head| match head.param("id") {
///         Some("0") => Answer::new(http::StatusCode::NOT_FOUND),
///         _ => Answer::pass(), // the `get` handler below answers
///     }).get(|_req| async { "an item\n" }));
/// # drop(app);
/// ```
pub fn get_inline<F>(handler: F) -> MethodRouter
where
    F: Fn(&HeadView<'_>) -> Answer + Send + Sync + 'static,
{
    MethodRouter::default().on_inline(Method::GET, handler)
}

impl MethodRouter {
    /// Routes `method` to `handler`, replacing an earlier handler for the same method.
    pub fn on<F, Fut, R>(mut self, method: Method, handler: F) -> Self
    where
        F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        self.routes.retain(|(m, _)| *m != method);
        self.routes.push((method, Route::from_handler(handler)));
        self
    }

    /// Also routes `GET` (and so `HEAD`) requests to an inline handler ([`get_inline`]).
    pub fn get_inline<F>(self, handler: F) -> Self
    where
        F: Fn(&HeadView<'_>) -> Answer + Send + Sync + 'static,
    {
        self.on_inline(Method::GET, handler)
    }

    /// Routes `method` to an inline handler ([`get_inline`]), replacing an earlier inline
    /// handler for the same method. A Service handler for the same method stays, and answers
    /// what the inline handler passes ([`Answer::pass`]).
    pub fn on_inline<F>(mut self, method: Method, handler: F) -> Self
    where
        F: Fn(&HeadView<'_>) -> Answer + Send + Sync + 'static,
    {
        self.inline.retain(|(m, _)| *m != method);
        self.inline.push((method, Inline::new(handler)));
        self
    }

    /// The entry of `list` for `method`; HEAD falls back to GET (the engine drops the body).
    fn by_method<'r, T>(list: &'r [(Method, T)], method: &Method) -> Option<&'r T> {
        let exact = list.iter().find(|(m, _)| m == method);
        let head_as_get = || {
            (*method == Method::HEAD)
                .then(|| list.iter().find(|(m, _)| *m == Method::GET))
                .flatten()
        };
        exact.or_else(head_as_get).map(|(_, t)| t)
    }

    /// The inline handler for `method`, if there is one.
    fn find_inline(&self, method: &Method) -> Option<&Inline> {
        Self::by_method(&self.inline, method)
    }

    /// The Service handler for `method`, then the one for any method.
    fn find(&self, method: &Method) -> Option<&Route> {
        Self::by_method(&self.routes, method).or(self.any.as_ref())
    }

    /// Every method this path answers: the routed ones, HEAD where GET is routed, and OPTIONS
    /// (answered by the router when no handler is routed for it).
    fn methods(&self) -> Vec<&str> {
        let mut methods: Vec<&str> = self.routes.iter().map(|(m, _)| m.as_str()).collect();
        for (method, _) in &self.inline {
            if !methods.contains(&method.as_str()) {
                methods.push(method.as_str());
            }
        }
        for (implied, by) in [("HEAD", "GET"), ("OPTIONS", "")] {
            let present = by.is_empty() || methods.contains(&by);
            if present && !methods.contains(&implied) {
                methods.push(implied);
            }
        }
        methods
    }

    /// The `Allow` header value for this path.
    fn allow(&self) -> HeaderValue {
        allow_value(&self.methods())
    }

    fn merge(&mut self, other: MethodRouter) {
        for (method, route) in other.routes {
            self.routes.retain(|(m, _)| *m != method);
            self.routes.push((method, route));
        }
        for (method, inline) in other.inline {
            self.inline.retain(|(m, _)| *m != method);
            self.inline.push((method, inline));
        }
        if other.any.is_some() {
            self.any = other.any;
        }
    }

    /// Turns the inline handlers into Service routes (each passing to the Service handler of
    /// its method), so that a layer wraps them too: a layered router has no inline path.
    fn fold_inline(&mut self) {
        for (method, inline) in std::mem::take(&mut self.inline) {
            let next = self.routes.iter().position(|(m, _)| *m == method);
            let next = next.map(|i| self.routes.remove(i).1);
            self.routes.push((method, Route::from_inline(inline, next)));
        }
    }

    /// Every route of this path, the any-method one included: what a layer wraps.
    fn routes_mut(&mut self) -> impl Iterator<Item = &mut Route> {
        let by_method = self.routes.iter_mut().map(|(_, route)| route);
        by_method.chain(self.any.as_mut())
    }
}

/// The route pattern a request matched (`/delay/{ms}`, not `/delay/20`), in the request's
/// extensions: the label metrics and traces want, bounded however many paths clients send.
///
/// Cloning it is a reference count, not a copy of the pattern. Requests answered by the
/// fallback carry none, and neither does any request to a router built
/// [`without_matched_path`](Router::without_matched_path).
///
/// A tower-http `TraceLayer` added with [`Router::layer`] runs after the router, so its
/// `make_span_with` can read it into OpenTelemetry's `http.route` field; the engine's own `http.request`
/// span gets `http.route` from the router whether or not the extension is on.
///
/// ```
/// use pipelined::{get, MatchedPath, Router};
/// let app = Router::new().route("/items/{id}", get(|req: http::Request<pipelined::Body>| async move {
///     let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
///     format!("matched {}\n", route.unwrap_or("nothing"))
/// }));
/// # drop(app);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MatchedPath(Arc<str>);

impl MatchedPath {
    /// The pattern as it was routed, nest prefixes included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One routed pattern and its handlers.
#[derive(Clone)]
struct Path {
    matched: MatchedPath,
    /// The pattern as `pipelined_requests_total`'s route label, reported as it is routed.
    #[cfg(feature = "metrics")]
    label: crate::meter::RouteLabel,
    methods: MethodRouter,
}

/// Path parameters of the matched route, in the request's extensions.
///
/// ```
/// use pipelined::{get, PathParams, Router};
/// let app = Router::new().route("/hello/{name}", get(|req: http::Request<pipelined::Body>| async move {
///     let name = req.extensions().get::<PathParams>().and_then(|p| p.get("name")).unwrap_or("?");
///     format!("hello {name}\n")
/// }));
/// # drop(app);
/// ```
#[derive(Clone, Debug, Default)]
pub struct PathParams(Vec<(String, String)>);

impl PathParams {
    /// The value of parameter `name`, as it appeared in the path.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct Inner {
    /// Pattern to its index in `paths`.
    matcher: matchit::Router<usize>,
    paths: Vec<Path>,
    fallback: Route,
    /// Whether matched requests carry a [`MatchedPath`] (see [`Router::without_matched_path`]).
    matched_path: bool,
}

impl Inner {
    /// Every method some path answers: the `Allow` of `OPTIONS *`.
    fn allow_any(&self) -> HeaderValue {
        let mut all: Vec<&str> = Vec::new();
        for path in &self.paths {
            for method in path.methods.methods() {
                if !all.contains(&method) {
                    all.push(method);
                }
            }
        }
        if !all.contains(&"OPTIONS") {
            all.push("OPTIONS");
        }
        allow_value(&all)
    }
}

/// `methods` as an `Allow` header value.
fn allow_value(methods: &[&str]) -> HeaderValue {
    HeaderValue::from_str(&methods.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

/// An answer the router makes itself about which methods are allowed.
fn answer_allow(status: StatusCode, allow: HeaderValue) -> RouteFuture {
    let mut res = if status == StatusCode::METHOD_NOT_ALLOWED {
        (status, "Method Not Allowed\n").into_response()
    } else {
        status.into_response()
    };
    res.headers_mut().insert(header::ALLOW, allow);
    Box::pin(std::future::ready(Ok(res)))
}

/// Routes requests by path and method; see the module docs.
///
/// ```
/// use pipelined::{get, post, Router};
/// let app = Router::new()
///     .route("/plaintext", get(|_req| async { "Hello, World!" }))
///     .route("/items/{id}", get(|_req| async { "an item" }).post(|_req| async { "created" }))
///     .fallback(|_req| async { (http::StatusCode::NOT_FOUND, "nothing here\n") });
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// A router with no routes: everything is `404 Not Found`.
    pub fn new() -> Self {
        let fallback = Route::from_handler(|_req| async { (StatusCode::NOT_FOUND, "Not Found\n") });
        Router {
            inner: Arc::new(Inner {
                matcher: matchit::Router::new(),
                paths: Vec::new(),
                fallback,
                matched_path: true,
            }),
        }
    }

    /// Routes `path` (matchit syntax: `/users/{id}`, `/files/{*rest}`) to `methods`.
    ///
    /// # Panics
    /// If `path` is not a valid route or conflicts with an existing one: a programming error
    /// best caught at start-up.
    pub fn route(mut self, path: &str, methods: MethodRouter) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        if let Some(index) = inner.paths.iter().position(|p| p.matched.as_str() == path) {
            inner.paths[index].methods.merge(methods);
            return self;
        }
        let index = inner.paths.len();
        if let Err(e) = inner.matcher.insert(path, index) {
            panic!("invalid route {path:?}: {e}");
        }
        inner.paths.push(Path {
            matched: MatchedPath(Arc::from(path)),
            #[cfg(feature = "metrics")]
            label: crate::meter::RouteLabel::intern(path),
            methods,
        });
        self
    }

    /// Routes every method on `path` to `service` (any tower service, an axum `Router` or a
    /// tower-http `ServeDir` say): the service answers for itself, so the router never
    /// answers 405 there. Methods also routed with [`route`](Router::route) go to their own
    /// handlers.
    ///
    /// ```
    /// use pipelined::Router;
    /// let echo = tower::service_fn(|req: http::Request<pipelined::Body>| async move {
    ///     Ok::<_, std::convert::Infallible>(format!("{} {}\n", req.method(), req.uri().path()))
    /// });
    /// let app = Router::new().route_service("/echo/{*rest}", echo);
    /// # drop(app);
    /// ```
    ///
    /// # Panics
    /// As [`route`](Router::route) does.
    pub fn route_service<T>(self, path: &str, service: T) -> Self
    where
        T: Service<Request<Body>> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
    {
        let methods = MethodRouter {
            any: Some(Route::from_service(service)),
            ..MethodRouter::default()
        };
        self.route(path, methods)
    }

    /// Handles requests whose path matches no route (default: `404 Not Found`).
    pub fn fallback<F, Fut, R>(mut self, handler: F) -> Self
    where
        F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoResponse,
    {
        Arc::make_mut(&mut self.inner).fallback = Route::from_handler(handler);
        self
    }

    /// Hands requests whose path matches no route to `service`, as [`fallback`](Router::fallback)
    /// does to a handler: another application mounted behind this router, say.
    ///
    /// ```
    /// use pipelined::{get, Router};
    /// let legacy = tower::service_fn(|_req: http::Request<pipelined::Body>| async {
    ///     Ok::<_, std::convert::Infallible>("from the old app\n")
    /// });
    /// let app = Router::new()
    ///     .route("/new", get(|_req| async { "new\n" }))
    ///     .fallback_service(legacy);
    /// # drop(app);
    /// ```
    pub fn fallback_service<T>(mut self, service: T) -> Self
    where
        T: Service<Request<Body>> + Clone + Send + Sync + 'static,
        T::Response: IntoResponse,
        T::Error: Into<BoxError>,
        T::Future: Send + 'static,
    {
        Arc::make_mut(&mut self.inner).fallback = Route::from_service(service);
        self
    }

    /// Mounts every route of `router` under `prefix`: its `/users/{id}` answers
    /// `{prefix}/users/{id}`, its `/` answers `{prefix}` itself, and [`MatchedPath`] is the
    /// whole pattern. Layers already applied to `router` stay on its routes; its fallback is
    /// not mounted (unmatched paths reach this router's fallback, as every unmatched path does).
    ///
    /// ```
    /// use pipelined::{get, Router};
    /// let api = Router::new()
    ///     .route("/", get(|_req| async { "api index\n" }))
    ///     .route("/users/{id}", get(|_req| async { "a user\n" }));
    /// let app = Router::new().nest("/api/v1", api); // GET /api/v1/users/7
    /// # drop(app);
    /// ```
    ///
    /// # Panics
    /// If `prefix` does not start with `/`, ends with `/`, or a mounted route conflicts with an
    /// existing one.
    pub fn nest(self, prefix: &str, router: Router) -> Self {
        assert!(
            prefix.starts_with('/') && !prefix.ends_with('/'),
            "nest prefix {prefix:?} must start with '/' and not end with it"
        );
        let paths = Arc::unwrap_or_clone(router.inner).paths;
        paths.into_iter().fold(self, |app, path| {
            let mounted = match path.matched.as_str() {
                "/" => prefix.to_owned(),
                pattern => format!("{prefix}{pattern}"),
            };
            app.route(&mounted, path.methods)
        })
    }

    /// Wraps every route and the fallback in `layer` (any tower layer).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route>,
        L::Service: Service<Request<Body>> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request<Body>>>::Response: IntoResponse,
        <L::Service as Service<Request<Body>>>::Error: Into<BoxError>,
        <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    {
        let inner = Arc::make_mut(&mut self.inner);
        let wrap = |route: &Route| Route::from_service(layer.layer(route.clone()));
        for path in &mut inner.paths {
            path.methods.fold_inline();
            for route in path.methods.routes_mut() {
                *route = wrap(route);
            }
        }
        inner.fallback = wrap(&inner.fallback);
        self
    }

    /// Stops putting a [`MatchedPath`] into each matched request's extensions, for an
    /// application none of whose handlers or layers read it.
    ///
    /// `http::Extensions` allocates a map and a box for the first value put in them: on a
    /// route without path parameters (whose requests carry no other extension) that is ~670
    /// instructions per request under callgrind, 10 % of a whole `/plaintext` request. A
    /// wrapper that only needs the route, such as a request counter, reads it from
    /// [`call_with_route`](Router::call_with_route) for nothing instead.
    ///
    /// ```
    /// use pipelined::{get, Router};
    /// let app = Router::new()
    ///     .route("/plaintext", get(|_req| async { "Hello, World!" }))
    ///     .without_matched_path();
    /// # drop(app);
    /// ```
    pub fn without_matched_path(mut self) -> Self {
        Arc::make_mut(&mut self.inner).matched_path = false;
        self
    }

    /// Every route pattern, in the order first routed: position `i` is the pattern
    /// [`call_with_route`](Router::call_with_route) reports as `Some(i)`.
    pub fn matched_paths(&self) -> impl ExactSizeIterator<Item = &MatchedPath> {
        self.inner.paths.iter().map(|path| &path.matched)
    }

    /// Routes `req` as [`Service::call`] does, and says which pattern matched (its position in
    /// [`matched_paths`](Router::matched_paths); `None` for the fallback and `OPTIONS *`),
    /// including for the 405s and `OPTIONS` answers the router makes itself.
    ///
    /// For a wrapper that labels every request by route, such as a request counter: it learns
    /// the route without matching the path a second time or reading the request's extensions,
    /// and can keep one slot per route, built once from `matched_paths`.
    ///
    /// ```
    /// use pipelined::{get, Router};
    /// let app = Router::new().route("/a", get(|_req| async { "a" }));
    /// let req = http::Request::get("/a").body(pipelined::Body::empty()).unwrap();
    /// let (route, _answer) = app.call_with_route(req);
    /// assert_eq!(route.and_then(|i| app.matched_paths().nth(i)).map(|m| m.as_str()), Some("/a"));
    /// ```
    pub fn call_with_route(&self, req: Request<Body>) -> (Option<usize>, RouteFuture) {
        self.route_to(req, None)
    }

    /// Routes `req` to its route, or to route `hint` when the engine already matched its path
    /// there ([`RouteHint`]: a plain route, so no parameters are lost), and calls it.
    fn route_to(
        &self,
        mut req: Request<Body>,
        hint: Option<usize>,
    ) -> (Option<usize>, RouteFuture) {
        let inner = &*self.inner;
        if req.method() == Method::OPTIONS && req.uri() == "*" {
            // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7).
            return (None, answer_allow(StatusCode::OK, inner.allow_any()));
        }
        let (index, params) = match hint {
            Some(index) => (index, None),
            None => match inner.matcher.at(req.uri().path()) {
                Ok(found) => {
                    let params = (!found.params.is_empty()).then(|| {
                        let pairs = found.params.iter();
                        PathParams(pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
                    });
                    (*found.value, params)
                }
                Err(_) => return (None, (inner.fallback.0)(req)),
            },
        };
        let path = &inner.paths[index];
        #[cfg(feature = "metrics")]
        crate::meter::report(path.label);
        record_route(&path.matched);
        let matched = inner.matched_path.then_some(&path.matched);
        let route = path.methods.find(req.method());
        let future = match (path.methods.find_inline(req.method()), route) {
            (Some(inline), next) => {
                carry(&mut req, matched, params);
                answer(inline, next, req)
            }
            (None, Some(route)) => {
                carry(&mut req, matched, params);
                (route.0)(req)
            }
            // RFC 9110 §9.3.7: OPTIONS on a path describes it (204 with `Allow`); any other
            // method the path does not route is 405, with the same `Allow`.
            (None, None) if req.method() == Method::OPTIONS => {
                answer_allow(StatusCode::NO_CONTENT, path.methods.allow())
            }
            (None, None) => answer_allow(StatusCode::METHOD_NOT_ALLOWED, path.methods.allow()),
        };
        (Some(index), future)
    }

    /// The inline handler for `method` on `path`, if the route has one ([`get_inline`]): the
    /// engine's inline path. `last` is the connection's [`LastRoute`].
    pub(crate) fn inline_at<'r, 'p>(
        &'r self,
        method: &Method,
        path: &'p str,
        last: &mut LastRoute,
    ) -> Option<InlineAt<'r, 'p>> {
        let inner = &*self.inner;
        let (index, params) = match last.find(path) {
            Some(index) => (index, None),
            None => {
                let found = inner.matcher.at(path).ok()?;
                last.remember(path, *found.value, found.params.is_empty());
                (*found.value, Some(found.params))
            }
        };
        let route = &inner.paths[index];
        let inline = route.methods.find_inline(method)?;
        Some(InlineAt {
            route,
            inline,
            params,
        })
    }

    /// The route `last` holds for `path`, as a hint for this router's next call
    /// ([`offer`]): the Service path then skips the lookup the inline path already made.
    pub(crate) fn hint(&self, path: &str, last: &LastRoute) -> Option<RouteHint> {
        let index = last.find(path)?;
        let router = self.id();
        Some(RouteHint { router, index })
    }

    /// This router's identity for a [`RouteHint`]: the address of the state its clones share.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Whether any route has an inline handler (a layer folds them into Service routes).
    pub(crate) fn has_inline(&self) -> bool {
        let mut paths = self.inner.paths.iter();
        paths.any(|path| !path.methods.inline.is_empty())
    }
}

/// A route's inline handler, matched for one request ([`Router::inline_at`]).
pub(crate) struct InlineAt<'r, 'p> {
    route: &'r Path,
    inline: &'r Inline,
    /// `None`: the route has no parameters ([`LastRoute`]).
    params: Option<matchit::Params<'r, 'p>>,
}

impl InlineAt<'_, '_> {
    /// What the request is counted under in `pipelined_requests_total`.
    #[cfg(feature = "metrics")]
    pub(crate) fn label(&self) -> crate::meter::RouteLabel {
        self.route.label
    }

    /// Calls the handler, inside the request's span (entered by the caller), where the route
    /// is recorded as `http.route`.
    pub(crate) fn call(
        &self,
        method: &Method,
        uri: &http::Uri,
        version: http::Version,
        fields: (&crate::proto::trusted::Validated, &bytes::Bytes),
    ) -> Answer {
        record_route(&self.route.matched);
        let head = HeadView::raw(method, uri, version, self.params.as_ref(), fields);
        self.inline.call(&head)
    }
}

/// Puts what a handler may read into the request's extensions: the matched pattern (unless the
/// router is built [`without_matched_path`](Router::without_matched_path)) and the parameters.
fn carry(req: &mut Request<Body>, matched: Option<&MatchedPath>, params: Option<PathParams>) {
    let extensions = req.extensions_mut();
    if let Some(matched) = matched {
        extensions.insert(matched.clone());
    }
    if let Some(params) = params {
        extensions.insert(params);
    }
}

/// Records the matched pattern as OpenTelemetry's `http.route` on the current span: the
/// engine's `http.request` span, which is entered while the service is called. Looked up only
/// when debug spans are on at all, so an ordinary server pays one level check.
fn record_route(matched: &MatchedPath) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record("http.route", matched.as_str());
    }
}

impl Service<Request<Body>> for Router {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> RouteFuture {
        // Taken first, so that no router called from inside a route sees it.
        let hint = last::take(self.id());
        self.route_to(req, hint).1
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn call(app: &Router, method: Method, target: &str) -> Response<ResponseBody> {
        let req = Request::builder()
            .method(method)
            .uri(target)
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(req).await.unwrap()
    }

    async fn text(res: Response<ResponseBody>) -> String {
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Which handler answered: the body each test's handlers answer with.
    async fn answered_by(app: &Router, method: Method, target: &str) -> String {
        text(call(app, method, target).await).await
    }

    fn app() -> Router {
        Router::new()
            .route("/page", get(|_req| async { "page" }))
            .route("/form", post(|_req| async { "posted" }))
    }

    #[tokio::test]
    async fn options_on_a_path_lists_its_methods() {
        let res = call(&app(), Method::OPTIONS, "/page").await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD, OPTIONS");
        assert_eq!(text(res).await, "");
    }

    #[tokio::test]
    async fn a_method_not_routed_is_405_with_the_same_allow() {
        let res = call(&app(), Method::DELETE, "/form").await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "POST, OPTIONS");
        assert_eq!(text(res).await, "Method Not Allowed\n");
    }

    #[tokio::test]
    async fn options_asterisk_lists_every_method_the_server_answers() {
        let res = call(&app(), Method::OPTIONS, "*").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD, OPTIONS, POST");
    }

    #[tokio::test]
    async fn a_routed_options_handler_is_used() {
        let app = Router::new().route("/x", options(|_req| async { "custom" }));
        let res = call(&app, Method::OPTIONS, "/x").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers().get(header::ALLOW), None);
    }

    #[tokio::test]
    async fn each_method_keeps_its_handler_and_a_later_one_replaces_it() {
        let methods = get(|_req| async { "first get" })
            .post(|_req| async { "post" })
            .get(|_req| async { "second get" });
        let app = Router::new().route("/x", methods);
        assert_eq!(answered_by(&app, Method::GET, "/x").await, "second get");
        assert_eq!(answered_by(&app, Method::POST, "/x").await, "post");
    }

    #[tokio::test]
    async fn routing_a_path_again_adds_its_methods_to_the_first() {
        let app = Router::new()
            .route(
                "/x",
                get(|_req| async { "first get" }).post(|_req| async { "post" }),
            )
            .route(
                "/x",
                get(|_req| async { "second get" }).put(|_req| async { "put" }),
            );
        assert_eq!(answered_by(&app, Method::GET, "/x").await, "second get");
        assert_eq!(answered_by(&app, Method::POST, "/x").await, "post");
        assert_eq!(answered_by(&app, Method::PUT, "/x").await, "put");
    }

    /// Which inline handler answers `method` on `path`, by the text it answers with.
    fn inline_text(app: &Router, method: Method, path: &str) -> Option<bytes::Bytes> {
        let at = app.inline_at(&method, path, &mut LastRoute::default())?;
        match at.inline.call(&HeadView::of(&Request::new(()))).kind {
            crate::inline::AnswerKind::Respond(respond) => Some(respond.body),
            crate::inline::AnswerKind::Pass => None,
        }
    }

    #[test]
    fn a_later_inline_handler_replaces_an_earlier_one_for_its_method_only() {
        let text = |body: &'static str| move |_: &HeadView<'_>| Answer::text(body);
        let chained = MethodRouter::default()
            .on_inline(Method::OPTIONS, text("options"))
            .get_inline(text("first"))
            .get_inline(text("second"));
        let merged = get_inline(text("first")).on_inline(Method::OPTIONS, text("options"));
        let app = Router::new()
            .route("/chained", chained)
            .route("/merged", merged)
            .route("/merged", get_inline(text("second")));
        for path in ["/chained", "/merged"] {
            assert_eq!(
                inline_text(&app, Method::GET, path).unwrap(),
                "second",
                "{path}"
            );
            let options = inline_text(&app, Method::OPTIONS, path);
            assert_eq!(
                options.unwrap(),
                "options",
                "{path}: the other method's stays"
            );
        }
    }

    #[test]
    fn a_hint_names_this_router_and_the_route_kept_for_the_path() {
        let text = |_: &HeadView<'_>| Answer::text("x");
        let app = Router::new()
            .route("/a", get_inline(text))
            .route("/b", get_inline(text));
        let other = Router::new().route("/a", get_inline(text));
        assert_eq!(app.id(), app.clone().id(), "clones are one router");
        assert_ne!(app.id(), other.id(), "two routers are two");
        let mut last = LastRoute::default();
        assert_eq!(app.hint("/b", &last), None, "nothing kept yet");
        assert!(app.inline_at(&Method::GET, "/b", &mut last).is_some());
        let hint = RouteHint {
            router: app.id(),
            index: 1,
        };
        assert_eq!(app.hint("/b", &last), Some(hint));
        assert_eq!(app.hint("/a", &last), None, "another path");
    }

    #[test]
    fn the_last_plain_route_is_kept_and_a_route_with_parameters_is_not() {
        let text = |_: &HeadView<'_>| Answer::text("x");
        let app = Router::new()
            .route("/a", get_inline(text))
            .route("/b", get_inline(text))
            .route("/p/{id}", get_inline(text));
        let mut last = LastRoute::default();
        let at = |last: &mut LastRoute, method: Method, path: &'static str| {
            app.inline_at(&method, path, last)
                .map(|at| (at.route.matched.as_str(), at.params.is_some()))
        };
        assert_eq!(at(&mut last, Method::GET, "/a"), Some(("/a", true)));
        assert_eq!(last.find("/a"), Some(0));
        assert_eq!(
            at(&mut last, Method::GET, "/a"),
            Some(("/a", false)),
            "kept"
        );
        assert_eq!(at(&mut last, Method::POST, "/a"), None, "kept, but no POST");
        assert_eq!(
            at(&mut last, Method::GET, "/b"),
            Some(("/b", true)),
            "another"
        );
        assert_eq!((last.find("/b"), last.find("/a")), (Some(1), None));
        for _ in 0..2 {
            let routed = at(&mut last, Method::GET, "/p/7");
            assert_eq!(
                routed,
                Some(("/p/{id}", true)),
                "parameters: matched each time"
            );
            assert_eq!(last.find("/p/7"), None);
        }
        assert_eq!(at(&mut last, Method::GET, "/nope"), None);
    }

    #[tokio::test]
    async fn head_goes_to_the_get_handler_whatever_else_is_routed() {
        let methods = post(|_req| async { "post" }).get(|_req| async { "get" });
        let app = Router::new().route("/x", methods);
        assert_eq!(answered_by(&app, Method::HEAD, "/x").await, "get");
    }
}
