//! A small router on `matchit`: method routing, path parameters, 404, 405 with `Allow`, a
//! fallback, and tower layers. It is a [`tower::Service`], so any other service works with
//! [`serve`](crate::serve) just as well.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use tower::{Layer, Service, ServiceExt};

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

    /// The handler for `method`; HEAD falls back to GET (the engine drops the body).
    fn find(&self, method: &Method) -> Option<&Route> {
        let exact = self.routes.iter().find(|(m, _)| m == method);
        let head_as_get = || {
            (*method == Method::HEAD)
                .then(|| self.routes.iter().find(|(m, _)| *m == Method::GET))
                .flatten()
        };
        exact.or_else(head_as_get).map(|(_, route)| route)
    }

    /// Every method this path answers: the routed ones, HEAD where GET is routed, and OPTIONS
    /// (answered by the router when no handler is routed for it).
    fn methods(&self) -> Vec<&str> {
        let mut methods: Vec<&str> = self.routes.iter().map(|(m, _)| m.as_str()).collect();
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
    }
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
    matcher: matchit::Router<usize>,
    routes: Vec<MethodRouter>,
    fallback: Route,
}

impl Inner {
    /// Every method some path answers: the `Allow` of `OPTIONS *`.
    fn allow_any(&self) -> HeaderValue {
        let mut all: Vec<&str> = Vec::new();
        for methods in &self.routes {
            for method in methods.methods() {
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
                routes: Vec::new(),
                fallback,
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
        if let Ok(found) = inner.matcher.at(path) {
            if found.params.is_empty() {
                let index = *found.value;
                inner.routes[index].merge(methods);
                return self;
            }
        }
        let index = inner.routes.len();
        if let Err(e) = inner.matcher.insert(path, index) {
            panic!("invalid route {path:?}: {e}");
        }
        inner.routes.push(methods);
        self
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
        for methods in &mut inner.routes {
            for (_, route) in &mut methods.routes {
                *route = wrap(route);
            }
        }
        inner.fallback = wrap(&inner.fallback);
        self
    }
}

impl Service<Request<Body>> for Router {
    type Response = Response<ResponseBody>;
    type Error = BoxError;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> RouteFuture {
        let inner = &*self.inner;
        if req.method() == Method::OPTIONS && req.uri() == "*" {
            // `OPTIONS *` asks about the server as a whole (RFC 9110 §9.3.7).
            return answer_allow(StatusCode::OK, inner.allow_any());
        }
        let (index, params) = match inner.matcher.at(req.uri().path()) {
            Ok(found) => {
                let params = (!found.params.is_empty()).then(|| {
                    let pairs = found.params.iter();
                    PathParams(pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
                });
                (*found.value, params)
            }
            Err(_) => return (inner.fallback.0)(req),
        };
        let methods = &inner.routes[index];
        let Some(route) = methods.find(req.method()) else {
            // RFC 9110 §9.3.7: OPTIONS on a path describes it (204 with `Allow`); any other
            // method the path does not route is 405, with the same `Allow`.
            let status = if req.method() == Method::OPTIONS {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::METHOD_NOT_ALLOWED
            };
            return answer_allow(status, methods.allow());
        };
        if let Some(params) = params {
            req.extensions_mut().insert(params);
        }
        (route.0)(req)
    }
}

#[cfg(test)]
mod tests {
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
    }

    #[tokio::test]
    async fn a_method_not_routed_is_405_with_the_same_allow() {
        let res = call(&app(), Method::DELETE, "/form").await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()[header::ALLOW], "POST, OPTIONS");
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
}
