//! [`HttpService`]: the services [`serve`](crate::serve) and
//! [`serve_connection`](crate::serve_connection()) run, named once.

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use crate::{Body, BoxError};

/// A [`tower::Service`] that [`serve`](crate::serve) and
/// [`serve_connection`](crate::serve_connection()) can run: from `Request<`[`Body`]`>` to
/// `Response<B>`, for any body `B` of [`Bytes`].
///
/// This is a *sealed* alias trait, as hyper's `HttpService` is: it cannot be implemented
/// directly, and every service of the right shape implements it. Implement
/// [`tower::Service`] (or use an axum `Router`, a [`Router`](crate::Router),
/// [`tower::service_fn`], a tower-http stack) instead. It spells out once what the engines
/// need, and why:
///
/// - `Clone + Send + 'static`: each connection runs on a task of its own with a clone of the
///   service (HTTP/2 also clones it per stream);
/// - `Future: Send + 'static`: a handler that does not finish on its first poll moves to a
///   task of its own, so slow handlers of one connection run concurrently;
/// - `Error: Into<`[`BoxError`]`>`: the engine logs the error and answers `500` in its place;
/// - [`HttpService::ResBody`]: written frame by frame, from whichever task writes the
///   connection; its error is logged once and cuts the response short (on HTTP/1.1 by closing
///   the connection), since the response's head is already on the wire.
///
/// An axum `Router` and a [`tower::service_fn`] are both `HttpService`s:
///
/// ```no_run
/// use std::convert::Infallible;
///
/// use pipelined::http::{Request, Response};
/// use pipelined::{Body, ResponseBody};
///
/// # async fn doc() -> std::io::Result<()> {
/// let hello = tower::service_fn(|_req: Request<Body>| async {
///     Ok::<_, Infallible>(Response::new(ResponseBody::from("hello\n")))
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// pipelined::serve(listener, hello).await?;
///
/// let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello\n" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
/// pipelined::serve(listener, app).await
/// # }
/// ```
pub trait HttpService:
    Service<
        Request<Body>,
        Response = Response<Self::ResBody>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    >
    + Clone
    + Send
    + 'static
    + sealed::Sealed
{
    /// The response body: [`Bytes`] frames, sent to whichever task writes the connection.
    type ResBody: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type ResBody = B;
}

/// Keeps [`HttpService`] implemented by the blanket impl alone, so that it can gain what the
/// engines come to need without breaking anyone's own impl.
mod sealed {
    use http::{Request, Response};
    use tower::Service;

    use crate::Body;

    pub trait Sealed {}

    impl<S, B> Sealed for S where S: Service<Request<Body>, Response = Response<B>> {}
}
